"""The two networks of a GAN (`model: {type: gan}`): generator and discriminator.

Both work in −1..1: the generator ends in tanh, the discriminator reads images scaled to
that range. The scaling to and from the data's own units (`low..high`, the training split's
value range) is a layer inside each model, so the generator that is exported maps a latent
vector straight to an image in the data's units and the discriminator reads raw images.

A conditional GAN (a class per image) concatenates a learned class embedding to the latent
vector, and scores the class in the discriminator by projection (Miyato & Koyama 2018):
logit = w·φ(x) + b + e(y)·φ(x), with φ the discriminator's features and e(y) a learned
vector per class.

Only keras.layers and keras.ops: both networks also build on the JAX backend.
"""

from __future__ import annotations

import keras
import numpy as np

from dlpipe.architectures import BuildProblem
from dlpipe.spec.model import GAN, DCGANDiscriminator, DCGANGenerator, GANGraph

LATENT = "latent"
"""The generator's input: a standard normal latent vector."""
LABEL = "label"
"""The class input of a conditional GAN's generator and discriminator."""
IMAGE = "image"
"""The discriminator's image input."""


def build_generator(spec: GAN, image_shape: tuple[int, ...], n_classes: int | None,
                    low: float, high: float) -> keras.Model:
    """latent (and label) → image in the data's units (`low..high`)."""
    latent = keras.Input(shape=(spec.latent_size,), name=LATENT)
    inputs = [latent]
    x = latent
    if n_classes:
        label = keras.Input(shape=(), dtype="int32", name=LABEL)
        inputs.append(label)
        embedded = keras.layers.Embedding(n_classes, spec.class_embedding, name="class_embedding")(label)
        x = keras.layers.Concatenate(name="latent_and_class")([latent, embedded])
    net = spec.generator
    if isinstance(net, DCGANGenerator):
        x = _dcgan_generator(net, x, image_shape)
    else:
        x = _graph(net, {LATENT: x}, ("model", "generator"))
        if tuple(x.shape[1:]) != tuple(image_shape):
            raise BuildProblem(("model", "generator", "output"),
                               f"the generator's output has shape {tuple(x.shape[1:])}; the images have "
                               f"{tuple(image_shape)}")
    # tanh range → the data's units: x · (high − low)/2 + (high + low)/2.
    x = keras.layers.Rescaling((high - low) / 2, offset=(high + low) / 2, name="to_data_range")(x)
    return keras.Model(inputs, x, name="generator")


def _dcgan_generator(net: DCGANGenerator, x, image_shape: tuple[int, ...]):
    height, width, channels = image_shape
    factor = 2 ** len(net.filters)
    if height % factor or width % factor:
        raise BuildProblem(("model", "generator", "filters"),
                           f"{len(net.filters)} transposed convolutions double the side {len(net.filters)} times "
                           f"(×{factor}); the images are {height}×{width}, not divisible by {factor}: "
                           "use fewer filters")
    base = (height // factor, width // factor)
    x = keras.layers.Dense(base[0] * base[1] * net.filters[0], use_bias=not net.batch_norm, name="project")(x)
    if net.batch_norm:
        x = keras.layers.BatchNormalization(name="project_bn")(x)
    x = keras.layers.Activation(net.activation, name="project_act")(x)
    x = keras.layers.Reshape((*base, net.filters[0]), name="to_map")(x)
    for i, filters in enumerate(net.filters):
        x = keras.layers.Conv2DTranspose(filters, net.kernel_size, strides=2, padding="same",
                                         use_bias=not net.batch_norm, name=f"up{i + 1}")(x)
        if net.batch_norm:
            x = keras.layers.BatchNormalization(name=f"up{i + 1}_bn")(x)
        x = keras.layers.Activation(net.activation, name=f"up{i + 1}_act")(x)
    return keras.layers.Conv2D(channels, 3, padding="same", activation="tanh", name="to_image")(x)


def build_discriminator(spec: GAN, image_shape: tuple[int, ...], n_classes: int | None,
                        low: float, high: float) -> keras.Model:
    """image in the data's units (and label) → one real/fake logit per image."""
    image = keras.Input(shape=image_shape, name=IMAGE)
    inputs = [image]
    # The data's units → −1..1, the range the generator's tanh produces.
    x = keras.layers.Rescaling(2 / (high - low), offset=-(high + low) / (high - low), name="to_unit_range")(image)
    net = spec.discriminator
    if isinstance(net, DCGANDiscriminator):
        for i, filters in enumerate(net.filters):
            x = keras.layers.Conv2D(filters, net.kernel_size, strides=2, padding="same", name=f"down{i + 1}")(x)
            if net.batch_norm:
                x = keras.layers.BatchNormalization(name=f"down{i + 1}_bn")(x)
            x = keras.layers.LeakyReLU(0.2, name=f"down{i + 1}_act")(x)
            if net.dropout:
                x = keras.layers.Dropout(net.dropout, name=f"down{i + 1}_dropout")(x)
    else:
        x = _graph(net, {IMAGE: x}, ("model", "discriminator"))
    features = keras.layers.Flatten(name="features")(x)
    logit = keras.layers.Dense(1, name="logit")(features)
    if n_classes:
        label = keras.Input(shape=(), dtype="int32", name=LABEL)
        inputs.append(label)
        class_vector = keras.layers.Embedding(n_classes, features.shape[-1], name="class_projection")(label)
        projection = keras.layers.Dot(axes=1, name="class_score")([class_vector, features])
        logit = keras.layers.Add(name="conditional_logit")([logit, projection])
    return keras.Model(inputs, logit, name="discriminator")


def generate(generator: keras.Model, latents: np.ndarray, labels: np.ndarray | None,
             batch_size: int = 512) -> np.ndarray:
    """Images for fixed latent vectors (and labels), in inference mode."""
    parts = []
    for start in range(0, len(latents), batch_size):
        z = latents[start:start + batch_size]
        inputs = {LATENT: z, LABEL: labels[start:start + batch_size]} if labels is not None else {LATENT: z}
        parts.append(np.asarray(generator(inputs, training=False)))
    return np.concatenate(parts)


def fixed_latents(count: int, latent_size: int, n_classes: int | None, seed: int):
    """Seeded latent vectors (and labels cycling through the classes, so every class is
    generated equally often): the same draws at every evaluation and in every export check."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((count, latent_size)).astype(np.float32)
    labels = (np.arange(count) % n_classes).astype(np.int32) if n_classes else None
    return latents, labels


def build(spec: GAN, encoded):
    """The architecture table's entry: a GAN is not one network with a head, so the
    supervised model assembly cannot build it; pipelines/adversarial.py builds both networks."""
    raise BuildProblem(("model", "type"), "a gan is built by the adversarial pipeline (task generation)")


class _Feature:
    """What graph.build needs to know of an input: its name."""

    def __init__(self, name: str):
        self.name = name
        self.type = "input"


def _graph(net: GANGraph, tensors: dict, where: tuple):
    """A free layer graph (the layers of `model: {type: graph}`) on the named tensors;
    problems are located under `where` (model.generator or model.discriminator)."""
    from dlpipe.architectures import graph
    from dlpipe.architectures.inputs import Encoded
    from dlpipe.spec.model import Graph

    as_graph = Graph(type="graph", nodes=net.nodes, output=net.output, allow_imports=net.allow_imports)
    encoded = Encoded(dict(tensors), {name: _Feature(name) for name in tensors})
    try:
        return graph.build(as_graph, encoded)
    except BuildProblem as problem:
        raise BuildProblem(where + problem.path[1:], problem.message) from problem
