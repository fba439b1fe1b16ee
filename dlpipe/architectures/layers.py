"""The few layers Keras does not have, written with keras.ops only (any backend).

They are registered under the package name `dlpipe`, so `model.keras` files that use them
load with `safe_mode=True` once this module is imported (importing
dlpipe.architectures.assemble does it).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def sinusoidal_table(length: int, width: int) -> np.ndarray:
    """The fixed positions of "Attention Is All You Need": sin on even, cos on odd columns,
    wavelengths from 2π to 10000·2π."""
    position = np.arange(length)[:, np.newaxis]
    rate = 1.0 / np.power(10000.0, (2 * (np.arange(width) // 2)) / width)
    angles = position * rate[np.newaxis, :]
    return np.where(np.arange(width) % 2 == 0, np.sin(angles), np.cos(angles)).astype(np.float32)


@keras.saving.register_keras_serializable(package="dlpipe")
class PositionEmbedding(keras.layers.Layer):
    """Adds a vector per position to a batch × steps × width input: learned, or the fixed
    sinusoidal table."""

    def __init__(self, kind: str = "learned", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("learned", "sinusoidal"):
            raise ValueError(f"PositionEmbedding kind must be 'learned' or 'sinusoidal', got {kind!r}")
        self.kind = kind

    def build(self, input_shape):
        length, width = input_shape[-2], input_shape[-1]
        if self.kind == "learned":
            init = keras.initializers.RandomNormal(stddev=0.02)
        else:
            init = keras.initializers.Constant(sinusoidal_table(length, width))
        self.positions = self.add_weight(shape=(length, width), initializer=init,
                                         trainable=self.kind == "learned", name="positions")

    def call(self, inputs):
        return inputs + ops.cast(self.positions, inputs.dtype)[None, :, :]

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="dlpipe")
class ClassToken(keras.layers.Layer):
    """Prepends one learned vector to every sequence (ViT's class token): steps + 1 out."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros", name="token")

    def call(self, inputs):
        token = ops.broadcast_to(ops.cast(self.token, inputs.dtype),
                                 (ops.shape(inputs)[0], 1, ops.shape(inputs)[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        steps = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], steps, input_shape[2])


@keras.saving.register_keras_serializable(package="dlpipe")
class ReconstructionLoss(keras.layers.Layer):
    """Takes [latent, reconstruction, original]; while training, adds weight × mean squared
    reconstruction error to the model's loss. Returns the latent unchanged."""

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, inputs, training=None):
        latent, reconstruction, original = inputs
        if training and self.weight:
            error = ops.mean(ops.square(ops.cast(reconstruction, "float32") - ops.cast(original, "float32")))
            self.add_loss(self.weight * error)
        return latent

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="dlpipe")
class Impute(keras.layers.Layer):
    """Replaces each missing value (NaN) by a fixed number per column (the training split's
    mean or median, or a constant), so the model and its exports take raw data with gaps."""

    def __init__(self, fill, **kwargs):
        super().__init__(**kwargs)
        self.fill = [float(v) for v in np.ravel(fill)]

    def call(self, inputs):
        fill = ops.cast(ops.convert_to_tensor(self.fill), inputs.dtype)
        return ops.where(ops.isnan(inputs), fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fill": self.fill}


@keras.saving.register_keras_serializable(package="dlpipe")
class ReplaceIndex(keras.layers.Layer):
    """Index `missing` becomes index `fill`: a category lookup's slot for the missing value
    (the empty string) turned into the imputed category's slot. Integer indices, not text,
    so the step stays inside a TFLite file whose lookup runs before it, and ONNX needs no
    string comparison."""

    def __init__(self, missing: int, fill: int, **kwargs):
        super().__init__(**kwargs)
        self.missing, self.fill = int(missing), int(fill)

    def call(self, inputs):
        fill = ops.cast(ops.convert_to_tensor(self.fill), inputs.dtype)
        return ops.where(ops.equal(inputs, ops.cast(self.missing, inputs.dtype)), fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "missing": self.missing, "fill": self.fill}


@keras.saving.register_keras_serializable(package="dlpipe")
class FillEmptyTokens(keras.layers.Layer):
    """A text that gave no token (missing, or empty) takes the token ids of the imputed text."""

    def __init__(self, ids, **kwargs):
        super().__init__(**kwargs)
        self.ids = [int(i) for i in np.ravel(ids)]

    def call(self, inputs):
        ids = ops.cast(ops.convert_to_tensor(self.ids), inputs.dtype)
        empty = ops.all(ops.equal(inputs, ops.cast(0, inputs.dtype)), axis=-1, keepdims=True)
        return ops.where(empty, ops.expand_dims(ids, 0), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ids": self.ids}


@keras.saving.register_keras_serializable(package="dlpipe")
class LastValue(keras.layers.Layer):
    """batch × steps × channels → batch × horizon: the last step's value of channel 0 (a
    forecasting window's target), repeated — the naive forecast a forecaster corrects."""

    def __init__(self, horizon: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.horizon = int(horizon)

    def call(self, inputs):
        last = ops.cast(inputs[:, -1, 0:1], "float32")
        return ops.repeat(last, self.horizon, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon}


@keras.saving.register_keras_serializable(package="dlpipe")
class ChannelConvert(keras.layers.Layer):
    """Images from 1 to 3 channels (grey repeated) or from 3 to 1 (luminance,
    0.299 R + 0.587 G + 0.114 B, ITU-R BT.601)."""

    def __init__(self, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs):
        if inputs.shape[-1] == self.channels:
            return inputs
        if self.channels == 3:
            return ops.concatenate([inputs, inputs, inputs], axis=-1)
        weights = ops.convert_to_tensor(np.array([0.299, 0.587, 0.114], np.float32), dtype=inputs.dtype)
        return ops.sum(inputs * weights, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="dlpipe")
class SubtractLast(keras.layers.Layer):
    """batch × steps × channels minus its last step (per channel): a window relative to now."""

    def call(self, inputs):
        return inputs - inputs[:, -1:, :]

    def compute_output_shape(self, input_shape):
        return input_shape
