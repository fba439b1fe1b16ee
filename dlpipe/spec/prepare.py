"""The `prepare` section: transformations fitted on the training split and kept inside
the trained model, so that exports and predictions see raw data."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import Field

from dlpipe.spec.base import StrictModel


class ZScore(StrictModel):
    """(x − mean) / std, statistics from the training split only."""

    type: Literal["zscore"]


class MinMax(StrictModel):
    """(x − min) / (max − min), statistics from the training split only."""

    type: Literal["minmax"]


class Rescale(StrictModel):
    """x · scale + offset, fixed numbers (e.g. 1/255 for 8-bit images)."""

    type: Literal["rescale"]
    scale: float
    offset: float = 0.0


class NoNormalization(StrictModel):
    type: Literal["none"]


Normalizer = Annotated[
    Union[ZScore, MinMax, Rescale, NoNormalization], Field(discriminator="type")
]


class Imputer(StrictModel):
    """What replaces a missing value (NaN, an empty cell): the training split's mean or median
    of the feature, or a constant. Applied inside the model, so exports impute too."""

    type: Literal["mean", "median", "constant"]
    value: float | None = None
    """The constant, with type constant."""


class Prepare(StrictModel):
    imputation: dict[str, Imputer] = {}
    """Keyed by a feature name, or by `numerical` for every numerical feature; a feature's own
    name wins. A missing value in a feature without a policy is an error."""
    normalization: dict[str, Normalizer] = {"numerical": ZScore(type="zscore")}
    """Keyed by a feature name, or by a feature type (`numerical`, `image`) for every
    feature of that type; a feature's own name wins. Features matched by no key are
    left as they are."""

