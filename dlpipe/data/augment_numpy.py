"""`prepare.augmentation` without TensorFlow: the same changes as dlpipe/data/augment.py,
drawn by NumPy, for the numpy batches a backend other than TensorFlow trains from.

`augmenter(spec, data)` returns `(x, y, weight, seed) → (x, y, weight)` like
augment.augmenter, where `seed` is a tuple of ints (spec seed, epoch, batch number): every
draw comes from `np.random.default_rng((*seed, step, input))`, so the same run — or a
resumed one — sees the same batches, and no random state lives anywhere. The draws are not
TensorFlow's (its stateless generators are not NumPy's), but each change has the same
distribution of parameters and the same pixel arithmetic: the projective transforms
(rotation, zoom, translation, crop) sample as TensorFlow's ImageProjectiveTransformV3 does
(bilinear or nearest, zeros outside; tests/test_augment.py checks them equal on the same
matrices). The scales (value range, standard deviations) come from augment.scales.
"""

from __future__ import annotations

import math

import numpy as np

from dlpipe.data.augment import scales
from dlpipe.spec.prepare import IMAGE_AUGMENTATIONS, SEQUENCE_AUGMENTATIONS


def augmenter(spec, data):
    """The numpy batch function for the spec's `prepare.augmentation`, or None when it is empty."""
    steps = list(spec.prepare.augmentation)
    if not steps:
        return None
    found = scales(spec, data)

    def apply(x, y, weight, seed):
        x = dict(x)
        for k, step in enumerate(steps):
            def rng(j, k=k):
                return np.random.default_rng([*seed, k, j])

            if step.type in IMAGE_AUGMENTATIONS:
                for j, name in enumerate(found.images):
                    x[name] = image(step, np.asarray(x[name], np.float32), rng(j), found.value_range[name])
            elif step.type in SEQUENCE_AUGMENTATIONS:
                for j, name in enumerate(found.sequences):
                    x[name], factor = _sequence(step, np.asarray(x[name], np.float32), rng(j), found.std[name])
                    if found.forecasting and factor is not None:  # the labels continue the scaled target
                        y = y * factor[:, 0, :1]
            elif step.type == "gaussian_noise":
                for j, name in enumerate(found.numbers):
                    values = np.asarray(x[name], np.float32)
                    x[name] = values + (rng(j).normal(0.0, step.stddev, values.shape) * found.std[name]
                                        ).astype(np.float32)
            elif step.type == "mixup":
                x, y, weight = _mixup(step, x, y, weight, rng(0), found.images + found.sequences + found.numbers)
        return x, y, weight

    return apply


def augmented_batches(batches, augment, seed: int, first_epoch: int):
    """Numpy training batches, epoch by epoch (`batches`: an iterable of one iterable of (x, y,
    weight) batches per epoch, from `first_epoch` on), each changed by `augment` seeded by
    (seed, epoch, batch number) — what training/inputs.py does in tf.data."""
    for epoch, epoch_batches in enumerate(batches, start=first_epoch):
        for number, batch in enumerate(epoch_batches):
            if len(batch) == 1:  # unlabeled (a GAN's images)
                yield augment(batch[0], None, None, (seed, epoch, number))[:1]
            else:
                x, y, *weight = batch
                weight = weight[0] if weight else np.ones(len(y), np.float32)
                yield augment(x, y, weight, (seed, epoch, number))


def transform(images: np.ndarray, matrices: np.ndarray, interpolation: str = "bilinear") -> np.ndarray:
    """Per-image projective transforms (N × 8: output point → input point, as TensorFlow's
    ImageProjectiveTransformV3 takes them), zeros outside the image."""
    n, height, width, _ = images.shape
    a0, a1, a2, b0, b1, b2, c0, c1 = (matrices[:, i].astype(np.float32)[:, None, None] for i in range(8))
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    projection = c0 * xs + c1 * ys + 1.0
    in_x = (a0 * xs + a1 * ys + a2) / projection
    in_y = (b0 * xs + b1 * ys + b2) / projection
    batch = np.arange(n)[:, None, None]

    def read(y, x):
        """Pixels at integer (y, x) — n × H × W × C — zero where outside."""
        inside = (y >= 0) & (y <= height - 1) & (x >= 0) & (x <= width - 1)
        values = images[batch, np.clip(y, 0, height - 1).astype(np.int64), np.clip(x, 0, width - 1).astype(np.int64)]
        return np.where(inside[..., None], values, np.float32(0.0))

    if interpolation == "nearest":  # rounding half away from zero, as std::round
        return read(np.sign(in_y) * np.floor(np.abs(in_y) + 0.5), np.sign(in_x) * np.floor(np.abs(in_x) + 0.5))
    y0, x0 = np.floor(in_y), np.floor(in_x)
    y1, x1 = y0 + 1, x0 + 1
    top = (x1 - in_x)[..., None] * read(y0, x0) + (in_x - x0)[..., None] * read(y0, x1)
    bottom = (x1 - in_x)[..., None] * read(y1, x0) + (in_x - x0)[..., None] * read(y1, x1)
    return ((y1 - in_y)[..., None] * top + (in_y - y0)[..., None] * bottom).astype(np.float32)


def image(step, images: np.ndarray, rng: np.random.Generator, value_range: float) -> np.ndarray:
    """One image step on a float32 batch (N × H × W × C)."""
    n, height, width = images.shape[0], float(images.shape[1]), float(images.shape[2])
    zeros, ones = np.zeros(n, np.float32), np.ones(n, np.float32)

    def uniform(shape, low, high):
        return rng.uniform(low, high, shape).astype(np.float32)

    if step.type == "flip":
        if step.mode in ("horizontal", "horizontal_and_vertical"):
            flip = rng.random(n) < 0.5
            images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
        if step.mode in ("vertical", "horizontal_and_vertical"):
            flip = rng.random(n) < 0.5
            images = np.where(flip[:, None, None, None], images[:, ::-1], images)
        return images
    if step.type == "rotation":
        angle = uniform(n, -step.factor * 2 * math.pi, step.factor * 2 * math.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
        y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
        return transform(images, np.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1))
    if step.type == "zoom":
        scale = 1.0 + uniform(n, -step.factor, step.factor)
        return transform(images, np.stack([scale, zeros, (width - 1) / 2 * (1 - scale), zeros, scale,
                                           (height - 1) / 2 * (1 - scale), zeros, zeros], axis=1))
    if step.type in ("translation", "crop"):
        if step.type == "translation":
            dx = uniform(n, -step.factor, step.factor) * width
            dy = uniform(n, -step.factor, step.factor) * height
            interpolation = "bilinear"
        else:  # pad by `padding` zeros, cut a window of the original size: a whole-pixel shift
            dx = rng.integers(-step.padding, step.padding + 1, n).astype(np.float32)
            dy = rng.integers(-step.padding, step.padding + 1, n).astype(np.float32)
            interpolation = "nearest"
        return transform(images, np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1), interpolation)
    if step.type == "contrast":
        factor = 1.0 + uniform((n, 1, 1, 1), -step.factor, step.factor)
        mean = images.mean(axis=(1, 2), keepdims=True)
        return ((images - mean) * factor + mean).astype(np.float32)
    if step.type == "brightness":
        return (images + uniform((n, 1, 1, 1), -step.factor, step.factor) * value_range).astype(np.float32)
    if step.type == "noise":
        return (images + rng.normal(0.0, step.stddev, images.shape) * value_range).astype(np.float32)
    raise ValueError(f"unknown image augmentation {step.type!r}")


def _sequence(step, values: np.ndarray, rng: np.random.Generator, std: np.ndarray):
    """(changed batch × steps × channels, the per-example factor of `scaling` or None)."""
    if step.type == "jitter":
        return (values + rng.normal(0.0, step.stddev, values.shape) * std).astype(np.float32), None
    factor = rng.normal(1.0, step.stddev, (values.shape[0], 1, values.shape[2])).astype(np.float32)
    return values * factor, factor


def _mixup(step, x, y, weight, rng: np.random.Generator, blended: list[str]):
    """augment._mixup in NumPy: λ ~ Beta(α, α) per example (a ratio of two gamma draws), the
    batch given twice, labelled y₁ with weight λ and y₂ with weight 1 − λ, weights doubled."""
    n = len(y)
    g1, g2 = rng.gamma(step.alpha, size=n), rng.gamma(step.alpha, size=n)
    lam = (g1 / np.maximum(g1 + g2, 1e-12)).astype(np.float32)
    partner = rng.permutation(n)
    mixed = {}
    for name, values in x.items():
        values = np.asarray(values)
        if name in blended:
            lam_b = lam.reshape((n,) + (1,) * (values.ndim - 1)).astype(values.dtype)
            values = lam_b * values + (1 - lam_b) * values[partner]
        mixed[name] = np.concatenate([values, values])
    y = np.concatenate([y, y[partner]])
    weight = np.concatenate([weight * lam, weight * (1 - lam)]).astype(np.float32) * 2.0
    return mixed, y, weight
