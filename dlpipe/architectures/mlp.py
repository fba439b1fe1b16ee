"""Multi-layer perceptron on all features: numbers, flattened images and sequences, and
token ids as a bag of embeddings."""

from __future__ import annotations

import keras

from dlpipe.architectures.inputs import Encoded, flat_features, initializer, l1_l2
from dlpipe.spec.model import MLP


def build(spec: MLP, encoded: Encoded) -> keras.KerasTensor:
    x = flat_features(encoded, encoded.take(), spec.embedding_dim)
    regularizer = l1_l2(spec.l1, spec.l2)
    for i, units in enumerate(spec.units):
        x = keras.layers.Dense(units, kernel_initializer=initializer(spec.kernel_initializer),
                               kernel_regularizer=regularizer, use_bias=not spec.batch_norm, name=f"dense_{i}")(x)
        if spec.batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(spec.activation, name=f"{spec.activation}_{i}")(x)
        if spec.dropout:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i}")(x)
    return x
