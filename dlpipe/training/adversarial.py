"""Adversarial training: a keras.Model whose `train_step` updates the discriminator
`discriminator_steps` times, then the generator once, so the GAN trains through
`dlpipe.training.fit.train` like any model: Keras `fit`, learning-rate schedules on both
optimizers, TensorBoard, XLA, augmentation, shuffle buffer, checkpoints and resume.

The losses are the non-saturating ones of Goodfellow et al. (2014), on logits:
  discriminator  BCE(1 − label_smoothing, D(x)) + BCE(0, D(G(z)))
  generator      BCE(1, D(G(z)))
Each discriminator step takes its own share of the batch of real images: the input
pipeline serves `discriminator_steps × batch_size` images per step (as `x`, or `(x, labels,
weights)` for a class-conditioned GAN; the weights are all 1 and unused).

The step is written once for every backend (dlpipe/training/steps.py: gradient tapes on
TensorFlow, `jax.value_and_grad` over Keras' stateless state on JAX, both optimizers' state
carried through the jitted steps); the networks themselves are plain Keras, built by the
task's architecture (dlpipe/architectures/gan.py), which also names their inputs: the
pipeline passes those names in, so that training knows no task's architecture.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from dlpipe.training.steps import SeveralOptimizers, train_step


class AdversarialModel(SeveralOptimizers, keras.Model):
    """`latent`, `label`: the generator's input names (latent vector, class); `image`,
    `label`: the discriminator's (an image, its class). The training data's `x` holds the
    real images under `image`."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, latent: str, label: str, image: str,
                 latent_size: int, conditional: bool, discriminator_steps: int = 1, label_smoothing: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_input, self.label_input, self.image_input = latent, label, image
        self.latent_size = latent_size
        self.conditional = conditional
        self.discriminator_steps = discriminator_steps
        self.label_smoothing = label_smoothing
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("d_loss", "g_loss", "d_real", "d_fake")}
        self.built = True  # both networks are built; calling this model calls the generator

    def compile(self, generator_optimizer, discriminator_optimizer, jit_compile="auto"):
        # `optimizer` is the generator's (training.optimizer): what Keras and the learning-rate
        # log read. Each optimizer is built now over its own network's weights only.
        super().compile(optimizer=generator_optimizer, jit_compile=jit_compile, auto_scale_loss=False)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        generator_optimizer.build(self.generator.trainable_variables)
        discriminator_optimizer.build(self.discriminator.trainable_variables)

    @property
    def optimizer_updates(self) -> list:
        """Both optimizers and their updates per training step, for schedules and checkpoints
        (dlpipe.training.compile.optimizers)."""
        return [(self.generator_optimizer, 1), (self.discriminator_optimizer, self.discriminator_steps)]

    @property
    def metrics(self):
        return list(self.trackers.values())  # reset by fit at the start of each epoch

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _generate(self, count, labels, training: bool):
        z = keras.random.normal((count, self.latent_size), seed=self.noise)
        # By input name: Keras warns when a one-input model gets a bare tensor for its list.
        inputs = {self.latent_input: z, self.label_input: labels} if self.conditional else {self.latent_input: z}
        return self.generator(inputs, training=training)

    def _score(self, images, labels, training: bool):
        inputs = {self.image_input: images, self.label_input: labels} if self.conditional else \
            {self.image_input: images}
        return self.discriminator(inputs, training=training)

    def train_step(self, *args):
        return train_step(self, self._step, *args)  # (data) on TensorFlow, (state, data) on JAX

    def _step(self, data, step):
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = x[self.image_input] if isinstance(x, dict) else x
        steps = self.discriminator_steps
        image_parts = ops.split(images, steps) if steps > 1 else [images]
        label_parts = (ops.split(labels, steps) if steps > 1 else [labels]) if self.conditional else [None] * steps
        real_target = 1.0 - self.label_smoothing
        for real, real_labels in zip(image_parts, label_parts):
            # Generated outside the gradient: this step changes only the discriminator.
            fake = self._generate(ops.shape(real)[0], real_labels, training=True)

            def discriminator_loss(real=real, real_labels=real_labels, fake=fake):
                real_logits = self._score(real, real_labels, training=True)
                fake_logits = self._score(fake, real_labels, training=True)
                return (_bce(ops.full_like(real_logits, real_target), real_logits)
                        + _bce(ops.zeros_like(fake_logits), fake_logits)), real_logits

            d_loss, real_logits = step.minimize(self.discriminator_optimizer, self.discriminator.trainable_weights,
                                                discriminator_loss)
        count = ops.shape(image_parts[-1])[0]

        def generator_loss():
            fake = self._generate(count, label_parts[-1], training=True)
            fake_logits = self._score(fake, label_parts[-1], training=True)
            return _bce(ops.ones_like(fake_logits), fake_logits), fake_logits

        g_loss, fake_logits = step.minimize(self.generator_optimizer, self.generator.trainable_weights, generator_loss)
        self.trackers["d_loss"].update_state(d_loss)
        self.trackers["g_loss"].update_state(g_loss)
        # The discriminator's mean belief that real and generated images are real.
        self.trackers["d_real"].update_state(ops.mean(ops.sigmoid(real_logits)))
        self.trackers["d_fake"].update_state(ops.mean(ops.sigmoid(fake_logits)))
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def _bce(target, logits):
    return ops.mean(keras.losses.binary_crossentropy(target, logits, from_logits=True))


class Evaluations(keras.callbacks.Callback):
    """Every `every` epochs and after the last: generate `count` images from fixed latent
    vectors, compute FID and IS against the real images' features, draw the first `grid` of
    them into plots/samples_epoch_NNN.png, and add `fid` and `inception_score` to the epoch's
    logs. A monitor of `fit.train`: the history and the checkpoints keep the values, so a
    resumed run knows the evaluations made before it (`results`).

    `generate(latents, labels)` → images: the generator as it is now, in inference mode."""

    def __init__(self, generate: Callable[[np.ndarray, np.ndarray | None], np.ndarray], scorer, real_features,
                 latents, labels, *, count: int, every: int, epochs: int, grid: int, plots, class_names):
        super().__init__()
        self.generate, self.scorer, self.real_features = generate, scorer, real_features
        self.latents, self.labels = latents, labels
        self.count, self.every, self.epochs, self.grid = count, every, epochs, grid
        self.plots, self.class_names = plots, class_names

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and ((epoch + 1) % self.every == 0 or epoch + 1 == self.epochs):
            logs.update(self.evaluate(epoch + 1))

    def evaluate(self, epoch: int) -> dict:
        from dlpipe.metrics.generative import fid, inception_score
        from dlpipe.report.plots import image_grid

        shown = max(self.count, self.grid)
        labels = None if self.labels is None else self.labels[:shown]
        images = self.generate(self.latents[:shown], labels)
        features, probabilities = self.scorer(images[:self.count])
        result = {"fid": fid(self.real_features, features)}
        if probabilities is not None:  # an extractor without class probabilities (InceptionV3's pool): no IS
            result["inception_score"] = inception_score(probabilities)
        shown = f", IS {result['inception_score']:.2f}" if "inception_score" in result else ""
        captions = [self.class_names[i] for i in labels[:self.grid]] if labels is not None else [""] * self.grid
        image_grid(images[:self.grid], captions, self.plots / f"samples_epoch_{epoch:03d}.png",
                   f"Generated at epoch {epoch}: FID {result['fid']:.2f}{shown}", columns=10, fixed_range=True)
        print(f"[dlpipe] epoch {epoch}: FID {result['fid']:.3f}{shown}", file=sys.stderr, flush=True)
        return result


def results(history: dict[str, list[float]]) -> list[dict]:
    """The evaluations in a training history: epoch, FID and IS where they were computed."""
    scores = history.get("inception_score")
    return [{"epoch": i + 1, "fid": value, **({"inception_score": scores[i]} if scores else {})}
            for i, value in enumerate(history.get("fid", [])) if not math.isnan(value)]


def history_csv(history: dict[str, list[float]]) -> str:
    """history.csv: a row per epoch, a column per logged name (sorted); an empty cell where
    an epoch did not log it (FID and IS outside evaluations)."""
    names = sorted(history)
    epochs = max((len(values) for values in history.values()), default=0)
    lines = [",".join(["epoch", *names])]
    for e in range(epochs):
        cells = ["" if math.isnan(history[n][e]) else repr(history[n][e]) for n in names]
        lines.append(",".join([str(e + 1), *cells]))
    return "\n".join(lines) + "\n"
