"""tf.data input pipelines: cache, seeded shuffle, batch, prefetch."""

from __future__ import annotations

import numpy as np


def make_dataset(x: dict[str, np.ndarray], y: np.ndarray, *, batch_size: int, shuffle: bool,
                 seed: int, shuffle_buffer: int | None = None):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        buffer = min(shuffle_buffer or len(y), len(y))
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def predict(model, x: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """`model.predict` through tf.data: Keras rejects numpy arrays of text ("Invalid dtype:
    object"), which categorical inputs are."""
    import tensorflow as tf

    if not any(values.dtype == object for values in x.values()):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    dataset = tf.data.Dataset.from_tensor_slices(to_tensors(x)).batch(batch_size)
    return np.asarray(model.predict(dataset, verbose=0))


def to_tensors(x: dict[str, np.ndarray]) -> dict:
    """numpy → tf tensors; text columns (object arrays of str) become tf.string."""
    import tensorflow as tf

    return {name: tf.constant(values.astype(str) if values.dtype == object else values)
            for name, values in x.items()}
