"""2-D convolutional network over one image feature (other features join in the head)."""

from __future__ import annotations

import keras

from dlpipe.architectures.inputs import Encoded, initializer as _initializer, one_image
from dlpipe.spec.model import CNN


def build(spec: CNN, encoded: Encoded) -> keras.KerasTensor:
    x = one_image(encoded, "cnn")

    for b, block in enumerate(spec.blocks):
        shortcut = x
        for c in range(block.convs):
            x = keras.layers.Conv2D(block.filters, block.kernel_size,
                                    strides=block.strides if c == 0 else 1, padding=block.padding,
                                    kernel_initializer=_initializer(spec.kernel_initializer),
                                    use_bias=not block.batch_norm, name=f"block{b}_conv{c}")(x)
            if block.batch_norm:
                x = keras.layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
            x = keras.layers.Activation(spec.activation, name=f"block{b}_{spec.activation}{c}")(x)
        if block.residual:
            if shortcut.shape[1:] != x.shape[1:]:
                shortcut = keras.layers.Conv2D(block.filters, 1, strides=block.strides, padding="same",
                                               name=f"block{b}_projection")(shortcut)
            x = keras.layers.Add(name=f"block{b}_residual")([x, shortcut])
        if block.pool != "none":
            pool = keras.layers.MaxPooling2D if block.pool == "max" else keras.layers.AveragePooling2D
            x = pool(block.pool_size, padding="same", name=f"block{b}_{block.pool}pool")(x)
        if block.dropout:
            x = keras.layers.Dropout(block.dropout, name=f"block{b}_dropout")(x)
    if spec.global_pool == "flatten":
        return keras.layers.Flatten(name="flatten")(x)
    pool = keras.layers.GlobalAveragePooling2D if spec.global_pool == "avg" else keras.layers.GlobalMaxPooling2D
    return pool(name=f"global_{spec.global_pool}pool")(x)
