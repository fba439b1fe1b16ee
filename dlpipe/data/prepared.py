"""What a data preparation produces (features, splits, the prepared data), its fingerprint,
and the normalization statistics fitted on the training split. Shared by every way of
preparing data: a table in memory (prepare.py), a streamed file (streaming.py), time-series
windows (windows.py)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlpipe.data.table import Table
from dlpipe.spec.spec import Spec


SPLITS = ("train", "validation", "test")


STRING_TYPES = ("categorical", "ordinal", "text")
"""Features whose model input is the raw value as text."""


@dataclass
class FeatureInfo:
    name: str
    """The column's name in the data."""
    input_name: str
    """The model input's name: the column name made safe for SavedModel signatures."""
    type: str
    shape: tuple[int, ...]
    normalization: str = "none"
    mean: np.ndarray | None = None
    """Per-column (numerical) or per-channel (image) affine normalization: (x - mean) / std."""
    std: np.ndarray | None = None
    vocabulary: list[str] | None = None
    """Categorical: the known categories; index 0 inside the model is the out-of-vocabulary bucket."""
    encoding: str | None = None
    """Categorical: one_hot or embedding."""
    embedding_dim: int | None = None
    vocabulary_size: int | None = None
    """Tokens only: ids are 0..vocabulary_size-1."""
    imputation: str = "none"
    """Numerical only: mean, median or constant fills a missing value (inside the model)."""
    fill: np.ndarray | None = None
    """The value that replaces NaN, per column (fitted on the training split)."""
    """Tokens: ids are 0..vocabulary_size-1. Text: the most ids the vocabulary may use."""
    order: list[str] | None = None
    """Ordinal: the values, lowest first."""
    text: dict[str, Any] | None = None
    """Text: standardize, split, ngrams, sequence_length (the TextVectorization settings)."""
    pretrained: dict[str, Any] | None = None
    """Categorical or text: {"path", "vocabulary", "trainable"} of pretrained vectors (paths resolved)."""
    size: tuple[int, int] | None = None
    """Image: the [height, width] the model resizes to (None: as stored)."""
    channels: int | None = None
    """Image: the channels the model converts to (None: as stored)."""
    relative: bool = False
    """Forecasting window: the model sees each window minus its last step, per channel (so
    a level never seen in training, as a trend brings, looks like a familiar one)."""

    @property
    def dtype(self) -> str:
        if self.type in STRING_TYPES:
            return "string"
        return "int32" if self.type == "tokens" else "float32"

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "input": self.input_name, "type": self.type,
               "shape": list(self.shape), "normalization": self.normalization}
        if self.type == "categorical":
            out.update(vocabulary=self.vocabulary, encoding=self.encoding, embedding_dim=self.embedding_dim)
        if self.vocabulary_size is not None:
            out["vocabulary_size"] = self.vocabulary_size
        if self.fill is not None:
            out.update(imputation=self.imputation, fill=self.fill.tolist())
        if self.order is not None:
            out["order"] = self.order
        if self.text is not None:
            out["text"] = self.text
        if self.pretrained is not None:
            out["pretrained"] = self.pretrained
        if self.size is not None or self.channels is not None:
            out.update(size=list(self.size) if self.size else None, channels=self.channels)
        return out


def text_settings(info: FeatureInfo, declared) -> None:
    """A text feature's TextVectorization settings, limits and embedding from its spec entry."""
    info.normalization = "none"
    info.text = {key: getattr(declared, key) for key in ("standardize", "split", "ngrams", "sequence_length",
                                                         "encoding")}
    info.shape = (1,)
    info.vocabulary_size = declared.vocabulary_size
    info.embedding_dim = declared.embedding_dim


@dataclass
class Split:
    x: dict[str, np.ndarray]
    y: np.ndarray | None
    """Encoded labels; None for unlabeled data (no `data.target`)."""
    rows: np.ndarray
    """Source row indices (0-based), for messages and reports."""
    weight: np.ndarray | None = None
    """Each example's weight in the training loss (`training.sample_weight`), if any."""
    naive: np.ndarray | None = None
    """Forecasting: the last-value forecast of each example (N × horizon), the baseline."""

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class PreparedData:
    features: list[FeatureInfo]
    target: str | None
    """The label column; None for unlabeled data."""
    task: str
    class_names: list[str] | None
    splits: dict[str, Split]
    fingerprint: str
    origin: str
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "fingerprint": self.fingerprint,
            "task": self.task,
            "target": self.target,
            "class_names": self.class_names,
            "features": [f.describe() for f in self.features],
            "split_sizes": {name: len(split) for name, split in self.splits.items()},
            **{key: self.extra[key] for key in ("dropped_rows", "time_ranges", "streaming", "outputs")
               if key in self.extra},
        }


def input_names(names: list[str]) -> list[str]:
    """Column names → unique names valid for Keras inputs and SavedModel signatures."""
    out: list[str] = []
    for name in names:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "feature"
        candidate, n = safe, 2
        while candidate in out:
            candidate, n = f"{safe}_{n}", n + 1
        out.append(candidate)
    return out


def normalizer(spec: Spec, feature: FeatureInfo):
    """The spec's normalizer for a feature: by its name, else by its type (a forecasting
    window, a sequence made of numerical columns, also answers to `numerical`)."""
    found = spec.prepare.normalization.get(feature.name) or spec.prepare.normalization.get(feature.type)
    if found is None and feature.input_name == "window" and spec.data.windows is not None:
        found = spec.prepare.normalization.get("numerical")
    return found


def _fit_normalization(spec: Spec, features: list[FeatureInfo], train: Split) -> None:
    for feature in features:
        if feature.normalization == "none":
            continue
        values = train.x[feature.input_name].astype(np.float64)
        if feature.fill is not None:  # the model imputes first, then normalizes
            values = np.where(np.isnan(values), feature.fill, values)
        norm = spec.prepare.normalization.get(feature.name) or spec.prepare.normalization.get(feature.type)
        norm = normalizer(spec, feature)
        axes = tuple(range(values.ndim - 1))  # per column (numerical) / per channel (image)
        if norm.type == "zscore":
            mean, std = values.mean(axis=axes), values.std(axis=axes)
        elif norm.type == "minmax":
            mean, std = values.min(axis=axes), values.max(axis=axes) - values.min(axis=axes)
        else:  # rescale: x * scale + offset  ==  (x - (-offset / scale)) / (1 / scale)
            mean = np.full(values.shape[-1], -norm.offset / norm.scale)
            std = np.full(values.shape[-1], 1.0 / norm.scale)
        # A constant column would divide by zero: leave it unscaled (only centred).
        feature.mean, feature.std = mean, np.where(std == 0, 1.0, std)


def spec_sections(spec: Spec) -> bytes:
    """The spec's part of the data fingerprint: data, prepare and seed."""
    sections = {"data": spec.data.model_dump(mode="json"), "prepare": spec.prepare.model_dump(mode="json"),
                "seed": spec.seed}
    return json.dumps(sections, sort_keys=True).encode()


def _fingerprint(spec: Spec, table: Table) -> str:
    digest = hashlib.sha256()
    for name in sorted(table.columns):
        values = np.ascontiguousarray(table.columns[name])
        digest.update(name.encode())
        digest.update(str(values.dtype).encode() + str(values.shape).encode())
        digest.update(values.tobytes() if values.dtype != object else "\x1f".join(map(str, values)).encode())
    digest.update(spec_sections(spec))
    return "sha256:" + digest.hexdigest()
