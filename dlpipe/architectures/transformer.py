"""Transformer encoder over sequences: token ids through an embedding, numeric time steps
through a dense projection, positions added, encoder blocks, then pooling (or a vector per
step for per-step outputs)."""

from __future__ import annotations

import keras

from dlpipe.architectures.blocks import transformer_encoder
from dlpipe.architectures.inputs import Encoded, initializer, sequence_inputs
from dlpipe.spec.model import Transformer


def build(spec: Transformer, encoded: Encoded) -> keras.KerasTensor:
    x = sequence_inputs(encoded, spec.model_dim)
    if x.shape[-1] != spec.model_dim:  # numeric channels (or several sequences joined)
        x = keras.layers.Dense(spec.model_dim, kernel_initializer=initializer(spec.kernel_initializer),
                               name="projection")(x)
    x = transformer_encoder(x, spec, causal=spec.causal)
    if spec.return_sequences:
        return x
    if spec.pooling == "mean":
        return keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    if spec.pooling == "max":
        return keras.layers.GlobalMaxPooling1D(name="max_pool")(x)
    # The last position: with `causal`, the only one that has seen the whole sequence.
    x = keras.layers.Cropping1D((x.shape[1] - 1, 0), name="last_step")(x)
    return keras.layers.Flatten(name="last_step_flat")(x)
