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


class Prepare(StrictModel):
    normalization: dict[str, Normalizer] = {"numerical": ZScore(type="zscore")}
    """Keyed by a feature name, or by a feature type (`numerical`, `image`) for every
    feature of that type; a feature's own name wins. Features matched by no key are
    left as they are."""
