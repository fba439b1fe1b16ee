"""Recurrent network (simple RNN, LSTM or GRU), stacked, optionally bidirectional; many-to-one
(the last state) or many-to-many (a state per step)."""

from __future__ import annotations

import keras

from dlpipe.architectures.inputs import Encoded, initializer, l1_l2, sequence_inputs
from dlpipe.spec.model import RNN

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}


def build(spec: RNN, encoded: Encoded) -> keras.KerasTensor:
    x = sequence_inputs(encoded, spec.embedding_dim)
    for i, units in enumerate(spec.units):
        last = i == len(spec.units) - 1
        layer = _CELLS[spec.cell](units, return_sequences=spec.return_sequences or not last, dropout=spec.dropout,
                                  kernel_initializer=initializer(spec.kernel_initializer),
                                  kernel_regularizer=l1_l2(spec.l1, spec.l2), name=f"{spec.cell}_{i}")
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{spec.cell}_{i}")
        x = layer(x)
    return x
