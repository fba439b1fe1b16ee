"""Selective state-space model (Mamba-style): a stack of gated blocks over sequences, each a
residual around layer normalization → `MambaBlock`; token ids are embedded and numeric time
steps projected to `model_dim` first.

`MambaBlock` (also a layer of the `graph` architecture) follows Gu & Dao, "Mamba: Linear-Time
Sequence Modeling with Selective State Spaces" (2023): an input projection to two branches of
width `expand · model_dim`; on one, a short causal depthwise convolution, SiLU and the
selective scan; the other, through SiLU, gates it; an output projection back to the input's
width. The scan's step size Δ and its projections B and C are computed from each step's
input (what makes it *selective*); A is diagonal, negative, stored as log(−A).

Written with keras.ops only: the recurrence runs as one compiled loop (`keras.ops.scan`) or,
with `scan: parallel`, as `keras.ops.associative_scan` (log depth over the steps); never as a
Python loop that the graph unrolls step by step.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from dlpipe.architectures.inputs import Encoded, initializer, sequence_inputs
from dlpipe.spec.model import SSM


def selective_scan(u, delta, a, b, c, d, parallel: bool = False):
    """y_t = C_t · h_t + D ⊙ u_t with h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t, h_0 = 0
    (zero-order hold for A, Euler for B, as Mamba discretises).

    u, delta: batch × steps × channels; a: channels × state (negative); b, c: batch × steps ×
    state; d: channels. Returns batch × steps × channels.

    parallel=False runs the recurrence as one compiled loop over the steps (`keras.ops.scan`:
    a while loop on TensorFlow, `lax.scan` on JAX): O(steps) work, the fastest on a CPU.
    parallel=True composes steps pairwise (an associative scan): O(log steps) depth and O(steps)
    work, but more memory traffic, for accelerators; it is also the form TFLite and ONNX
    convert (no loop in the graph). docs/benchmarks.md has both measured."""
    decay = ops.exp(delta[..., None] * a)  # batch × steps × channels × state, each in (0, 1]
    drive = (delta * u)[..., None] * b[:, :, None, :]
    if parallel and decay.shape[1] is not None:
        _, states = _pairwise_scan(decay, drive)
    elif parallel:  # steps unknown until run time
        _, states = ops.associative_scan(_compose, (decay, drive), axis=1)
    else:
        def step(h, inputs):
            h = inputs[0] * h + inputs[1]
            return h, h  # (Keras's TensorFlow scan wants outputs shaped like the carry)

        _, states = ops.scan(step, ops.zeros_like(decay[:, 0]), (ops.moveaxis(decay, 1, 0), ops.moveaxis(drive, 1, 0)))
        states = ops.moveaxis(states, 0, 1)
    y = ops.sum(states * c[:, :, None, :], axis=-1)
    if None not in tuple(u.shape[1:]):
        # TensorFlow's scans lose the static shape in a traced graph; layers after them need it.
        y = ops.reshape(y, (-1, *u.shape[1:]))
    return y + u * d


def _compose(earlier, later):
    """Two steps of h ↦ a·h + b composed: first `earlier`, then `later`."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def _pairwise_scan(a, b):
    """Every prefix of the maps h ↦ a_t·h + b_t along axis 1 (a known length): compose
    neighbouring pairs, scan the half-length sequence, fill in the even positions; the same
    recursion as an associative scan, unrolled at trace time on static slices. Keras's
    TensorFlow associative_scan decides odd and even lengths with `tf.cond` at run time,
    which tf2onnx cannot convert; with the length known here, Python decides."""
    steps = a.shape[1]
    if steps < 2:
        return a, b
    pairs = steps // 2
    first = (a[:, 0:2 * pairs:2], b[:, 0:2 * pairs:2])
    second = (a[:, 1:2 * pairs:2], b[:, 1:2 * pairs:2])
    odd_a, odd_b = _pairwise_scan(*_compose(first, second))  # prefixes ending at steps 1, 3, 5, …
    # Prefixes ending at steps 2, 4, …: the prefix up to the step before, then that step.
    rest = (a[:, 2::2], b[:, 2::2])
    count = rest[0].shape[1]
    even_a, even_b = _compose((odd_a[:, :count], odd_b[:, :count]), rest)
    even_a = ops.concatenate([a[:, :1], even_a], axis=1)
    even_b = ops.concatenate([b[:, :1], even_b], axis=1)

    def interleave(even, odd):
        shape = tuple(-1 if d is None else d for d in even.shape[2:])
        both = ops.reshape(ops.stack([even[:, :pairs], odd], axis=2), (-1, 2 * pairs, *shape))
        return ops.concatenate([both, even[:, pairs:]], axis=1) if steps % 2 else both

    return interleave(even_a, odd_a), interleave(even_b, odd_b)


class _StepBias(keras.initializers.Initializer):
    """Bias of Δ's projection: softplus⁻¹ of step sizes drawn log-uniformly from
    [dt_min, dt_max] (Mamba's initialisation), so Δ starts at timescales of 10 to 1000 steps."""

    def __init__(self, dt_min: float = 1e-3, dt_max: float = 1e-1, seed=None):
        self.uniform = keras.initializers.RandomUniform(math.log(dt_min), math.log(dt_max), seed=seed)

    def __call__(self, shape, dtype=None):
        dt = ops.exp(self.uniform(shape, dtype=dtype))
        return dt + ops.log(-ops.expm1(-dt))  # softplus⁻¹(dt) = log(exp(dt) − 1)


@keras.saving.register_keras_serializable(package="dlpipe")
class MambaBlock(keras.layers.Layer):
    """batch × steps × width → batch × steps × width: Mamba's gated selective state-space
    block (without its residual and normalization, which the `ssm` architecture adds).

    state_size: N, the state per channel; expand: inner width = expand × width; conv_width:
    the causal depthwise convolution's kernel; dt_rank: width of Δ's low-rank projection
    ("auto": ⌈width / 16⌉); scan: "sequential" or "parallel" (selective_scan). Masked steps
    (padding) leave the state unchanged."""

    def __init__(self, state_size: int = 16, expand: int = 2, conv_width: int = 4, dt_rank="auto",
                 kernel_initializer="glorot_uniform", scan: str = "sequential", **kwargs):
        super().__init__(**kwargs)
        for key, value in (("state_size", state_size), ("expand", expand), ("conv_width", conv_width)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MambaBlock {key} must be a positive integer, got {value!r}")
        if dt_rank != "auto" and (not isinstance(dt_rank, int) or isinstance(dt_rank, bool) or dt_rank < 1):
            raise ValueError(f"MambaBlock dt_rank must be 'auto' or a positive integer, got {dt_rank!r}")
        if scan not in ("sequential", "parallel"):
            raise ValueError(f"MambaBlock scan must be 'sequential' or 'parallel', got {scan!r}")
        self.state_size, self.expand, self.conv_width, self.dt_rank = state_size, expand, conv_width, dt_rank
        self.scan = scan
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        width = int(input_shape[-1])
        inner, n = self.expand * width, self.state_size
        rank = math.ceil(width / 16) if self.dt_rank == "auto" else self.dt_rank
        self.inner, self.rank = inner, rank

        def kernel(shape, name):
            # A fresh initializer per weight: one unseeded instance repeats its values.
            fresh = self.kernel_initializer.__class__.from_config(self.kernel_initializer.get_config())
            return self.add_weight(shape=shape, initializer=fresh, name=name)

        self.in_kernel = kernel((width, 2 * inner), "in_kernel")  # the scanned branch and the gate
        self.conv_kernel = self.add_weight(shape=(self.conv_width, inner), name="conv_kernel",
                                           initializer=keras.initializers.RandomUniform(
                                               -1 / math.sqrt(self.conv_width), 1 / math.sqrt(self.conv_width)))
        self.conv_bias = self.add_weight(shape=(inner,), initializer="zeros", name="conv_bias")
        self.x_kernel = kernel((inner, rank + 2 * n), "x_kernel")  # → Δ (low rank), B, C
        self.dt_kernel = self.add_weight(shape=(rank, inner), name="dt_kernel",
                                         initializer=keras.initializers.RandomUniform(-rank ** -0.5, rank ** -0.5))
        self.dt_bias = self.add_weight(shape=(inner,), initializer=_StepBias(), name="dt_bias")
        # A = −exp(a_log) starts as −(1, 2, …, N) in every channel (S4D-real).
        self.a_log = self.add_weight(shape=(inner, n), name="a_log", initializer=lambda shape, dtype=None: ops.log(
            ops.broadcast_to(ops.arange(1, shape[-1] + 1, dtype="float32"), shape)))
        self.d = self.add_weight(shape=(inner,), initializer="ones", name="d")
        self.out_kernel = kernel((inner, width), "out_kernel")

    def call(self, inputs, mask=None):
        dtype = inputs.dtype
        x = inputs
        if mask is not None:
            x = x * ops.cast(mask, dtype)[..., None]
        projected = ops.matmul(x, ops.cast(self.in_kernel, dtype))
        u, gate = projected[..., :self.inner], projected[..., self.inner:]
        # Causal depthwise convolution: step t sees steps t − conv_width + 1 … t (zeros before 0).
        steps = ops.shape(u)[1]
        padded = ops.pad(u, ((0, 0), (self.conv_width - 1, 0), (0, 0)))
        kernel = ops.cast(self.conv_kernel, dtype)
        u = sum(padded[:, k:k + steps, :] * kernel[k] for k in range(self.conv_width)) + ops.cast(self.conv_bias, dtype)
        u = ops.silu(u)
        parts = ops.matmul(u, ops.cast(self.x_kernel, dtype))
        n = self.state_size
        low, b, c = parts[..., :self.rank], parts[..., self.rank:self.rank + n], parts[..., self.rank + n:]
        delta = ops.softplus(ops.matmul(low, ops.cast(self.dt_kernel, dtype)) + ops.cast(self.dt_bias, dtype))
        if mask is not None:
            delta = delta * ops.cast(mask, dtype)[..., None]  # Δ = 0: the state passes padding unchanged
        a = -ops.exp(ops.cast(self.a_log, dtype))
        y = selective_scan(u, delta, a, b, c, ops.cast(self.d, dtype), parallel=self.scan == "parallel")
        return ops.matmul(y * ops.silu(gate), ops.cast(self.out_kernel, dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {**super().get_config(), "state_size": self.state_size, "expand": self.expand,
                "conv_width": self.conv_width, "dt_rank": self.dt_rank, "scan": self.scan,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def block_parameters(width: int, state_size: int, expand: int, conv_width: int, dt_rank="auto") -> int:
    """MambaBlock's weights, counted by hand (the tests check Keras agrees)."""
    inner = expand * width
    rank = math.ceil(width / 16) if dt_rank == "auto" else dt_rank
    return (width * 2 * inner + conv_width * inner + inner + inner * (rank + 2 * state_size) + rank * inner + inner
            + inner * state_size + inner + inner * width)


def build(spec: SSM, encoded: Encoded) -> keras.KerasTensor:
    x = sequence_inputs(encoded, spec.model_dim)
    if x.shape[-1] != spec.model_dim:  # numeric channels (or several sequences joined)
        x = keras.layers.Dense(spec.model_dim, kernel_initializer=initializer(spec.kernel_initializer),
                               name="projection")(x)
    for i in range(spec.blocks):
        h = keras.layers.LayerNormalization(epsilon=1e-5, name=f"ssm_block{i}_norm")(x)
        h = MambaBlock(spec.state_size, spec.expand, spec.conv_width, spec.dt_rank,
                       kernel_initializer=initializer(spec.kernel_initializer), scan=spec.scan,
                       name=f"ssm_block{i}")(h)
        if spec.dropout:
            h = keras.layers.Dropout(spec.dropout, name=f"ssm_block{i}_dropout")(h)
        x = keras.layers.Add(name=f"ssm_block{i}_residual")([x, h])
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="ssm_norm")(x)
    if spec.return_sequences:
        return x
    if spec.pooling == "mean":
        return keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    if spec.pooling == "max":
        return keras.layers.GlobalMaxPooling1D(name="max_pool")(x)
    # The last step: the only one whose state has read the whole sequence.
    x = keras.layers.Cropping1D((x.shape[1] - 1, 0), name="last_step")(x)
    return keras.layers.Flatten(name="last_step_flat")(x)
