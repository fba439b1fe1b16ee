"""A diffusion model's networks (`model: {type: diffusion}`): the denoiser (a small U-Net)
and the DDIM sampler built around it.

Forward process (Ho et al. 2020): an image x₀ in −1..1 becomes, at step t of T,
x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε with ε standard normal; ᾱ_t is the cumulative product of
(1 − β_t) over the noise schedule (`noise_schedule`: linear in β, or the cosine schedule of
Nichol & Dhariwal 2021). The denoiser learns ε from (x_t, t[, class]).

Sampling (DDIM, Song et al. 2021, η = 0): from standard normal noise, for a descending
subsequence τ of `steps` timesteps (`sampling_timesteps`),
    x̂₀ = (x_τᵢ − √(1 − ᾱ_τᵢ) ε̂) / √ᾱ_τᵢ,  clipped to −1..1
    x_τᵢ₊₁ = √ᾱ_τᵢ₊₁ · x̂₀ + √(1 − ᾱ_τᵢ₊₁) · ε̂
and the last x̂₀ is the image. η = 0 makes the sampler a deterministic function of the
starting noise (and the class), so an exported sampler can be verified against the trained
one on fixed inputs. With classes, classifier-free guidance (Ho & Salimans 2022) mixes
the conditional and unconditional predictions, ε̂ = ε̂(∅) + w · (ε̂(y) − ε̂(∅)); the
"no class" is class index K (the denoiser's embedding holds K + 1 vectors) and training
drops the class to it with probability `label_dropout`.

The data's own units (the training split's `low..high`) map to −1..1 before training, and
the sampler maps its output back, so the exported sampler emits images like the data's.

Only keras.layers and keras.ops: the networks build on any backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from dlpipe.architectures import BuildProblem

NOISY = "noisy"
"""The denoiser's image input: a noisy image in −1..1."""
TIMESTEP = "timestep"
"""The denoiser's step input: t in 0..T−1 (float32, one per image)."""
LABEL = "label"
"""The class input of a class-conditioned denoiser and sampler (K: no class)."""
NOISE = "noise"
"""The sampler's input: the starting noise x_T, standard normal, one image's shape."""


def noise_schedule(kind: str, timesteps: int) -> np.ndarray:
    """ᾱ_t for t = 0..T−1 (float64): the fraction of the image's variance left at step t."""
    if kind == "linear":
        # Ho et al.'s 1e-4..0.02 over 1,000 steps, scaled so that other T reach the same end
        # point (Nichol & Dhariwal's scaling).
        scale = 1000 / timesteps
        betas = np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)
    elif kind == "cosine":
        s = 0.008
        f = np.cos((np.arange(timesteps + 1, dtype=np.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    else:
        raise ValueError(f"noise schedule must be 'linear' or 'cosine', got {kind!r}")
    return np.cumprod(1.0 - np.clip(betas, 0.0, 0.999))


def sampling_timesteps(timesteps: int, steps: int) -> list[int]:
    """DDIM's subsequence (Song et al.'s spacing): `steps` timesteps ⌊i·T/steps⌋, i = 0..steps−1,
    from the highest down to 0. It starts below T−1, where the cosine schedule leaves almost
    no signal (ᾱ ≈ 1e-9 would divide the first estimate of x₀ by ≈ 3e-5, magnifying float
    round-off until an exported copy's images differ visibly from the trained sampler's)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"sampling steps must be 1..{timesteps}, got {steps}")
    return [i * timesteps // steps for i in reversed(range(steps))]


def _groups(channels: int) -> int:
    """Group normalization's groups: the largest divisor of `channels` up to 8."""
    return max(g for g in range(1, 9) if channels % g == 0)


@keras.saving.register_keras_serializable(package="dlpipe")
class TimestepEmbedding(keras.layers.Layer):
    """t (one number per image) → [sin(t·ω), cos(t·ω)], `width` numbers, the frequencies ω
    spaced geometrically from 1 to 1/10000 (the transformer's positions, for a step)."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        if width < 2 or width % 2:
            raise ValueError(f"TimestepEmbedding width must be an even number ≥ 2, got {width}")
        self.width = width

    def call(self, t):
        half = self.width // 2
        frequencies = np.exp(-math.log(10000.0) * np.arange(half) / max(half - 1, 1)).astype(np.float32)
        # A tensor, not a NumPy array, on the right: torch's tensor * ndarray goes through
        # NumPy's deprecated __array_wrap__ (a warning per call).
        angles = ops.cast(ops.reshape(t, (-1, 1)), "float32") * ops.convert_to_tensor(frequencies[None, :])
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.width)

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def build_denoiser(spec, image_shape: tuple[int, ...], n_classes: int | None) -> keras.Model:
    """(noisy image in −1..1, t[, class]) → the noise ε it holds, same shape as the image.

    A U-Net: a level per entry of `unet.filters` (the first at the image's size, each next
    one at half the side), `unet.blocks` residual blocks per level on the way down and one
    more on the way up (each reading the skip connection of its level), self-attention at
    the lowest resolution when `unet.attention`, and the time (and class) embedding added
    inside every residual block."""
    unet = spec.unet
    height, width, channels = image_shape
    factor = 2 ** (len(unet.filters) - 1)
    if height % factor or width % factor:
        raise BuildProblem(("model", "unet", "filters"),
                           f"{len(unet.filters)} levels halve the side {len(unet.filters) - 1} times (÷{factor}); "
                           f"the images are {height}×{width}, not divisible by {factor}: use fewer levels")
    noisy = keras.Input(shape=image_shape, name=NOISY)
    timestep = keras.Input(shape=(), name=TIMESTEP)
    inputs = [noisy, timestep]
    embedding_width = 4 * unet.filters[0]
    e = TimestepEmbedding(unet.filters[0] if unet.filters[0] % 2 == 0 else unet.filters[0] + 1,
                          name="time_sinusoid")(timestep)
    e = keras.layers.Dense(embedding_width, activation="swish", name="time_dense1")(e)
    e = keras.layers.Dense(embedding_width, name="time_dense2")(e)
    if n_classes:
        label = keras.Input(shape=(), dtype="int32", name=LABEL)
        inputs.append(label)
        c = keras.layers.Embedding(n_classes + 1, embedding_width, name="class_embedding")(label)
        e = keras.layers.Add(name="time_and_class")([e, c])
    e = keras.layers.Activation("swish", name="embedding_act")(e)

    levels = len(unet.filters)
    x = keras.layers.Conv2D(unet.filters[0], 3, padding="same", name="stem")(noisy)
    skips = [x]
    for level, filters in enumerate(unet.filters):
        for block in range(unet.blocks):
            x = _residual(x, e, filters, unet.dropout, f"down{level}_{block}")
            if unet.attention and level == levels - 1:
                x = _attention(x, unet.heads, f"down{level}_{block}_attention")
            skips.append(x)
        if level < levels - 1:
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"down{level}_pool")(x)
            skips.append(x)
    x = _residual(x, e, unet.filters[-1], unet.dropout, "middle_1")
    if unet.attention:
        x = _attention(x, unet.heads, "middle_attention")
    x = _residual(x, e, unet.filters[-1], unet.dropout, "middle_2")
    for level in reversed(range(levels)):
        filters = unet.filters[level]
        for block in range(unet.blocks + 1):
            x = keras.layers.Concatenate(name=f"up{level}_{block}_join")([x, skips.pop()])
            x = _residual(x, e, filters, unet.dropout, f"up{level}_{block}")
            if unet.attention and level == levels - 1:
                x = _attention(x, unet.heads, f"up{level}_{block}_attention")
        if level > 0:  # at twice the side: the next level's width (the cost of a layer grows with the side²)
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}_resize")(x)
            x = keras.layers.Conv2D(unet.filters[level - 1], 3, padding="same", name=f"up{level}_conv")(x)
    x = keras.layers.GroupNormalization(_groups(x.shape[-1]), name="out_norm")(x)
    x = keras.layers.Activation("swish", name="out_act")(x)
    # Zero-initialised: the untrained denoiser predicts no noise, a calm start.
    x = keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros", name="noise")(x)
    return keras.Model(inputs, x, name="denoiser")


def _residual(x, embedding, filters: int, dropout: float, name: str):
    """GroupNorm → swish → conv, + the embedding (one vector per image, over every pixel),
    GroupNorm → swish → dropout → conv, added to the input (1×1 conv when widths differ)."""
    h = keras.layers.GroupNormalization(_groups(x.shape[-1]), name=f"{name}_norm1")(x)
    h = keras.layers.Activation("swish", name=f"{name}_act1")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(h)
    step = keras.layers.Dense(filters, name=f"{name}_time")(embedding)
    step = keras.layers.Reshape((1, 1, filters), name=f"{name}_time_map")(step)
    h = keras.layers.Add(name=f"{name}_add_time")([h, step])
    h = keras.layers.GroupNormalization(_groups(filters), name=f"{name}_norm2")(h)
    h = keras.layers.Activation("swish", name=f"{name}_act2")(h)
    if dropout:
        h = keras.layers.Dropout(dropout, name=f"{name}_dropout")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(h)
    if x.shape[-1] != filters:
        x = keras.layers.Conv2D(filters, 1, name=f"{name}_skip")(x)
    return keras.layers.Add(name=f"{name}_out")([x, h])


def _attention(x, heads: int, name: str):
    """Self-attention over the pixels of a (small) map, added to its input."""
    height, width, channels = x.shape[1:]
    h = keras.layers.GroupNormalization(_groups(channels), name=f"{name}_norm")(x)
    h = keras.layers.Reshape((height * width, channels), name=f"{name}_tokens")(h)
    h = keras.layers.MultiHeadAttention(heads, max(channels // heads, 1), name=f"{name}_mha")(h, h)
    h = keras.layers.Reshape((height, width, channels), name=f"{name}_map")(h)
    return keras.layers.Add(name=f"{name}_out")([x, h])


@keras.saving.register_keras_serializable(package="dlpipe")
class DDIMSampler(keras.layers.Layer):
    """Starting noise x_T (and a class) → an image in the data's units: DDIM (η = 0) over a
    fixed number of steps, as one loop op inside the graph, so that the whole sampler is one
    Keras model that exports and verifies like any other.
    `guidance` w ≠ 1 with classes: classifier-free guidance, both predictions from one
    denoiser call on a doubled batch."""

    def __init__(self, denoiser, *, timesteps: int, schedule: str, steps: int, guidance: float = 1.0,
                 n_classes: int | None = None, low: float = -1.0, high: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(denoiser, dict):
            denoiser = keras.saving.deserialize_keras_object(denoiser)
        self.denoiser = denoiser
        self.timesteps, self.schedule, self.steps = int(timesteps), schedule, int(steps)
        self.guidance, self.n_classes = float(guidance), n_classes
        self.low, self.high = float(low), float(high)
        self.alphas = noise_schedule(schedule, self.timesteps)
        self.sequence = sampling_timesteps(self.timesteps, self.steps)

    def build(self, input_shape):
        self.built = True  # the denoiser is built already

    def _noise(self, x, t, labels):
        batch = ops.shape(x)[0]
        steps = ops.ones((batch,), dtype="float32") * t
        if labels is None:
            return self.denoiser({NOISY: x, TIMESTEP: steps})
        if self.guidance == 1.0:
            return self.denoiser({NOISY: x, TIMESTEP: steps, LABEL: labels})
        nothing = ops.full((batch,), self.n_classes, dtype="int32")
        both = self.denoiser({NOISY: ops.concatenate([x, x]), TIMESTEP: ops.concatenate([steps, steps]),
                              LABEL: ops.concatenate([labels, nothing])})
        conditional, unconditional = both[:batch], both[batch:]
        return unconditional + self.guidance * (conditional - unconditional)

    def call(self, inputs):
        if isinstance(inputs, dict):
            x, labels = inputs[NOISE], inputs.get(LABEL)
        else:
            x, labels = inputs, None
        if labels is not None:
            labels = ops.cast(labels, "int32")
        x = ops.cast(x, "float32")
        # One loop op (tf.while_loop, lax.fori_loop), not `steps` copies of the denoiser: the
        # graph, its tracing and the exported file stay the size of one step.
        timesteps = ops.convert_to_tensor(np.asarray(self.sequence, dtype=np.float32))
        signal = ops.convert_to_tensor(np.asarray([self.alphas[t] for t in self.sequence], dtype=np.float32))
        following = ops.convert_to_tensor(np.asarray([self.alphas[t] for t in self.sequence[1:]] + [1.0],
                                                     dtype=np.float32))

        def step(i, state):
            x, _ = state
            a, a_next = signal[i], following[i]
            noise = self._noise(x, timesteps[i], labels)
            image = ops.clip((x - ops.sqrt(1.0 - a) * noise) / ops.sqrt(a), -1.0, 1.0)
            return ops.sqrt(a_next) * image + ops.sqrt(1.0 - a_next) * noise, image

        _, image = ops.fori_loop(0, len(self.sequence), step, (x, x))
        return image * ((self.high - self.low) / 2) + (self.high + self.low) / 2

    def compute_output_shape(self, input_shape):
        return input_shape[NOISE] if isinstance(input_shape, dict) else input_shape

    def get_config(self):
        return {**super().get_config(), "denoiser": keras.saving.serialize_keras_object(self.denoiser),
                "timesteps": self.timesteps, "schedule": self.schedule, "steps": self.steps,
                "guidance": self.guidance, "n_classes": self.n_classes, "low": self.low, "high": self.high}


def build_sampler(denoiser: keras.Model, spec, image_shape: tuple[int, ...], n_classes: int | None,
                  low: float, high: float, steps: int | None = None) -> keras.Model:
    """The exported model: noise (and a class) → image in the data's units, by DDIM with
    `model.sampler.steps` steps (or `steps`) over `denoiser`'s weights (shared, not copied)."""
    noise = keras.Input(shape=image_shape, name=NOISE)
    inputs = {NOISE: noise}
    if n_classes:
        inputs[LABEL] = keras.Input(shape=(), dtype="int32", name=LABEL)
    layer = DDIMSampler(denoiser, timesteps=spec.timesteps, schedule=spec.noise_schedule,
                        steps=steps or spec.sampler.steps, guidance=spec.sampler.guidance if n_classes else 1.0,
                        n_classes=n_classes, low=low, high=high, name="ddim")
    return keras.Model(inputs, layer(inputs), name="sampler")


def fixed_noise(count: int, image_shape: tuple[int, ...], n_classes: int | None, seed: int):
    """Seeded starting noise (and labels cycling through the classes): the same draws at
    every evaluation and in every export check."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((count, *image_shape)).astype(np.float32)
    labels = (np.arange(count) % n_classes).astype(np.int32) if n_classes else None
    return noise, labels


def sample(sampler: keras.Model, noise: np.ndarray, labels: np.ndarray | None, batch_size: int = 250) -> np.ndarray:
    """Images from fixed starting noise (and labels), in inference mode: Keras' compiled
    predict function, traced once per sampler."""
    inputs = {NOISE: noise} if labels is None else {NOISE: noise, LABEL: labels}
    return np.asarray(sampler.predict(inputs, batch_size=batch_size, verbose=0))


def build(spec, encoded):
    """The architecture table's entry: a diffusion model is not one network with a head, so
    the supervised model assembly cannot build it; pipelines/diffusion.py builds it."""
    raise BuildProblem(("model", "type"), "a diffusion model is built by its own pipeline (task generation)")
