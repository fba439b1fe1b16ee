"""Predicting through tf.data (training input lives in dlpipe/training/inputs.py)."""

from __future__ import annotations

import numpy as np


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
