"""Building blocks shared by several architectures: the transformer encoder (transformer,
vit) and the recurrent stack (rnn)."""

from __future__ import annotations

import keras

from dlpipe.architectures.inputs import initializer
from dlpipe.architectures.layers import PositionEmbedding


def _dropout(x, rate: float, name: str):
    return keras.layers.Dropout(rate, name=name)(x) if rate else x


def encoder_block(x, spec, name: str, causal: bool = False):
    """Self-attention then a position-wise feed-forward network, each with a residual
    connection; layer normalization before each (pre) or after each sum (post)."""
    width = x.shape[-1]
    attention = keras.layers.MultiHeadAttention(
        spec.heads, spec.key_dim, dropout=spec.dropout, kernel_initializer=initializer(spec.kernel_initializer),
        name=f"{name}_attention")

    def feed_forward(h):
        h = keras.layers.Dense(spec.feed_forward, activation=spec.activation,
                               kernel_initializer=initializer(spec.kernel_initializer), name=f"{name}_ff_hidden")(h)
        h = _dropout(h, spec.dropout, f"{name}_ff_dropout")
        h = keras.layers.Dense(width, kernel_initializer=initializer(spec.kernel_initializer),
                               name=f"{name}_ff_out")(h)
        return _dropout(h, spec.dropout, f"{name}_ff_out_dropout")

    if spec.norm == "pre":
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_attention_norm")(x)
        h = attention(h, h, use_causal_mask=causal)
        x = keras.layers.Add(name=f"{name}_attention_residual")([x, _dropout(h, spec.dropout, f"{name}_attention_dropout")])
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ff_norm")(x)
        return keras.layers.Add(name=f"{name}_ff_residual")([x, feed_forward(h)])
    h = attention(x, x, use_causal_mask=causal)
    x = keras.layers.Add(name=f"{name}_attention_residual")([x, _dropout(h, spec.dropout, f"{name}_attention_dropout")])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_attention_norm")(x)
    x = keras.layers.Add(name=f"{name}_ff_residual")([x, feed_forward(x)])
    return keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ff_norm")(x)


def transformer_encoder(x, spec, causal: bool = False, name: str = "encoder"):
    """Positions added to a batch × steps × model_dim tensor, then `spec.blocks` encoder
    blocks (and a final layer normalization for pre-norm blocks)."""
    if spec.positions != "none":
        x = PositionEmbedding(spec.positions, name=f"{name}_positions")(x)
    x = _dropout(x, spec.dropout, f"{name}_input_dropout")
    for b in range(spec.blocks):
        x = encoder_block(x, spec, f"{name}_block{b}", causal=causal)
    if spec.norm == "pre":
        x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x)
    return x
