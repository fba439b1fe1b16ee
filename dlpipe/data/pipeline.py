"""Predicting (training input lives in dlpipe/training/inputs.py)."""

from __future__ import annotations

import numpy as np


EAGER_BATCHES = 8
"""Up to this many batches are run by calling the model directly: `model.predict` first traces
a predict function for each model object (about 0.3 s here, paid again by every reloaded
export), which dominates on a few thousand examples. Larger inputs take `model.predict`."""


def predict(model, x: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """The model's outputs for `x`, in inference mode (dropout off)."""
    rows = len(next(iter(x.values())))
    text = any(values.dtype == object for values in x.values())
    if rows <= batch_size * EAGER_BATCHES:
        parts = []
        for start in range(0, max(rows, 1), batch_size):
            batch = {name: values[start:start + batch_size] for name, values in x.items()}
            parts.append(np.asarray(model(to_tensors(batch) if text else batch, training=False)))
        return np.concatenate(parts)
    if not text:
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    # Keras rejects numpy arrays of text ("Invalid dtype: object"), which categorical inputs are.
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(to_tensors(x)).batch(batch_size)
    return np.asarray(model.predict(dataset, verbose=0))


def to_tensors(x: dict[str, np.ndarray]) -> dict:
    """numpy → tf tensors; text columns (object arrays of str) become tf.string."""
    import tensorflow as tf

    return {name: tf.constant(values.astype(str) if values.dtype == object else values)
            for name, values in x.items()}
