"""The `data` section: where examples come from, which columns are features and target,
and how they are split."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import Field

from dlpipe.spec.base import Name, PositiveInt, StrictModel
from dlpipe.spec.detection import CocoSource, ShapesSource


class BuiltinSource(StrictModel):
    """A dataset shipped inside an installed package; nothing is downloaded."""

    type: Literal["builtin"]
    name: Name("dataset")
    """digits (8×8 images, 10 classes), iris, wine, breast_cancer (binary), diabetes
    (regression): scikit-learn's bundled copies. order_pairs: generated (fixed seed), does
    pattern A come before pattern B in a sequence — as token ids and as a 2-channel signal."""


class CsvSource(StrictModel):
    """A CSV file with a header row; a relative path is resolved against the spec's folder."""

    type: Literal["csv"]
    path: str
    delimiter: str = ","


class NpzSource(StrictModel):
    """A NumPy `.npz` file: each array is a column, all with the same first dimension (the
    examples). Arrays keep their shape, so a column can hold sequences or images."""

    type: Literal["npz"]
    path: str


Source = Annotated[Union[BuiltinSource, CsvSource, NpzSource, ShapesSource, CocoSource], Field(discriminator="type")]


class NumericalFeature(StrictModel):
    """A number per example (continuous or discrete)."""

    name: str
    type: Literal["numerical"]


class ImageFeature(StrictModel):
    """An image per example (height × width × channels)."""

    name: str
    type: Literal["image"]


class CategoricalFeature(StrictModel):
    """One of a set of categories per example (a plan, a country code). The model takes the
    raw value as text; a lookup inside the model turns it into an index."""

    name: str
    type: Literal["categorical"]
    vocabulary: Annotated[list[str], Field(min_length=1)] | None = None
    """The known categories. Default: every value of the training split, sorted. Any other
    value (in later data too) falls into one shared out-of-vocabulary bucket."""
    encoding: Literal["one_hot", "embedding"] = "one_hot"
    """one_hot: one 0/1 input per category (a few categories); embedding: a learned vector
    of `embedding_dim` numbers per category (many categories)."""
    embedding_dim: PositiveInt | None = None
    """Length of each category's vector with `encoding: embedding` (default 8)."""



class SequenceFeature(StrictModel):
    """A numeric sequence per example: time steps × channels (a column of 2-D arrays, or
    of 1-D arrays for one channel). Normalization, if any, is per channel."""

    name: str
    type: Literal["sequence"]


class TokensFeature(StrictModel):
    """A sequence of integer token ids per example (0 ≤ id < vocabulary_size); the model
    learns an embedding for them. Sequences have one fixed length; 0 is an ordinary id."""

    name: str
    type: Literal["tokens"]
    vocabulary_size: PositiveInt | None = None
    """Number of distinct ids (largest id + 1); default: from the data, all rows."""



Feature = Annotated[Union[NumericalFeature, ImageFeature, CategoricalFeature, SequenceFeature, TokensFeature],
                    Field(discriminator="type")]


class Target(StrictModel):
    """The column to predict."""

    name: str
    multi_label: bool = False
    """The column holds K indicators (0 or 1) per example: any number of the K classes may
    apply (K sigmoid outputs, binary cross-entropy)."""
    class_names: list[str] | None = None
    """Names for the classes 0..K-1 of an integer label (classification); by default
    the dataset's own names, or the labels themselves."""


class Split(StrictModel):
    """Fractions of the examples for each split; seeded by the spec's `seed`."""

    train: Annotated[float, Field(gt=0, lt=1)] = 0.8
    validation: Annotated[float, Field(ge=0, lt=1)] = 0.1
    test: Annotated[float, Field(gt=0, lt=1)] = 0.1
    stratify: bool | None = None
    """Keep class proportions equal across splits; defaults to true for classification."""


class Data(StrictModel):
    source: Source
    features: list[Feature] = []
    """Input columns. Empty: every column except the target, numbers as numerical."""
    target: Target | None = None
    split: Split = Split()
    shuffle_buffer: PositiveInt | None = None
    """Examples held by the training shuffle; default: the whole training split."""
