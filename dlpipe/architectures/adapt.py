"""Layers that adapt raw images to a pretrained network inside the model, so model.keras,
every export and `dlpipe predict` take images as stored (keras.ops only: any backend).

Registered under the package name `dlpipe`; dlpipe/custom_objects.py imports this module,
so a model that holds them loads in a fresh process.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# ImageNet statistics, in RGB order, of the preprocessing modes of keras.applications.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="dlpipe")
class ResizeImage(keras.layers.Layer):
    """Bilinear resize of a batch of images to (height, width) with keras.ops.image.resize:
    no training mode (Keras's Resizing layer runs in training mode unless told otherwise,
    and a batch norm after it would then export with batch statistics)."""

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, inputs):
        return ops.image.resize(inputs, (self.height, self.width), interpolation="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


@keras.saving.register_keras_serializable(package="dlpipe")
class ImagePreprocess(keras.layers.Layer):
    """Pixels valued 0..255 (RGB) as a Keras application expects them: `tf` scales to −1..1,
    `caffe` reverses the channels to BGR and subtracts ImageNet's means, `torch` scales to
    0..1 and standardizes with ImageNet's means and deviations."""

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "caffe", "torch"):
            raise ValueError(f"unknown preprocessing mode {mode!r}; expected tf, caffe or torch")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(np.array(_CAFFE_MEAN_BGR, np.float32), x.dtype)
        mean = ops.convert_to_tensor(np.array(_TORCH_MEAN, np.float32), x.dtype)
        std = ops.convert_to_tensor(np.array(_TORCH_STD, np.float32), x.dtype)
        return (x / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="dlpipe")
class ScaleImage(keras.layers.Layer):
    """`x * scale + offset`, each a number or one value per channel: a KerasHub preset's image
    converter (its resizing is `ResizeImage`'s, which has no training mode)."""

    def __init__(self, scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = _plain(scale), _plain(offset)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.scale is not None:
            x = x * ops.convert_to_tensor(np.array(self.scale, np.float32), x.dtype)
        if self.offset is not None:
            x = x + ops.convert_to_tensor(np.array(self.offset, np.float32), x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _plain(value):
    """A number or a list of numbers (a config JSON can hold), from a number, list or array."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else [float(v) for v in array.reshape(-1)]
