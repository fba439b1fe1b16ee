"""Diffusion training (DDPM, Ho et al. 2020): a keras.Model whose `train_step` noises each
real image at a random step t and teaches the denoiser to predict that noise, so the model
trains through `dlpipe.training.fit.train` like any other: Keras `fit`, learning-rate
schedules, TensorBoard, augmentation, shuffle buffer, checkpoints and resume.

    x₀ = the image scaled to −1..1,  t ~ U{0..T−1},  ε ~ N(0, I)
    x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε,   loss = mean (ε̂(x_t, t[, y]) − ε)²

A class-conditioned denoiser sees "no class" (index K) instead of the class for a share
`label_dropout` of the images, so that sampling can use classifier-free guidance.

After each update an exponential moving average of the denoiser's weights moves towards
them: `ema` is a second denoiser of the same structure whose weights are that average;
sampling and export use it. Its decay is min(decay, (1 + n)/(10 + n)) after n updates. Both
denoisers, the update count and the noise's seed state are variables of this model, so
checkpoints hold them and a resumed run continues exactly.

The step is written once for every backend (dlpipe/training/steps.py: a gradient tape on
TensorFlow, `jax.value_and_grad` over Keras' stateless state on JAX); the networks are plain
Keras, built by dlpipe/architectures/diffusion.py, whose input names the pipeline passes in.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dlpipe.training.steps import train_step


class DiffusionModel(keras.Model):
    """`noisy`, `timestep`, `label`: the denoiser's input names; `image`: the name under
    which the training data's `x` holds the real images (in the data's units low..high)."""

    def __init__(self, denoiser: keras.Model, ema: keras.Model, *, alphas: np.ndarray, n_classes: int | None,
                 label_dropout: float, ema_decay: float, low: float, high: float, noisy: str, timestep: str,
                 label: str, image: str, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.denoiser, self.ema = denoiser, ema
        self.ema.trainable = False
        self.alphas = np.asarray(alphas, dtype=np.float32)
        self.timesteps = len(self.alphas)
        self.n_classes, self.label_dropout, self.ema_decay = n_classes, float(label_dropout), float(ema_decay)
        self.low, self.high = float(low), float(high)
        self.noisy_input, self.timestep_input, self.label_input, self.image_input = noisy, timestep, label, image
        self.noise = keras.random.SeedGenerator(seed)
        self.updates = keras.Variable(0.0, trainable=False, name="ema_updates")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        for target, source in zip(self.ema.weights, self.denoiser.weights, strict=True):
            # The average starts at the initial weights: a copy (on JAX, assigning a variable
            # shares its buffer, which the jitted step would then be given twice).
            target.assign(np.array(source.numpy()))
        self.built = True  # both denoisers are built; calling this model calls the trained one

    def compile(self, optimizer, jit_compile="auto"):
        super().compile(optimizer=optimizer, jit_compile=jit_compile, auto_scale_loss=False)
        optimizer.build(self.denoiser.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker]  # reset by fit at the start of each epoch

    def call(self, inputs, training=False):
        return self.denoiser(inputs, training=training)

    def train_step(self, *args):
        return train_step(self, self._step, *args)  # (data) on TensorFlow, (state, data) on JAX

    def _step(self, data, step):
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = x[self.image_input] if isinstance(x, dict) else x
        x0 = (ops.cast(images, "float32") - (self.high + self.low) / 2) * (2 / (self.high - self.low))
        batch = ops.shape(x0)[0]
        t = keras.random.randint((batch,), 0, self.timesteps, seed=self.noise)
        noise = keras.random.normal(ops.shape(x0), seed=self.noise)
        signal = ops.reshape(ops.take(ops.convert_to_tensor(self.alphas), t), (-1, 1, 1, 1))
        noisy = ops.sqrt(signal) * x0 + ops.sqrt(1.0 - signal) * noise
        inputs = {self.noisy_input: noisy, self.timestep_input: ops.cast(t, "float32")}
        if self.n_classes:
            dropped = keras.random.uniform((batch,), seed=self.noise) < self.label_dropout
            inputs[self.label_input] = ops.where(dropped, self.n_classes, ops.cast(labels, "int32"))

        def loss():
            predicted = self.denoiser(inputs, training=True)
            return ops.mean(ops.square(predicted - noise)), None

        loss, _ = step.minimize(self.optimizer, self.denoiser.trainable_weights, loss)
        self.updates.assign_add(1.0)
        decay = ops.minimum(self.ema_decay, (1.0 + self.updates) / (10.0 + self.updates))
        for average, weight in zip(self.ema.weights, self.denoiser.weights):
            average.assign(decay * average + (1.0 - decay) * weight)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}
