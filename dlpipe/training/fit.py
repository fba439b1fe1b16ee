"""Train a compiled model: schedules, weights, checkpoints and resume, NaN stop, distribution.

`train` is the one entry point. It picks the loop from `training.strategy`: Keras `fit`
on one device or under MirroredStrategy, dlpipe's own loop under MultiWorkerMirroredStrategy
(dlpipe/training/multi_worker.py). Both run the same callbacks, so progress, history,
checkpoints and TensorBoard logs look the same whichever runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from dlpipe.errors import StageError
from dlpipe.training import checkpoints, distribute
from dlpipe.training.inputs import evaluation_dataset, steps_per_epoch, training_dataset


def gpus() -> list:
    from dlpipe.training.determinism import gpus

    return gpus()


def _on_tensorflow() -> bool:
    import keras

    return keras.backend.backend() == "tensorflow"


def verbosity(progress: str) -> int:
    """Keras verbose: a bar on a terminal, one line per epoch otherwise."""
    if progress == "auto":
        return 1 if sys.stdout.isatty() else 2
    return {"bar": 1, "epoch": 2, "none": 0}[progress]


def train(model, spec, data, *, run_dir=None, located=None, callbacks=None, monitors=(), batch_size=None,
          drop_remainder: bool = False, strategy: str | None = None, wrap_augment=None) -> dict[str, list[float]]:
    """Train `model` in place; return the history (every epoch, also those before a resume).

    With `run_dir`, checkpoints go to run_dir/checkpoints/ and TensorBoard logs to
    run_dir/logs/, and a checkpoints/last.npz already there is resumed from. `callbacks`
    are extra Keras callbacks, run after dlpipe's own. `monitors` are callbacks that add
    values to an epoch's logs (a GAN's FID): they run before the history records the logs and
    the checkpoint saves them, so a resumed run has them too; a value missing in an epoch is
    NaN in the history. A model that trains with several optimizers lists them in
    `optimizer_updates` (dlpipe.training.compile.optimizers). `batch_size` (default
    `training.batch_size`) is the examples one training step takes, `drop_remainder` leaves
    out each epoch's last short batch, and `strategy` replaces `training.strategy`.
    `wrap_augment(augment)` → the batch function that replaces the spec's augmentation when
    there is one (a distillation teacher then runs on each augmented batch).
    """
    from dlpipe.training.compile import compile_model
    from dlpipe.training.determinism import resolve_jit
    from dlpipe.training.weights import example_weights

    training = spec.training
    batch_size = batch_size or training.batch_size
    n_classes = len(data.class_names) if data.class_names else None
    kind = distribute.resolve(strategy or training.strategy)
    strategy = distribute.strategy(kind)
    replica = model if strategy is None else distribute.replicate(
        model, strategy, lambda copy: compile_model(copy, spec, n_classes))
    if run_dir is not None:  # what Keras made of the request (it turns XLA off under op determinism)
        jit = bool(replica.jit_compile) if kind != "multi_worker" else resolve_jit(training.jit_compile, gpus())
        run_dir.update(training={**run_dir.record.get("training", {}), "jit_compile": jit})
    # The other workers of a multi-worker run write nothing, but resume like the chief: the
    # runner copies the chief's last checkpoint into their scratch folder.
    writes = run_dir is not None and (kind != "multi_worker" or distribute.cluster().chief)
    checkpoint_dir = run_dir.path("checkpoints") if run_dir is not None else None
    directory = checkpoint_dir if writes else None

    train_split = data.splits["train"]
    steps = steps_per_epoch(len(train_split), batch_size, drop_remainder)
    plateau = _schedule_optimizers(replica, training, steps, strategy)
    import contextlib

    from dlpipe.training.finetune import prepare as prepare_fine_tune

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        fine_tune = prepare_fine_tune(replica, spec, steps)  # a backbone's frozen and unfrozen epochs
    if fine_tune is not None:
        monitors = [*monitors, fine_tune]
    run = _Callbacks.create(spec, plateau, directory, run_dir.path("logs") if writes else None,
                            has_validation=len(data.splits["validation"]) > 0, monitors=list(monitors),
                            extra=callbacks or [], steps_per_epoch=steps)
    first_epoch = 0
    if checkpoint_dir is not None and (checkpoint_dir / "last.npz").exists():
        first_epoch = run.resume(replica, checkpoint_dir / "last.npz")
        run_dir.update(resumed_from_epoch=first_epoch)
    if kind == "multi_worker":
        from dlpipe.training.multi_worker import check_same_start

        check_same_start(strategy, first_epoch, run.finished)

    if not run.finished:
        weights = example_weights(spec, data, located)
        inputs = dict(x=train_split.x, y=train_split.y, weights=weights, batch_size=batch_size,
                      seed=spec.seed, first_epoch=first_epoch, epochs=training.epochs,
                      shuffle_buffer=spec.data.shuffle_buffer)
        validation = data.splits["validation"]
        stream = getattr(train_split, "stream", None)
        if not _on_tensorflow():  # JAX: numpy batches, nothing of TensorFlow (inputs.numpy_batches)
            if kind != "none":
                raise StageError("train", "tf.distribute strategies need backend: tensorflow")
            from dlpipe.data.augment_numpy import augmented_batches, augmenter as numpy_augmenter
            from dlpipe.training.inputs import numpy_batches

            augment = numpy_augmenter(spec, data)  # prepare.augmentation in NumPy, seeded by (seed, epoch, batch)
            if augment is not None and wrap_augment is not None:  # a teacher on each augmented batch
                augment = wrap_augment(augment)
            if stream is None:
                train_input = numpy_batches(**inputs, drop_remainder=drop_remainder)
                if augment is not None:
                    train_input = augmented_batches(
                        (numpy_batches(**{**inputs, "first_epoch": e, "epochs": e + 1}, drop_remainder=drop_remainder)
                         for e in range(first_epoch, training.epochs)), augment, spec.seed, first_epoch)
                val_input = (validation.x, validation.y) if len(validation) else None
            else:  # data.streaming: the file (the folder's images) read again each epoch, as numpy
                from dlpipe.data.streaming import keras_batches, numpy_batches as streamed_batches

                if weights is not None:
                    raise StageError("train", "class weights are not available with data.streaming")
                train_input = streamed_batches(stream, batch_size=batch_size, first_epoch=first_epoch,
                                               epochs=training.epochs)
                if augment is not None:
                    train_input = augmented_batches(
                        (streamed_batches(stream, batch_size=batch_size, first_epoch=e, epochs=e + 1)
                         for e in range(first_epoch, training.epochs)), augment, spec.seed, first_epoch)
                val_input = keras_batches(validation.stream, training.batch_size) if len(validation) else None
            replica.fit(train_input, validation_data=val_input,  # a PyDataset's batches are its own
                        validation_batch_size=training.batch_size if stream is None else None,
                        epochs=training.epochs,
                        initial_epoch=first_epoch, steps_per_epoch=steps, callbacks=run.callbacks,
                        shuffle=False, verbose=verbosity(training.progress))
        elif stream is None:
            val_ds = (evaluation_dataset(validation.x, validation.y, batch_size=training.batch_size)
                      if len(validation) else None)
        else:  # data.streaming: the file is read again, chunk by chunk, each epoch
            if weights is not None:
                raise StageError("train", "class weights are not available with data.streaming")
            from dlpipe.data.augment import augmenter

            augment = augmenter(spec, data)  # image streams only (spec/checks.py: check_streaming)
            if augment is not None and wrap_augment is not None:
                augment = wrap_augment(augment)
            train_ds = stream.training_dataset(batch_size=training.batch_size, first_epoch=first_epoch,
                                               epochs=training.epochs, y_example=train_split.y[:1],
                                               **({"augment": augment} if augment is not None else {}))
            val_ds = (validation.stream.evaluation_dataset(batch_size=training.batch_size,
                                                           y_example=train_split.y[:1]) if len(validation) else None)
        if not _on_tensorflow():
            pass
        elif kind == "multi_worker":
            from dlpipe.training.multi_worker import fit_multi_worker

            if spec.prepare.augmentation:
                raise StageError("train", "prepare.augmentation is not supported under the multi_worker strategy yet")

            fit_multi_worker(replica, strategy, spec, n_classes, inputs, val_ds, steps, run.callbacks,
                             verbose=verbosity(training.progress))
        else:
            from dlpipe.data.augment import augmenter

            augment = augmenter(spec, data)
            if augment is not None and wrap_augment is not None:
                augment = wrap_augment(augment)
            train_input = (training_dataset(**inputs, augment=augment, drop_remainder=drop_remainder)
                           if stream is None else train_ds)
            replica.fit(train_input, validation_data=val_ds, epochs=training.epochs,
                        initial_epoch=first_epoch, steps_per_epoch=steps, callbacks=run.callbacks,
                        shuffle=False, verbose=verbosity(training.progress))
    if run.guard.tripped is not None:
        raise StageError("train", run.nan_message(directory))
    if replica is not model:
        checkpoints.copy_variables(replica, model)
    if run.pruning is not None and run_dir is not None:
        from dlpipe.training.pruning import summary

        run_dir.update(pruning=summary(model, spec.compression.pruning))
    fingerprint = weights_fingerprint(model)
    if run_dir is not None:
        run_dir.update(weights_sha256=fingerprint)
    if kind == "multi_worker":
        print(f"[dlpipe] {distribute.cluster().name}: trained weights sha256:{fingerprint}", file=sys.stderr, flush=True)
    return run.recorder.history


def _schedule_optimizers(model, training, steps: int, strategy) -> list:
    """Give each optimizer of `model` its rate as `training.schedule` over the steps of the
    run (the base is the rate the optimizer was compiled with); return the PlateauRates that
    reduce-on-plateau lowers."""
    import contextlib

    from dlpipe.training.optimizers import optimizers, set_learning_rate
    from dlpipe.training.schedules import learning_rate, plateau_rates

    found = []
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        for optimizer, updates in optimizers(model):
            base = float(optimizer.learning_rate.numpy())
            rate = learning_rate(base, training.schedule, training.epochs, steps * updates)
            set_learning_rate(optimizer, rate)
            found += plateau_rates(rate)
    return found


def weights_fingerprint(model) -> str:
    """SHA-256 of every weight's bytes, in order: equal fingerprints, bit-identical weights."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


@dataclass
class _Callbacks:
    """dlpipe's callbacks for one run, in the order they must see each epoch's logs."""

    learning_rate: object
    plateau: object | None
    guard: object
    recorder: object
    early_stopping: object | None
    checkpointer: object | None
    pruning: object | None = None
    callbacks: list = field(default_factory=list)
    finished: bool = False

    @classmethod
    def create(cls, spec, plateau_rates: list, directory: Path | None, log_dir: Path | None, *,
               has_validation: bool, monitors: list, extra: list, steps_per_epoch: int = 1) -> "_Callbacks":
        import keras

        from dlpipe.training import callbacks as cb

        training = spec.training
        rate = cb.LearningRateLog()
        plateau = cb.ReduceOnPlateau(training.schedule, plateau_rates) if plateau_rates else None
        guard, recorder = cb.NanGuard(), cb.HistoryRecorder()
        stop = training.early_stopping
        pruning_spec = spec.compression.pruning if spec.compression is not None else None
        pruning = None
        if pruning_spec is not None:
            from dlpipe.training.pruning import Pruning

            pruning = Pruning(pruning_spec, steps_per_epoch)
        # While the pruning schedule runs, every epoch is sparser than the last: early stopping
        # starts watching (and keeping best weights) at the epoch that reaches the target.
        # Likewise the epochs before quantization-aware training starts are float epochs.
        quantization = spec.compression.quantization_aware if spec.compression is not None else None
        watch_from = max(pruning_spec.schedule.end_epoch - 1 if pruning_spec is not None else 0,
                         quantization.start_epoch - 1 if quantization is not None else 0)
        early = cb.EarlyStopping(monitor=stop.monitor, patience=stop.patience, min_delta=stop.min_delta,
                                 mode=stop.mode, restore_best_weights=stop.restore_best_weights,
                                 start_from_epoch=watch_from) if stop else None
        stateful = {**({"reduce_on_plateau": plateau} if plateau else {}),
                    **({"early_stopping": early} if early else {}),
                    **({"pruning": pruning} if pruning else {})}
        checkpointer = None
        if directory is not None:
            monitor, mode = training.checkpoints.monitor, training.checkpoints.mode
            if monitor == "auto":
                monitor = stop.monitor if stop else ("val_loss" if has_validation else "loss")
                mode = stop.mode if stop and mode == "auto" else mode
            checkpointer = cb.Checkpointer(directory, monitor=monitor, mode=mode, epochs=training.epochs,
                                           recorder=recorder, guard=guard, stateful=stateful)
        board = cb.tensorboard(log_dir) if log_dir is not None and cb.writes_tensorboard(training) else None
        # Order matters: the rate, the monitors' values and the stop decisions enter the logs
        # before they are recorded and checkpointed; extra (user) callbacks see the finished logs.
        # Pruning first: its masks are applied before anything sees or saves a step's weights.
        step_seed = cb.TorchBatchSeed(spec.seed) if keras.backend.backend() == "torch" else None
        ordered = [step_seed, pruning, rate, plateau, guard, *monitors, early, recorder, checkpointer, board, *extra]
        return cls(rate, plateau, guard, recorder, early, checkpointer, pruning,
                   [c for c in ordered if c is not None])

    def resume(self, model, path: Path) -> int:
        """Load `path` into the model and the callbacks; return the epochs already done."""
        checkpoint = checkpoints.read(path)
        checkpoints.restore(model, checkpoint, path)
        record = checkpoint.record
        self.recorder.history = {k: list(v) for k, v in record["history"].items()}
        states = record.get("callbacks", {})
        if self.plateau is not None and "reduce_on_plateau" in states:
            self.plateau.set_state(states["reduce_on_plateau"])
        if self.early_stopping is not None and "early_stopping" in states:
            self.early_stopping.set_state(states["early_stopping"], checkpoint.extra.get("early_stopping"))
        if self.pruning is not None and "pruning" in states:
            self.pruning.set_state(states["pruning"], checkpoint.extra.get("pruning"))
        if self.checkpointer is not None:
            self.checkpointer.restore(record)
        self.finished = checkpoint.finished
        done = "training had finished" if checkpoint.finished else f"{checkpoint.epoch} of {record['epochs']} epochs done"
        print(f"[dlpipe] resuming from {path} ({done})", file=sys.stderr, flush=True)
        return checkpoint.epoch

    def nan_message(self, directory: Path | None) -> str:
        epoch, step, loss = self.guard.tripped
        saved = self.checkpointer.saved_epoch if self.checkpointer is not None else 0
        where = f"the loss became {loss} at epoch {epoch + 1}, step {step + 1}; training stopped"
        if saved:
            kept = f"the last good checkpoint (epoch {saved}) is {directory / 'last.npz'}"
        else:
            kept = "no epoch had completed, so there is no checkpoint"
        return f"{where}; {kept}; try a lower learning rate, gradient clipping, or check the data"
