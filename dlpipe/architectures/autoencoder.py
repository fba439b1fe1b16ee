"""Autoencoder: encoder → latent → decoder, dense (all features flattened) or conv (one
image). The encoder and decoder are sub-models named `encoder` and `decoder`, so a trained
model gives embeddings with `model.get_layer("encoder")`.

In a supervised model the head reads the latent vector, and the reconstruction error of the
normalized inputs is added to the training loss (`reconstruction_weight`).
"""

from __future__ import annotations

import math

import keras

from dlpipe.architectures import BuildProblem
from dlpipe.architectures.inputs import Encoded, flat_features, initializer, one_image
from dlpipe.architectures.layers import ReconstructionLoss
from dlpipe.spec.model import Autoencoder


def build(spec: Autoencoder, encoded: Encoded) -> keras.KerasTensor:
    original = _original(spec, encoded)
    encoder, decoder = build_parts(spec, tuple(original.shape[1:]))
    latent = encoder(original)
    if not spec.reconstruction_weight:
        return latent
    return ReconstructionLoss(spec.reconstruction_weight, name="reconstruction_loss")(
        [latent, decoder(latent), original])


def _original(spec: Autoencoder, encoded: Encoded) -> keras.KerasTensor:
    """What the encoder reads and the decoder reproduces (normalized values)."""
    if spec.encoder == "conv":
        return one_image(encoded, "conv autoencoder")
    # Token ids have no reconstruction to compare with: they join the head instead.
    flat = flat_features(encoded, encoded.take("numerical", "image", "sequence"), 16)
    if flat is None:
        raise BuildProblem(("model", "type"), "an autoencoder needs numerical, image or sequence features")
    return flat


def build_parts(spec: Autoencoder, shape: tuple[int, ...]) -> tuple[keras.Model, keras.Model]:
    """(encoder, decoder) for inputs of `shape` (without the batch axis)."""
    if spec.encoder == "conv":
        return _conv_parts(spec, shape)
    return _dense_parts(spec, shape)


def _dense(spec, units: int, name: str, activation: str | None = None):
    return keras.layers.Dense(units, activation=spec.activation if activation is None else activation,
                              kernel_initializer=initializer(spec.kernel_initializer), name=name)


def _dense_parts(spec: Autoencoder, shape):
    (size,) = shape
    x = inputs = keras.Input(shape, name="encoder_input")
    for i, units in enumerate(spec.units):
        x = _dense(spec, units, f"encoder_dense_{i}")(x)
    encoder = keras.Model(inputs, _dense(spec, spec.latent, "latent", "linear")(x), name="encoder")
    x = inputs = keras.Input((spec.latent,), name="decoder_input")
    for i, units in enumerate(reversed(spec.units)):
        x = _dense(spec, units, f"decoder_dense_{i}")(x)
    decoder = keras.Model(inputs, _dense(spec, size, "reconstruction", "linear")(x), name="decoder")
    return encoder, decoder


def _conv_parts(spec: Autoencoder, shape):
    height, width, channels = shape
    x = inputs = keras.Input(shape, name="encoder_input")
    for i, filters in enumerate(spec.filters):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation=spec.activation,
                                kernel_initializer=initializer(spec.kernel_initializer), name=f"encoder_conv_{i}")(x)
    inner = tuple(int(d) for d in x.shape[1:])
    x = keras.layers.Flatten(name="encoder_flat")(x)
    encoder = keras.Model(inputs, _dense(spec, spec.latent, "latent", "linear")(x), name="encoder")

    x = inputs = keras.Input((spec.latent,), name="decoder_input")
    x = _dense(spec, math.prod(inner), "decoder_dense")(x)
    x = keras.layers.Reshape(inner, name="decoder_grid")(x)
    for i, filters in enumerate(reversed(spec.filters)):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation=spec.activation,
                                         kernel_initializer=initializer(spec.kernel_initializer),
                                         name=f"decoder_deconv_{i}")(x)
    # Stride-2 steps round odd sides up: crop back to the input's size.
    extra_h, extra_w = x.shape[1] - height, x.shape[2] - width
    if extra_h or extra_w:
        x = keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), name="decoder_crop")(x)
    x = keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer=initializer(spec.kernel_initializer),
                            name="reconstruction")(x)
    return encoder, keras.Model(inputs, x, name="decoder")


class EmbeddingModels:
    """The three views of one autoencoder the embedding task needs; they share every layer.

    `autoencoder`  raw inputs → reconstruction of the normalized inputs (what is trained)
    `encoder`      raw inputs → latent vector (what is saved, exported and predicted with)
    `original`     raw inputs → the normalized inputs (the reconstruction target)
    """

    def __init__(self, autoencoder: keras.Model, encoder: keras.Model, original: keras.Model):
        self.autoencoder, self.encoder, self.original = autoencoder, encoder, original


def build_embedding(spec, data, located=None) -> EmbeddingModels:
    """The embedding task's models for `spec.model` (an Autoencoder) on `data`'s features.
    Normalization is inside all three, so the encoder takes raw data like any dlpipe model."""
    from dlpipe.architectures.inputs import build_inputs

    try:
        inputs, encoded = build_inputs(data.features)
        original = _original(spec.model, encoded)
        left = sorted(encoded.rest())
        if left:
            raise BuildProblem(("data", "features"), f"an autoencoder reconstructs numbers and images; "
                               f"{', '.join(left)} cannot be reconstructed (drop them from data.features)")
        encoder, decoder = build_parts(spec.model, tuple(original.shape[1:]))
        latent = encoder(original)
    except BuildProblem as problem:
        if located is None:
            raise
        raise located(problem.path, problem.message) from problem
    name = spec.name.replace("-", "_").replace(".", "_")
    return EmbeddingModels(autoencoder=keras.Model(inputs, decoder(latent), name=f"{name}_autoencoder"),
                           encoder=keras.Model(inputs, latent, name=name),
                           original=keras.Model(inputs, original, name=f"{name}_original"))
