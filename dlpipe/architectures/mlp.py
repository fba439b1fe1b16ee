"""Multi-layer perceptron on the concatenation of all features."""

from __future__ import annotations

import keras

from dlpipe.architectures.inputs import flat_concat
from dlpipe.spec.model import MLP


def build(spec: MLP, encoded: dict[str, keras.KerasTensor]) -> keras.KerasTensor:
    x = flat_concat(list(encoded.values()))
    regularizer = keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2) if (spec.l1 or spec.l2) else None
    initializer = _initializer(spec.kernel_initializer)
    for i, units in enumerate(spec.units):
        x = keras.layers.Dense(units, kernel_initializer=initializer, kernel_regularizer=regularizer,
                               use_bias=not spec.batch_norm, name=f"dense_{i}")(x)
        if spec.batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(spec.activation, name=f"{spec.activation}_{i}")(x)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    return x


def _initializer(name: str):
    from dlpipe import registry

    return registry.load("initializer", name)()
