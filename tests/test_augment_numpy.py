"""prepare.augmentation in NumPy (dlpipe/data/augment_numpy.py, what backend jax trains
with): seeded by (seed, epoch, batch) alone, and each step the same change as the tf.data
step (dlpipe/data/augment.py) — the same pixels for the same transform parameters, and the
same distribution of changes over many draws."""

from __future__ import annotations

from types import SimpleNamespace as Namespace

import numpy as np
import pytest

from dlpipe.data import augment_numpy

IMAGE_STEPS = [Namespace(type="flip", mode="horizontal_and_vertical"), Namespace(type="rotation", factor=0.05),
               Namespace(type="zoom", factor=0.1), Namespace(type="translation", factor=0.1),
               Namespace(type="contrast", factor=0.2), Namespace(type="brightness", factor=0.1),
               Namespace(type="crop", padding=1), Namespace(type="noise", stddev=0.02)]


def digits():
    from sklearn.datasets import load_digits

    return load_digits().images[..., None].astype(np.float32), load_digits().target.astype(np.int64)


def setup(steps, x: dict[str, np.ndarray], kinds: dict[str, str], windows=None):
    """A spec and prepared data as the augmenters read them: the steps, the inputs' kinds, the
    training split."""
    spec = Namespace(prepare=Namespace(augmentation=steps), data=Namespace(windows=windows))
    data = Namespace(features=[Namespace(input_name=n, type=k) for n, k in kinds.items()],
                     splits={"train": Namespace(x=x)}, extra={})
    return spec, data


def test_the_same_seed_gives_the_same_batch_and_another_batch_other_changes():
    images, labels = digits()
    x = {"image": images[:64]}
    spec, data = setup(IMAGE_STEPS, {"image": images}, {"image": "image"})
    augment = augment_numpy.augmenter(spec, data)
    weight = np.ones(64, np.float32)
    first, again, other = (augment(x, labels[:64], weight, seed)[0]["image"] for seed in ((1, 0, 0), (1, 0, 0), (1, 0, 1)))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and first.shape == x["image"].shape
    assert not np.allclose(first, x["image"]) and not np.allclose(first, other)
    assert augment_numpy.augmenter(setup([], {"image": images}, {"image": "image"})[0], data) is None


def test_augmented_batches_are_a_function_of_seed_epoch_and_batch():
    """A run resumed at epoch 1 gets exactly the batches the uninterrupted run got there."""
    images, labels = digits()
    spec, data = setup([Namespace(type="noise", stddev=0.1)], {"image": images}, {"image": "image"})
    augment = augment_numpy.augmenter(spec, data)

    def epochs(first):
        return [[({"image": images[b * 10:(b + 1) * 10]}, labels[b * 10:(b + 1) * 10]) for b in range(3)]
                for _ in range(first, 3)]

    whole = list(augment_numpy.augmented_batches(epochs(0), augment, 7, 0))
    resumed = list(augment_numpy.augmented_batches(epochs(1), augment, 7, 1))
    assert len(whole) == 9 and len(resumed) == 6
    for (x, y, w), (x_again, y_again, w_again) in zip(whole[3:], resumed, strict=True):
        np.testing.assert_array_equal(x["image"], x_again["image"])
        np.testing.assert_array_equal(w, np.ones(10, np.float32))
    assert not np.allclose(whole[0][0]["image"], whole[3][0]["image"])  # epochs draw other changes
    (x,), = augment_numpy.augmented_batches([[({"image": images[:4]},)]], augment, 7, 0)  # unlabeled: (x,)
    assert x["image"].shape == (4, 8, 8, 1)


def test_mixup_blends_pairs_and_weighs_both_labels():
    x = {"i": np.arange(64, dtype=np.float32)[:, None]}
    spec, data = setup([Namespace(type="mixup", alpha=0.4)], x, {"i": "numerical"})
    mixed, y, weight = augment_numpy.augmenter(spec, data)(x, np.arange(64) % 3, np.ones(64, np.float32), (3, 0, 0))
    lam = weight[:64] / 2
    np.testing.assert_allclose(weight[64:] / 2, 1 - lam, atol=1e-6)
    np.testing.assert_array_equal(mixed["i"][:64], mixed["i"][64:])
    partner = ((mixed["i"][:64, 0] - lam * x["i"][:, 0]) / np.maximum(1 - lam, 1e-6))[(lam > 0.05) & (lam < 0.95)]
    np.testing.assert_allclose(partner, np.round(partner), atol=2e-2)  # another example of the batch
    np.testing.assert_array_equal(y[64:][(lam > 0.05) & (lam < 0.95)], np.round(partner).astype(int) % 3)
    from scipy.stats import beta, ks_1samp

    many = {"i": np.zeros((4000, 1), np.float32)}
    weight = augment_numpy.augmenter(spec, data)(many, np.zeros(4000), np.ones(4000, np.float32), (3, 0, 1))[2]
    assert ks_1samp(weight[:4000] / 2, beta(0.4, 0.4).cdf).pvalue > 1e-3  # λ ~ Beta(α, α)
    assert ks_1samp(weight[:4000] / 2, beta(0.3, 0.3).cdf).pvalue < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_the_projective_transform_samples_as_tensorflow_does(interpolation):
    import tensorflow as tf

    from dlpipe.data.augment import _transform

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 16, (12, 9, 7, 2)).astype(np.float32)
    angle, scale = rng.uniform(-0.5, 0.5, 12), rng.uniform(0.8, 1.2, 12)
    shift = rng.integers(-3, 4, (12, 2)) if interpolation == "nearest" else rng.uniform(-3, 3, (12, 2))
    matrices = np.stack([scale * np.cos(angle), -np.sin(angle), shift[:, 0], np.sin(angle), scale * np.cos(angle),
                         shift[:, 1], rng.uniform(-0.01, 0.01, 12), np.zeros(12)], axis=1).astype(np.float32)
    if interpolation == "nearest":  # whole-pixel shifts (the crop step): no coordinate falls near a .5
        matrices[:, [0, 4]], matrices[:, [1, 3, 6]] = 1.0, 0.0
    ours = augment_numpy.transform(images, matrices, interpolation)
    theirs = np.asarray(_transform(tf.constant(images), tf.constant(matrices), interpolation.upper()))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert (ours == 0).any() and not (ours == 0).all()  # some pixels came from outside: zeros


def _per_image(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """What a step did to each image: the mean of the change and its mean absolute value."""
    change = (after - before).reshape(len(before), -1)
    return np.stack([change.mean(axis=1), np.abs(change).mean(axis=1)], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize("step", IMAGE_STEPS + [Namespace(type="mixup", alpha=0.3)], ids=lambda s: s.type)
def test_each_step_changes_images_as_the_tensorflow_step_does(step):
    """The same 960 digits through one step, in 15 batches with their own seeds, by NumPy and
    by tf.data: each per-image summary of the change (its mean, its mean absolute value; for
    mixup, the weights λ) has the same distribution (two-sample Kolmogorov–Smirnov: fixed
    seeds, so a p-value above 0.001 is a fixed outcome, not a chance one)."""
    import tensorflow as tf
    from scipy.stats import ks_2samp

    from dlpipe.data import augment

    images, labels = digits()
    spec, data = setup([step], {"image": images}, {"image": "image"})
    ours, theirs = augment_numpy.augmenter(spec, data), augment.augmenter(spec, data)
    changes = {"numpy": [], "tensorflow": []}
    for batch in range(15):
        x, y = images[batch * 64:(batch + 1) * 64], labels[batch * 64:(batch + 1) * 64]
        weight = np.ones(64, np.float32)
        for name, (out_x, _, out_w) in (
                ("numpy", ours({"image": x}, y, weight, (5, 0, batch))),
                ("tensorflow", theirs({"image": tf.constant(x)}, tf.constant(y), tf.constant(weight),
                                      tf.constant([5, batch], tf.int64)))):
            out_x, out_w = np.asarray(out_x["image"]), np.asarray(out_w)
            changes[name].append(out_w[:64, None] if step.type == "mixup" else _per_image(x, out_x))
    ours_, theirs_ = np.concatenate(changes["numpy"]), np.concatenate(changes["tensorflow"])
    assert ours_.shape == theirs_.shape
    for column in range(ours_.shape[1]):
        assert ks_2samp(ours_[:, column], theirs_[:, column]).pvalue > 1e-3, (step.type, column)
    if step.type != "mixup":
        assert np.abs(ours_[:, 1]).mean() > 0  # it changed something


@pytest.mark.slow
@pytest.mark.parametrize("step", [Namespace(type="jitter", stddev=0.1), Namespace(type="scaling", stddev=0.1),
                                  Namespace(type="gaussian_noise", stddev=0.2)], ids=lambda s: s.type)
def test_series_and_number_steps_change_as_the_tensorflow_steps_do(step):
    import tensorflow as tf
    from scipy.stats import ks_2samp

    from dlpipe.data import augment

    rng = np.random.default_rng(2)
    series = (rng.normal(0, 1, (960, 12, 2)) * [1.0, 5.0]).astype(np.float32)
    numbers = (rng.normal(0, 1, (960, 3)) * [1.0, 2.0, 0.5]).astype(np.float32)
    x_all = {"window": series, "n": numbers}
    spec, data = setup([step], x_all, {"window": "sequence", "n": "numerical"})
    ours, theirs = augment_numpy.augmenter(spec, data), augment.augmenter(spec, data)
    name = "n" if step.type == "gaussian_noise" else "window"
    found = {"numpy": [], "tensorflow": []}
    for batch in range(15):
        x = {k: v[batch * 64:(batch + 1) * 64] for k, v in x_all.items()}
        y, weight = np.zeros(64, np.float32), np.ones(64, np.float32)
        found["numpy"].append(ours(x, y, weight, (5, 0, batch))[0][name] - x[name])
        out = theirs({k: tf.constant(v) for k, v in x.items()}, tf.constant(y), tf.constant(weight),
                     tf.constant([5, batch], tf.int64))[0][name]
        found["tensorflow"].append(np.asarray(out) - x[name])
    ours_, theirs_ = np.concatenate(found["numpy"]), np.concatenate(found["tensorflow"])
    for channel in range(ours_.shape[-1]):  # each channel's change, in its own units
        a, b = ours_[..., channel].ravel(), theirs_[..., channel].ravel()
        assert ks_2samp(a, b).pvalue > 1e-3, (step.type, channel)
        assert a.std() > 0
