"""Where a feature is attributed inside the model, and the model's gradients there.

A model built by dlpipe reads raw values: numbers go through a normalization layer, a
categorical value through a lookup to a one-hot vector or an embedding, text through a
vectorizer to token ids and an embedding. Gradients cannot flow through a lookup, and a
gradient per raw number says little next to one per normalized number, so each feature is
attributed at the end of its *encoding chain*: starting at its input, the layers that
consume it alone, as long as they are encoding layers (normalization, lookups, one-hot,
embedding), up to and including the first one-hot or embedding. The last floating-point
tensor of that chain is the feature's *point*: for a numerical feature its normalized value,
for a categorical one its one-hot vector or embedding, for text the embedding of each
token. Images are attributed at their raw pixels (a map over the stored image).

To evaluate the model at chosen values of the points (the integrated-gradients path), the
layer that produces a point is made, for one call, to return the given tensor instead of its
own output. Everything else runs as in the model: the lookups still see the raw input, so an
embedding's padding mask is the example's own.

Gradients come from the backend: TensorFlow's GradientTape. The model code stays Keras
(keras.ops); only `gradients` below knows the backend.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import keras
import numpy as np

from dlpipe.errors import DlpipeError

ENCODING_LAYERS = ("Impute", "SubtractLast", "Normalization", "Rescaling", "StringLookup", "IntegerLookup",
                   "TextVectorization", "CategoryEncoding", "Embedding")
"""Layers a feature's value passes through before it meets another feature (inputs.py)."""
ENDS_CHAIN = ("CategoryEncoding", "Embedding")
"""Where a discrete value has become numbers: its point."""


@dataclass
class Point:
    feature: str
    """The feature's name (the data's column)."""
    input: str
    """The model input's name."""
    type: str
    layer: object | None
    """The layer whose output is the point; None: the raw input itself (images)."""
    tensor: object
    """The symbolic tensor of the point in the model's graph."""
    chain: tuple = ()
    """The encoding layers from the input to the point (a text feature's vectorizer among them)."""

    @property
    def where(self) -> str:
        return "raw input" if self.layer is None else f"output of layer {self.layer.name}"


def _consumers(model) -> dict[int, list]:
    """id(symbolic tensor) → [(layer, its output tensor)] for every call inside `model`."""
    found: dict[int, list] = {}
    for layer in model.layers:
        for node in getattr(layer, "_inbound_nodes", []):
            outputs = list(node.output_tensors)
            for tensor in node.input_tensors:
                found.setdefault(id(tensor), []).append((layer, outputs[0] if len(outputs) == 1 else None))
    return found


def _is_float(tensor) -> bool:
    return keras.backend.standardize_dtype(tensor.dtype).startswith(("float", "bfloat"))


def find_points(model, features: list[dict]) -> list[Point]:
    """One point per feature (`features`: data.json's entries: name, input, type, shape)."""
    inputs = {tensor.name: tensor for tensor in model.inputs}
    consumers = _consumers(model)
    points = []
    for feature in features:
        name, input_name, kind = feature["name"], feature["input"], feature["type"]
        if input_name not in inputs:
            raise DlpipeError(f"the model has no input {input_name!r} (feature {name!r}); its inputs: "
                              f"{', '.join(inputs)}")
        tensor, layer, chain = inputs[input_name], None, []
        if kind != "image":
            current = tensor
            while True:
                following = consumers.get(id(current), [])
                if len(following) != 1 or type(following[0][0]).__name__ not in ENCODING_LAYERS \
                        or following[0][1] is None:
                    break
                step, current = following[0]
                chain.append(step)
                if _is_float(current):
                    tensor, layer = current, step
                if type(step).__name__ in ENDS_CHAIN:
                    break
        if not _is_float(tensor):
            raise DlpipeError(f"feature {name!r} ({kind}): no floating-point value inside the model to attribute "
                              "it at (its input is not followed by a one-hot or embedding layer)")
        points.append(Point(name, input_name, kind, layer, tensor, tuple(chain)))
    return points


class Attributor:
    """The model as a function of its points: f(raw x, point values) → outputs.

    `expand_binary`: a two-class model with one sigmoid output is explained as two outputs
    [1 − p, p], so class 0 can be explained like any other."""

    def __init__(self, model, features: list[dict], expand_binary: bool = False):
        if keras.backend.backend() != "tensorflow":
            raise DlpipeError(f"explanations need gradients from the TensorFlow backend; KERAS_BACKEND is "
                              f"{keras.backend.backend()}")
        self.model = model
        self.points = find_points(model, features)
        self.expand_binary = expand_binary
        inner = [p for p in self.points if p.layer is not None]
        self._encoder = keras.Model(model.inputs, [p.tensor for p in inner]) if inner else None

    def encode(self, x: dict[str, np.ndarray], batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Each feature's point value for the raw examples `x`, by feature name."""
        from dlpipe.data.pipeline import to_tensors

        inner = [p for p in self.points if p.layer is not None]
        values = {p.feature: np.asarray(x[p.input], dtype=np.float32) for p in self.points if p.layer is None}
        if inner:
            rows = len(next(iter(x.values())))
            parts = []
            for start in range(0, rows, batch_size):
                batch = to_tensors({k: v[start:start + batch_size] for k, v in x.items()})
                out = self._encoder(batch, training=False)
                parts.append([np.asarray(t) for t in (out if isinstance(out, (list, tuple)) else [out])])
            for i, point in enumerate(inner):
                values[point.feature] = np.concatenate([part[i] for part in parts])
        return values

    def baseline(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Zeros at every point: the training mean of a normalized number, no category (the
        zero one-hot or embedding vector), a padding-free but empty embedding per token, a
        black image."""
        return {name: np.zeros_like(value) for name, value in values.items()}

    @contextlib.contextmanager
    def _injected(self, values: dict):
        """Each point's layer returns the given tensor for the duration (see the module doc)."""
        layers = [(p.layer, values[p.feature]) for p in self.points if p.layer is not None]
        try:
            for layer, value in layers:
                layer.call = lambda *args, _value=value, **kwargs: _value
            yield
        finally:
            for layer, _ in layers:
                vars(layer).pop("call", None)

    def _outputs(self, x: dict, values: dict):
        inputs = dict(x)
        inputs.update({p.input: values[p.feature] for p in self.points if p.layer is None})
        with self._injected(values):
            out = self.model(inputs, training=False)
        out = keras.ops.reshape(out, (keras.ops.shape(out)[0], -1))
        if self.expand_binary:
            out = keras.ops.concatenate([1.0 - out, out], axis=1)
        return out

    def outputs(self, x: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> np.ndarray:
        from dlpipe.data.pipeline import to_tensors

        return np.asarray(self._outputs(to_tensors(x), {k: keras.ops.convert_to_tensor(v) for k, v in values.items()}))

    def gradients(self, x: dict[str, np.ndarray], values: dict[str, np.ndarray],
                  columns: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(f_c(x) per example, ∂f_c/∂point per feature), c = `columns` (one output per example)."""
        import tensorflow as tf

        from dlpipe.data.pipeline import to_tensors

        raw = to_tensors(x)
        watched = {k: tf.convert_to_tensor(v) for k, v in values.items()}
        chosen = keras.ops.convert_to_tensor(np.asarray(columns, dtype=np.int32).reshape(-1, 1))
        with tf.GradientTape() as tape:
            tape.watch(list(watched.values()))
            picked = keras.ops.take_along_axis(self._outputs(raw, watched), chosen, axis=1)
            total = keras.ops.sum(picked)
        grads = tape.gradient(total, watched)
        return (np.asarray(picked).reshape(-1),
                {k: np.zeros_like(values[k]) if g is None else np.asarray(g) for k, g in grads.items()})


def per_feature(values: dict[str, np.ndarray], points: list[Point]) -> np.ndarray:
    """N × features: each feature's attribution summed over its numbers (one-hot slots,
    embedding dimensions, tokens, pixels)."""
    return np.stack([values[p.feature].reshape(len(values[p.feature]), -1).sum(axis=1) for p in points], axis=1)


def per_position(value: np.ndarray) -> np.ndarray:
    """N × steps: a sequence feature's (text tokens') attribution summed over each step's numbers."""
    return value.reshape(value.shape[0], value.shape[1], -1).sum(axis=2)
