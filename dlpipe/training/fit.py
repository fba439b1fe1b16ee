"""Train a compiled model with `fit` on tf.data: early stopping, progress, history."""

from __future__ import annotations

import sys

from dlpipe.data.pipeline import make_dataset


def verbosity(progress: str) -> int:
    """Keras verbose: a bar on a terminal, one line per epoch otherwise."""
    if progress == "auto":
        return 1 if sys.stdout.isatty() else 2
    return {"bar": 1, "epoch": 2, "none": 0}[progress]


def train(model, spec, data, callbacks=()) -> dict[str, list[float]]:
    import keras

    training = spec.training
    train_split, validation = data.splits["train"], data.splits["validation"]
    train_ds = make_dataset(train_split.x, train_split.y, batch_size=training.batch_size, shuffle=True,
                            seed=spec.seed, shuffle_buffer=spec.data.shuffle_buffer)
    val_ds = (make_dataset(validation.x, validation.y, batch_size=training.batch_size, shuffle=False,
                           seed=spec.seed) if len(validation) else None)
    callbacks = [keras.callbacks.TerminateOnNaN(), *callbacks]
    if training.early_stopping:
        stop = training.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=stop.monitor, patience=stop.patience, min_delta=stop.min_delta, mode=stop.mode,
            restore_best_weights=stop.restore_best_weights))
    history = model.fit(train_ds, validation_data=val_ds, epochs=training.epochs, callbacks=callbacks, shuffle=False,
                        verbose=verbosity(training.progress))
    return {name: [float(v) for v in values] for name, values in history.history.items()}
