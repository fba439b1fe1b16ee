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
