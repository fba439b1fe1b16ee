"""The `prepare` section: transformations fitted on the training split and kept inside
the trained model, so that exports and predictions see raw data."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import Field

from dlpipe.spec.base import ByType, PositiveFloat, PositiveInt, StrictModel

Factor = Annotated[float, Field(gt=0, le=1)]


class ZScore(StrictModel):
    """(x − mean) / std, statistics from the training split only."""

    type: Literal["zscore"]
    """Picks this variant: standardize to mean 0 and standard deviation 1."""


class MinMax(StrictModel):
    """(x − min) / (max − min), statistics from the training split only."""

    type: Literal["minmax"]
    """Picks this variant: scale to 0..1 by the training range."""


class Rescale(StrictModel):
    """x · scale + offset, fixed numbers (e.g. 1/255 for 8-bit images)."""

    type: Literal["rescale"]
    """Picks this variant: a fixed scale and offset."""
    scale: float
    """Multiplier applied to each value (1/255 maps 8-bit pixels to 0..1)."""
    offset: float = 0.0
    """Added after scaling (-1 with scale 1/127.5 maps 0..255 to -1..1)."""


class NoNormalization(StrictModel):
    type: Literal["none"]
    """Picks this variant: values are left as they are (to opt a feature out of a type-wide key)."""


Normalizer = Annotated[
    Union[ZScore, MinMax, Rescale, NoNormalization], ByType()
]


class Imputer(StrictModel):
    """What replaces a missing value (NaN, null, an empty cell): the training split's mean,
    median or most frequent value of the feature, or a constant. Applied inside the model, so
    exports and `dlpipe predict` impute too. A categorical, ordinal or text value is missing
    when it is null, NaN or empty (the model takes a missing text value as an empty string)."""

    type: Literal["mean", "median", "most_frequent", "constant"]
    """Picks the replacement: the training split's mean or median (numerical features), its most
    frequent value (any imputed feature), or `value`."""
    value: float | str | None = None
    """The constant, with type constant: a number for a numerical feature; a text for a
    categorical one (a category of its own, added to the vocabulary: a missing value is then
    its own category), an ordinal one (one of its `order`) or a text one."""


# Augmentation: random changes to training batches only, drawn with stateless ops from a
# seed derived from (spec seed, epoch, batch), so a run (and a resumed run) sees the same
# batches every time. Applied in tf.data by dlpipe/data/augment.py (in NumPy on backend jax:
# dlpipe/data/augment_numpy.py), never part of the model
# or an export (Keras's random layers stay active in a SavedModel: docs/architecture.md).


class Flip(StrictModel):
    """Images: mirror with probability 1/2 (each direction on its own)."""

    type: Literal["flip"]
    """Picks this augmentation: random mirroring."""
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"
    """horizontal: left–right; vertical: top–bottom; horizontal_and_vertical: each, drawn
    independently. Use vertical only where upside-down images are plausible."""


class Rotation(StrictModel):
    """Images: rotate by an angle drawn from ±factor × 360° (bilinear interpolation, zeros outside)."""

    type: Literal["rotation"]
    """Picks this augmentation: random rotation."""
    factor: Factor
    """Largest rotation as a fraction of a full turn (0.1: up to ±36°)."""


class Zoom(StrictModel):
    """Images: scale by 1 + u, u drawn from ±factor (around the centre)."""

    type: Literal["zoom"]
    """Picks this augmentation: random zoom."""
    factor: Annotated[float, Field(gt=0, lt=1)]
    """Largest relative change of scale (0.2: from 0.8× to 1.2×)."""


class Translation(StrictModel):
    """Images: shift by up to ±factor of the height and of the width."""

    type: Literal["translation"]
    """Picks this augmentation: random shift."""
    factor: Factor
    """Largest shift as a fraction of the image's height (vertically) and width (horizontally)."""


class Contrast(StrictModel):
    """Images: scale each image's deviation from its mean by 1 + u, u from ±factor."""

    type: Literal["contrast"]
    """Picks this augmentation: random contrast."""
    factor: Factor
    """Largest relative change of contrast (0.2: deviations scaled by 0.8 to 1.2)."""


class Brightness(StrictModel):
    """Images: add u × (value range of the training images), u drawn from ±factor."""

    type: Literal["brightness"]
    """Picks this augmentation: random brightness."""
    factor: Factor
    """Largest shift, as a fraction of the training images' value range."""


class Crop(StrictModel):
    """Images: pad by `padding` pixels on each side (zeros), then cut a random window of
    the original size (a shift that loses the border)."""

    type: Literal["crop"]
    """Picks this augmentation: pad and random crop."""
    padding: PositiveInt = 2
    """Zero pixels added on each side before cropping back: the largest shift, in pixels."""


class Noise(StrictModel):
    """Images: add Gaussian noise of `stddev` × (value range of the training images)."""

    type: Literal["noise"]
    """Picks this augmentation: additive Gaussian pixel noise."""
    stddev: PositiveFloat
    """Noise standard deviation as a fraction of the training images' value range."""


class Jitter(StrictModel):
    """Sequences (and forecasting windows): add Gaussian noise of `stddev` × each channel's
    training standard deviation to every step."""

    type: Literal["jitter"]
    """Picks this augmentation: additive Gaussian noise on every step."""
    stddev: PositiveFloat
    """Noise standard deviation as a multiple of each channel's training standard deviation."""


class Scaling(StrictModel):
    """Sequences (and forecasting windows): multiply each example's series by one factor
    drawn from N(1, stddev²) (per channel)."""

    type: Literal["scaling"]
    """Picks this augmentation: a random scale per series."""
    stddev: PositiveFloat
    """Standard deviation of the factor around 1 (0.1: most factors within 0.8..1.2)."""


class GaussianNoise(StrictModel):
    """Numerical features: add Gaussian noise of `stddev` × each feature's training
    standard deviation."""

    type: Literal["gaussian_noise"]
    """Picks this augmentation: additive Gaussian noise on numerical features."""
    stddev: PositiveFloat
    """Noise standard deviation as a multiple of each feature's training standard deviation."""


class Mixup(StrictModel):
    """Blend pairs of examples: x = λ·x₁ + (1−λ)·x₂ for every number, image and sequence
    feature, λ ~ Beta(alpha, alpha) per example; the loss is λ·loss(y₁) + (1−λ)·loss(y₂)
    (each batch is given twice with those weights, so it fits every loss). Examples with
    text or category inputs cannot be blended."""

    type: Literal["mixup"]
    """Picks this augmentation: mixup."""
    alpha: PositiveFloat = 0.2
    """Shape of the Beta(alpha, alpha) distribution of λ: small values keep most blends close to one
    of the two examples, larger ones mix more evenly."""


Augmentation = Annotated[
    Union[Flip, Rotation, Zoom, Translation, Contrast, Brightness, Crop, Noise, Jitter, Scaling,
          GaussianNoise, Mixup],
    ByType(),
]

IMAGE_AUGMENTATIONS = ("flip", "rotation", "zoom", "translation", "contrast", "brightness", "crop", "noise")
SEQUENCE_AUGMENTATIONS = ("jitter", "scaling")


class Prepare(StrictModel):
    imputation: dict[str, Imputer] = {}
    """Keyed by a feature name, or by a feature type (`numerical`, `categorical`, `ordinal`,
    `text`) for every feature of that type; a feature's own name wins. A missing value in a
    feature without a policy is an error."""
    normalization: dict[str, Normalizer] = {"numerical": ZScore(type="zscore")}
    """Keyed by a feature name, or by a feature type (`numerical`, `image`) for every
    feature of that type; a feature's own name wins. Features matched by no key are
    left as they are."""
    augmentation: list[Augmentation] = []
    """Random changes to training batches, applied in the listed order (in tf.data, or in
    NumPy on backend jax; on the training split only; validation, test, model.keras and
    exports never see them)."""
