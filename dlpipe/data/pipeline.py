"""Predicting (training input lives in dlpipe/training/inputs.py)."""

from __future__ import annotations

import numpy as np


EAGER_BATCHES = 8
"""Up to this many batches are run by calling the model directly: `model.predict` first traces
a predict function for each model object (about 0.3 s here, paid again by every reloaded
export), which dominates on a few thousand examples. Larger inputs take `model.predict`."""


def predict(model, x: dict[str, np.ndarray], batch_size: int = 1024):
    """The model's outputs for `x`, in inference mode (dropout off): an array, or a dict of
    arrays by output name for a model with named outputs (a detector's boxes, scores, classes)."""
    rows = len(next(iter(x.values())))
    text = any(values.dtype == object for values in x.values())
    if rows <= batch_size * EAGER_BATCHES:
        parts = []
        for start in range(0, max(rows, 1), batch_size):
            batch = {name: values[start:start + batch_size] for name, values in x.items()}
            parts.append(_numpy(model(as_called(model, to_tensors(batch) if text else batch), training=False)))
        if isinstance(parts[0], dict):
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return np.concatenate(parts)
    if not text:
        return _numpy(model.predict(as_called(model, x), batch_size=batch_size, verbose=0))
    # Keras rejects numpy arrays of text ("Invalid dtype: object"), which categorical inputs are.
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(to_tensors(x)).batch(batch_size)
    return _numpy(model.predict(dataset, verbose=0))


def as_called(model, x: dict):
    """`x` as the model's inputs are structured: a model built on one input tensor (not a
    list or dict of them, as a detector's image) takes the bare array; Keras warns about a
    dict there."""
    try:
        structure = model.input
    except (AttributeError, ValueError):  # a subclassed model: no input structure
        return x
    if len(x) == 1 and not isinstance(structure, (list, tuple, dict)):
        return next(iter(x.values()))
    return x


def _numpy(output):
    if isinstance(output, dict):
        return {name: np.asarray(values) for name, values in output.items()}
    return np.asarray(output)


def to_tensors(x: dict[str, np.ndarray]) -> dict:
    """numpy → tf tensors; text columns (object arrays of str) become tf.string."""
    import tensorflow as tf

    return {name: tf.constant(values.astype(str) if values.dtype == object else values)
            for name, values in x.items()}
