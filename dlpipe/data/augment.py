"""Augmentation of training batches, in tf.data, with stateless random ops.

`augmenter(spec, data)` returns a function `(x, y, weight, seed) → (x, y, weight)` applied
to each training batch (dlpipe/training/inputs.py), where `seed` is derived from (spec seed,
epoch, batch number): the same run — or a resumed one — draws the same changes, and no
random state lives anywhere. Validation, test, model.keras and every export never see
these ops: Keras's random layers stay active inside a SavedModel (docs/architecture.md),
so augmentation is never part of a model here.

Scales are taken from the training split: image changes in units of the training images'
value range, noise on numbers and sequences in units of each column's (channel's)
standard deviation (`scales`). On a backend other than TensorFlow, dlpipe/data/augment_numpy.py
makes the same changes in NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlpipe.spec.prepare import IMAGE_AUGMENTATIONS, SEQUENCE_AUGMENTATIONS


def augmenter(spec, data):
    """The batch function for the spec's `prepare.augmentation`, or None when it is empty."""
    steps = list(spec.prepare.augmentation)
    if not steps:
        return None
    import tensorflow as tf

    found = scales(spec, data)
    images, sequences, numbers = found.images, found.sequences, found.numbers
    value_range, std, forecasting = found.value_range, found.std, found.forecasting

    def apply(x, y, weight, seed):
        x = dict(x)
        for k, step in enumerate(steps):
            step_seed = tf.random.experimental.stateless_fold_in(seed, k)
            if step.type in IMAGE_AUGMENTATIONS:
                for j, name in enumerate(images):
                    x[name] = _image(step, x[name], tf.random.experimental.stateless_fold_in(step_seed, j),
                                     value_range[name])
            elif step.type in SEQUENCE_AUGMENTATIONS:
                for j, name in enumerate(sequences):
                    sub = tf.random.experimental.stateless_fold_in(step_seed, j)
                    x[name], factor = _sequence(step, x[name], sub, std[name])
                    if forecasting and factor is not None:  # the labels continue the scaled target
                        y = y * factor[:, 0, :1]
            elif step.type == "gaussian_noise":
                for j, name in enumerate(numbers):
                    noise = tf.random.stateless_normal(tf.shape(x[name]), tf.random.experimental.stateless_fold_in(
                        step_seed, j), stddev=step.stddev)
                    x[name] = x[name] + noise * std[name]
            elif step.type == "mixup":
                x, y, weight = _mixup(step, x, y, weight, step_seed, images + sequences + numbers)
        return x, y, weight

    return apply


@dataclass
class Scales:
    """What the augmentation steps change and in which units, from the training split."""

    images: list[str]
    sequences: list[str]
    numbers: list[str]
    value_range: dict[str, float]
    """Each image input's value range (of the training images)."""
    std: dict[str, np.ndarray]
    """Each sequence's (channel's) and number's standard deviation, 1 where it is 0."""
    forecasting: bool


def scales(spec, data) -> Scales:
    """The inputs each kind of step changes and their scales (both augmenters use it)."""
    train = data.splits["train"].x
    kinds = {f.input_name: f.type for f in data.features}
    images = [n for n, k in kinds.items() if k == "image"]
    sequences = [n for n, k in kinds.items() if k == "sequence"]
    numbers = [n for n, k in kinds.items() if k == "numerical"]
    # A streamed image source holds a sample of the training images; its one pass measured
    # the whole split's range (data/image_streaming.py).
    value_range = {n: getattr(data, "extra", {}).get("value_range", {}).get(n) or float(train[n].max() - train[n].min()) or 1.0
                   for n in images}
    std = {n: np.where(train[n].std(axis=tuple(range(train[n].ndim - 1))) == 0, 1.0,
                       train[n].std(axis=tuple(range(train[n].ndim - 1)))).astype(np.float32)
           for n in sequences + numbers}
    return Scales(images, sequences, numbers, value_range, std, spec.data.windows is not None)


def _uniform(seed, shape, low, high):
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _transform(images, matrices, interpolation: str = "BILINEAR"):
    """Per-image projective transforms (N × 8: output point → input point), zeros outside."""
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.cast(matrices, tf.float32), output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation=interpolation, fill_mode="CONSTANT")


def _image(step, images, seed, value_range: float):
    import tensorflow as tf

    n = tf.shape(images)[0]
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    zeros, ones = tf.zeros([n]), tf.ones([n])
    if step.type == "flip":
        if step.mode in ("horizontal", "horizontal_and_vertical"):
            images = tf.image.stateless_random_flip_left_right(images, seed)
        if step.mode in ("vertical", "horizontal_and_vertical"):
            images = tf.image.stateless_random_flip_up_down(images, tf.random.experimental.stateless_fold_in(seed, 1))
        return images
    if step.type == "rotation":
        angle = _uniform(seed, [n], -step.factor * 2 * math.pi, step.factor * 2 * math.pi)
        cos, sin = tf.cos(angle), tf.sin(angle)
        x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
        y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
        return _transform(images, tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1))
    if step.type == "zoom":
        scale = 1.0 + _uniform(seed, [n], -step.factor, step.factor)
        return _transform(images, tf.stack([scale, zeros, (width - 1) / 2 * (1 - scale), zeros, scale,
                                            (height - 1) / 2 * (1 - scale), zeros, zeros], axis=1))
    if step.type in ("translation", "crop"):
        if step.type == "translation":
            dx = _uniform(seed, [n], -step.factor, step.factor) * width
            dy = _uniform(tf.random.experimental.stateless_fold_in(seed, 1), [n], -step.factor, step.factor) * height
            interpolation = "BILINEAR"
        else:  # pad by `padding` zeros, cut a window of the original size: a whole-pixel shift
            dx = tf.cast(tf.random.stateless_uniform([n], seed, -step.padding, step.padding + 1, dtype=tf.int32),
                         tf.float32)
            dy = tf.cast(tf.random.stateless_uniform([n], tf.random.experimental.stateless_fold_in(seed, 1),
                                                     -step.padding, step.padding + 1, dtype=tf.int32), tf.float32)
            interpolation = "NEAREST"
        return _transform(images, tf.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1), interpolation)
    if step.type == "contrast":
        factor = 1.0 + _uniform(seed, [n, 1, 1, 1], -step.factor, step.factor)
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        return (images - mean) * factor + mean
    if step.type == "brightness":
        return images + _uniform(seed, [n, 1, 1, 1], -step.factor, step.factor) * value_range
    if step.type == "noise":
        return images + tf.random.stateless_normal(tf.shape(images), seed, stddev=step.stddev) * value_range
    raise ValueError(f"unknown image augmentation {step.type!r}")


def _sequence(step, values, seed, std: np.ndarray):
    """(changed batch × steps × channels, the per-example factor of `scaling` or None)."""
    import tensorflow as tf

    if step.type == "jitter":
        return values + tf.random.stateless_normal(tf.shape(values), seed, stddev=step.stddev) * std, None
    shape = tf.stack([tf.shape(values)[0], 1, tf.shape(values)[2]])
    factor = tf.random.stateless_normal(shape, seed, mean=1.0, stddev=step.stddev)
    return values * factor, factor


def _mixup(step, x, y, weight, seed, blended: list[str]):
    """λ·x₁ + (1−λ)·x₂ with λ ~ Beta(α, α) per example; the batch is given twice, labelled
    y₁ with weight λ and y₂ with weight 1 − λ, which is the mixup loss for any loss that is
    a weighted mean over examples (doubled weights keep the loss's scale)."""
    import tensorflow as tf

    n = tf.shape(y)[0]
    g1 = tf.random.stateless_gamma([n], tf.random.experimental.stateless_fold_in(seed, 0), alpha=step.alpha)
    g2 = tf.random.stateless_gamma([n], tf.random.experimental.stateless_fold_in(seed, 1), alpha=step.alpha)
    lam = g1 / tf.maximum(g1 + g2, 1e-12)
    partner = tf.random.experimental.stateless_shuffle(tf.range(n), tf.random.experimental.stateless_fold_in(seed, 2))
    mixed = {}
    for name, values in x.items():
        if name in blended:
            shape = tf.concat([[n], tf.ones([tf.rank(values) - 1], tf.int32)], axis=0)
            lam_b = tf.reshape(tf.cast(lam, values.dtype), shape)
            values = lam_b * values + (1 - lam_b) * tf.gather(values, partner)
        mixed[name] = tf.concat([values, values], axis=0)
    y = tf.concat([y, tf.gather(y, partner)], axis=0)
    weight = tf.concat([weight * lam, weight * (1 - lam)], axis=0) * 2.0
    return mixed, y, weight
