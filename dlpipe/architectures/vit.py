"""Vision transformer: an image cut into square patches (a strided convolution projects
each to `model_dim`), a class token or mean pooling, transformer encoder blocks."""

from __future__ import annotations

import keras

from dlpipe.architectures import BuildProblem
from dlpipe.architectures.blocks import transformer_encoder
from dlpipe.architectures.inputs import Encoded, initializer, one_image
from dlpipe.architectures.layers import ClassToken
from dlpipe.spec.model import ViT


def build(spec: ViT, encoded: Encoded) -> keras.KerasTensor:
    x = one_image(encoded, "vit")
    height, width = x.shape[1], x.shape[2]
    if height % spec.patch_size or width % spec.patch_size:
        raise BuildProblem(("model", "patch_size"), f"patch_size {spec.patch_size} does not divide the "
                           f"{height}×{width} image; choose a divisor of both sides")
    patches = (height // spec.patch_size) * (width // spec.patch_size)
    x = keras.layers.Conv2D(spec.model_dim, spec.patch_size, strides=spec.patch_size,
                            kernel_initializer=initializer(spec.kernel_initializer), name="patch_embedding")(x)
    x = keras.layers.Reshape((patches, spec.model_dim), name="patches")(x)
    if spec.pooling == "class_token":
        x = ClassToken(name="class_token")(x)
    x = transformer_encoder(x, spec)
    if spec.pooling == "mean":
        return keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    x = keras.layers.Cropping1D((0, patches), name="class_token_out")(x)
    return keras.layers.Flatten(name="class_token_flat")(x)
