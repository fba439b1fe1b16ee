"""Predicting (training input lives in dlpipe/training/inputs.py)."""

from __future__ import annotations

import numpy as np


EAGER_BATCHES = 8
"""Up to this many batches are run by calling the model directly: `model.predict` first traces
a predict function for each model object (about 0.3 s here, paid again by every reloaded
export), which dominates on a few thousand examples. Larger inputs take `model.predict`."""


def predict(model, x: dict[str, np.ndarray], batch_size: int = 1024, *, compiled: bool = False):
    """The model's outputs for `x`, in inference mode (dropout off): an array, or a dict of
    arrays by output name for a model with named outputs (a detector's boxes, scores, classes).

    `compiled` (a model that is not training: the evaluate and export stages, a loaded export):
    on JAX, small inputs go through Keras' jitted predict step (`compiled_call`) instead of
    eager calls."""
    rows = len(next(iter(x.values())))
    text = any(values.dtype == object for values in x.values())
    if rows <= batch_size * EAGER_BATCHES:
        call = compiled_call(model) if compiled and not text else None
        parts = []
        for start in range(0, max(rows, 1), batch_size):
            batch = {name: values[start:start + batch_size] for name, values in x.items()}
            inputs = as_called(model, to_tensors(batch) if text else batch)
            parts.append(_numpy(call(inputs) if call is not None else model(inputs, training=False)))
        if isinstance(parts[0], dict):
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return np.concatenate(parts)
    if not text:
        return _numpy(model.predict(as_called(model, x), batch_size=batch_size, verbose=0))
    # Keras rejects numpy arrays of text ("Invalid dtype: object"), which categorical inputs are.
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(to_tensors(x)).batch(batch_size)
    return _numpy(model.predict(dataset, verbose=0))


def compiled_call(model):
    """Keras' own jitted predict step of `model` (`predict_on_batch`) on the JAX backend, or
    None where the plain call stays (TensorFlow and torch, whose eager call is cheap and whose
    compiled one traces for a second or more per model; a model that overrides `predict_step`
    (a GAN, a diffusion model); `jit_compile` off).

    An eager call on JAX dispatches every op of every layer from Python: 12 ms for one example
    of the breast-cancer MLP (30 inputs) on this CPU, against 0.35 ms for the jitted step, which
    is traced once per model and batch shape (about 50 ms with JAX's compilation cache warm,
    dlpipe/backend.py) — the export stage's 50 single-example latency calls went from 0.6 s to
    0.03 s. Same program, same numbers: the outputs equal the eager call's bit for bit on the
    models tested (tests/test_predict_compiled.py)."""
    import keras

    if keras.backend.backend() != "jax" or not isinstance(model, keras.Model):
        return None
    if type(model).predict_step is not keras.Model.predict_step or not getattr(model, "jit_compile", False):
        return None
    return model.predict_on_batch


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
        return {name: _array(values) for name, values in output.items()}
    return _array(output)


def _array(values) -> np.ndarray:
    """A backend tensor as a NumPy array (a torch tensor made with autograd on is detached)."""
    detach = getattr(values, "detach", None)
    return np.asarray(detach().cpu() if detach is not None else values)


def to_tensors(x: dict[str, np.ndarray]) -> dict:
    """numpy → tf tensors; text columns (object arrays of str) become tf.string."""
    import tensorflow as tf

    return {name: tf.constant(values.astype(str) if values.dtype == object else values)
            for name, values in x.items()}
