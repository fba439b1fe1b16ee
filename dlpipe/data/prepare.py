"""From a spec's `data` and `prepare` sections to arrays ready for training.

Resolves the features (listed, or inferred from the columns), checks every value, encodes
labels, splits, and computes normalization statistics on the training split only. The
statistics go into the model (dlpipe/architectures/inputs.py), never applied here, so the
exported model takes raw data.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.data.sources import load_source
from dlpipe.data.splits import split_indices
from dlpipe.data.table import Table
from dlpipe.errors import DataError
from dlpipe.errors import did_you_mean
from dlpipe.spec.checks import FEATURE_TYPES
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
        if self.order is not None:
            out["order"] = self.order
        if self.text is not None:
            out["text"] = self.text
        if self.pretrained is not None:
            out["pretrained"] = self.pretrained
        if self.size is not None or self.channels is not None:
            out.update(size=list(self.size) if self.size else None, channels=self.channels)
        return out


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


def prepare(spec: Spec, base_dir: Path, located) -> PreparedData:
    """`located(path, message)` builds a SpecError pointing at the spec's line for `path`."""
    table = load_source(spec.data.source, base_dir)
    if len(table) == 0:
        raise DataError(f"{table.origin}: the dataset is empty")
    if spec.data.windows is not None:
        from dlpipe.data.windows import prepare_windows

        return prepare_windows(spec, table, located)
    target = _check_target(spec, table, located) if spec.data.target is not None else None
    features = _resolve_features(spec, table, target, located)
    y, class_names = _labels(spec, table, target) if target is not None else (None, None)
    fractions = {"train": spec.data.split.train, "validation": spec.data.split.validation,
                 "test": spec.data.split.test}
    stratify = spec.data.split.stratify and y is not None  # unlabeled rows have no class to keep
    index = split_indices(len(table), fractions, spec.seed, y if stratify else None)
    for name in ("train", "test"):
        if len(index[name]) == 0:
            raise located(("data", "split", name), f"the {name} split of {len(table)} examples is empty")
    weights = _sample_weights(spec, table, located)
    splits = {
        name: Split({f.input_name: _column(table, f)[rows] for f in features}, None if y is None else y[rows], rows,
                    None if weights is None else weights[rows])
        for name, rows in index.items()
    }
    _fit_normalization(spec, features, splits["train"])
    _fit_vocabularies(spec, features, splits["train"])
    _resolve_pretrained(spec, features, base_dir)
    return PreparedData(features=features, target=target, task=spec.task, class_names=class_names,
                        splits=splits, fingerprint=_fingerprint(spec, table), origin=table.origin)


def _check_target(spec: Spec, table: Table, located) -> str:
    target = spec.data.target.name
    if target not in table.columns:
        hint = did_you_mean(target, table.columns) or f"; columns are: {_list(table.columns)}"
        if len(table.columns) == 1:
            (header,) = table.columns
            seen = [d for d in (";", "\t", "|", ",") if d in header]
            if seen:
                hint = f"; the header {header!r} looks delimited by {seen[0]!r}: set data.source.delimiter"
        raise located(("data", "target", "name"), f"no column {target!r} in {table.origin}{hint}")
    return target


def _list(names, limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _resolve_features(spec: Spec, table: Table, target: str, located) -> list[FeatureInfo]:
    if spec.data.features:
        declared = [(f.name, f.type, ("data", "features", i, "name")) for i, f in enumerate(spec.data.features)]
        for name, _, path in declared:
            if name not in table.columns:
                hint = did_you_mean(name, table.columns) or f"; columns are: {_list(table.columns)}"
                raise located(path, f"no column {name!r} in {table.origin}{hint}")
    else:
        declared = []
        for name, values in table.columns.items():
            if name in (target, spec.training.sample_weight):
                continue
            kind = "image" if values.ndim >= 3 else "numerical"
            if values.dtype.kind not in "iufb" and not _mostly_numbers(values):
                raise located(("data",), f"column {name!r} of {table.origin} holds text; list the "
                              "features you want under data.features (a category per row: "
                              f"{{name: {name}, type: categorical}})")
            declared.append((name, kind, ("data",)))
    names = input_names([name for name, _, _ in declared])
    features = []
    for (name, kind, path), input_name in zip(declared, names):
        values = table.columns[name]
        if kind in STRING_TYPES:
            _check_categories(table, name)
            shape: tuple[int, ...] = (1,)
        elif kind == "numerical":
            _check_numbers(table, name)
            if values.ndim != 1:
                raise located(path, f"column {name!r} holds arrays of shape {values.shape[1:]}, not numbers; "
                              "declare it under data.features as type image, sequence or tokens")
            shape: tuple[int, ...] = (1,)
        elif kind in ("sequence", "tokens"):
            shape = _sequence_shape(spec, table, name, kind, path, located)
        else:
            if values.ndim == 3:
                values = table.columns[name] = values[..., np.newaxis]
            if values.ndim != 4:
                what = "one number per row" if values.ndim == 1 else f"arrays of shape {values.shape[1:]}"
                raise located(path, f"column {name!r} holds {what}, not images (height × width × channels)")
            _check_numbers(table, name)
            shape = tuple(int(d) for d in values.shape[1:])
        norm = spec.prepare.normalization.get(name) or spec.prepare.normalization.get(kind)
        if kind in STRING_TYPES:
            norm = None
        if kind == "tokens" and norm is not None and norm.type != "none":
            key = name if name in spec.prepare.normalization else kind
            raise located(("prepare", "normalization", key), f"{name!r} holds token ids; they cannot be normalized")
        info = FeatureInfo(name, input_name, kind, shape, normalization=norm.type if norm else "none")
        declared_feature = next((f for f in spec.data.features if f.name == name), None)
        if kind == "ordinal":
            info.normalization, info.order = "none", list(declared_feature.order)
            _check_order(table, name, info.order)
        if kind == "text":
            info.normalization = "none"
            info.text = {key: getattr(declared_feature, key) for key in ("standardize", "split", "ngrams",
                                                                          "sequence_length")}
            info.shape = (1,)
            info.vocabulary_size = declared_feature.vocabulary_size
            info.embedding_dim = declared_feature.embedding_dim
        if kind == "image":
            info.size = tuple(declared_feature.size) if declared_feature and declared_feature.size else None
            info.channels = declared_feature.channels if declared_feature else None
            if info.channels is not None and shape[-1] not in (1, 3):
                raise located(path[:-1] + ("channels",), f"column {name!r} holds images of {shape[-1]} channels; "
                              "only 1 (grey) or 3 (RGB) can be converted")
        if kind == "categorical":
            info.normalization = "none"
            info.vocabulary = declared_feature.vocabulary
            info.encoding = declared_feature.encoding
            info.embedding_dim = declared_feature.embedding_dim or (8 if info.encoding == "embedding" else None)
        if kind == "tokens":
            info.vocabulary_size = _vocabulary_size(spec, table, name, path, located)
        features.append(info)
    unused = set(spec.prepare.normalization) - {f.name for f in features} - set(FEATURE_TYPES)
    for key in sorted(unused):
        hint = did_you_mean(key, [f.name for f in features])
        raise located(("prepare", "normalization", key), f"{key!r} is not a feature{hint}")
    return features


def _sequence_shape(spec: Spec, table: Table, name: str, kind: str, path: tuple, located) -> tuple[int, ...]:
    """(steps, channels) of a numeric sequence, (steps,) of token ids."""
    values = table.columns[name]
    if kind == "sequence" and values.ndim == 2:
        values = table.columns[name] = values[..., np.newaxis]  # one channel
    wanted = 3 if kind == "sequence" else 2
    if values.ndim != wanted:
        layout = "steps × channels" if kind == "sequence" else "steps"
        raise located(path, f"column {name!r} holds values of shape {values.shape[1:]}; a {kind} feature "
                      f"needs one array of {layout} per example")
    _check_numbers(table, name)
    return tuple(int(d) for d in table.columns[name].shape[1:])


def _vocabulary_size(spec: Spec, table: Table, name: str, path: tuple, located) -> int:
    values = table.columns[name]
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        row = int(np.flatnonzero((values != np.round(values)).any(axis=1))[0])
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: token ids must be "
                        "whole numbers")
    low, high = int(values.min()), int(values.max())
    if low < 0:
        row = int(np.flatnonzero((values < 0).any(axis=1))[0])
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: negative token id {low}")
    declared = next(f.vocabulary_size for f in spec.data.features if f.name == name)
    if declared is None:
        return high + 1  # from every row: an id first seen in the test split still has an embedding
    if high >= declared:
        raise located(path[:-1] + ("vocabulary_size",),
                      f"column {name!r} holds token id {high}, outside vocabulary_size {declared}")
    return declared


def _mostly_numbers(values: np.ndarray) -> bool:
    """A text column whose values are mostly numbers is a numeric column with typos
    (reported by row later), not a text feature."""
    import pandas as pd

    present = pd.Series(values).dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() > 0.5


def _sample_weights(spec: Spec, table: Table, located) -> np.ndarray | None:
    name = spec.training.sample_weight
    if name is None:
        return None
    if name not in table.columns:
        hint = did_you_mean(name, table.columns) or f"; columns are: {_list(table.columns)}"
        raise located(("training", "sample_weight"), f"no column {name!r} in {table.origin}{hint}")
    _check_numbers(table, name)
    weights = table.columns[name].astype(np.float32)
    if weights.ndim != 1 or (weights < 0).any():
        row = int(np.flatnonzero(weights < 0)[0]) if weights.ndim == 1 else 0
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: a sample weight "
                        "must be a number >= 0")
    return weights


def _check_numbers(table: Table, name: str) -> None:
    values = table.columns[name]
    if values.dtype.kind not in "iufb":
        for row, value in enumerate(values):
            try:
                float(value)
            except (TypeError, ValueError):
                raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: "
                                f"expected a number, got {value!r}") from None
        values = table.columns[name] = values.astype(np.float32)
    if values.dtype.kind == "f":
        flat = values.reshape(len(values), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "a missing value (NaN)" if np.isnan(flat[row]).any() else "an infinite value"
            raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: {what}; "
                            f"{int(bad.sum())} row(s) in all (imputation is not supported yet: clean them)")


def _check_categories(table: Table, name: str) -> None:
    """Categories become text: the model's input is a string, whatever the column held."""
    values = table.columns[name]
    if values.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(values))
    else:
        missing = np.flatnonzero([_is_missing(v) for v in values])
    if len(missing):
        row = int(missing[0])
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: a missing value; "
                        f"{len(missing)} row(s) in all (imputation is not supported yet: clean them)")
    table.columns[name] = np.array([str(v) for v in values], dtype=object)


def _check_order(table: Table, name: str, order: list[str]) -> None:
    known = set(order)
    values = table.columns[name]
    for row, value in enumerate(values):
        if value not in known:
            hint = did_you_mean(value, order) or f"; the order lists {_list(order)}"
            raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: {value!r} is not "
                            f"one of the ordinal values{hint}")


def _is_missing(value) -> bool:
    # None (JSON null), NaN (pandas' empty cell), pandas.NA (nullable columns)
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType"


def _column(table: Table, feature: FeatureInfo) -> np.ndarray:
    if feature.type in STRING_TYPES:
        return table.columns[feature.name].reshape(-1, 1)
    values = table.columns[feature.name].astype(feature.dtype, copy=False)
    return values.reshape(len(values), 1) if feature.type == "numerical" else values


def _labels(spec: Spec, table: Table, target: str) -> tuple[np.ndarray, list[str] | None]:
    values = table.columns[target]
    if spec.task == "regression":
        _check_numbers(table, target)
        return table.columns[target].astype(np.float32), None
    if spec.data.target.multi_label:
        return _multi_label(spec, table, target)
    if values.ndim > 1 and not getattr(spec.model, "return_sequences", False):
        raise DataError(f"{table.origin}: column {target!r} holds {values.shape[1:]} labels per example; "
                        "set data.target.multi_label (any of K classes) or model.return_sequences "
                        "(one class per step)")
    names = spec.data.target.class_names or table.class_names.get(target)
    if names is not None:
        if values.dtype.kind not in "iu":
            raise DataError(f"{table.origin}: column {target!r}: class_names need integer labels 0..{len(names) - 1}")
        outside = ((values < 0) | (values >= len(names))).reshape(len(values), -1)
        bad = np.flatnonzero(outside.any(axis=1))
        if len(bad):
            row = int(bad[0])
            label = values.reshape(len(values), -1)[row][outside[row]][0].item()
            raise DataError(f"{table.origin}: row {row + table.row_offset}, column {target!r}: label "
                            f"{label!r} has no class name (class_names lists {len(names)})")
        return values.astype(np.int64), list(names)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {target!r}: missing label")
    labels = values.astype(str) if values.dtype.kind not in "iub" else values
    classes, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(values.shape)  # per-step labels keep their steps
    if len(classes) < 2:
        raise DataError(f"{table.origin}: column {target!r} has a single class ({classes[0].item()!r}); "
                        "classification needs at least two")
    return codes.astype(np.int64), [str(c) for c in classes]


def _multi_label(spec: Spec, table: Table, target: str) -> tuple[np.ndarray, list[str]]:
    values = table.columns[target]
    if values.ndim != 2:
        raise DataError(f"{table.origin}: column {target!r}: multi_label needs K indicators (0 or 1) per "
                        f"example, got values of shape {values.shape[1:]}")
    _check_numbers(table, target)
    values = table.columns[target]
    bad = np.flatnonzero(~np.isin(values, (0, 1)).all(axis=1))
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {target!r}: multi-label "
                        f"indicators must be 0 or 1, got {values[row].tolist()}")
    k = values.shape[1]
    names = spec.data.target.class_names or table.class_names.get(target) or [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"{table.origin}: column {target!r} holds {k} indicators but {len(names)} class names")
    return values.astype(np.float32), list(names)


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


def _fit_vocabularies(spec: Spec, features: list[FeatureInfo], train: Split) -> None:
    for feature in features:
        if feature.type == "categorical" and feature.vocabulary is None:
            feature.vocabulary = sorted(set(train.x[feature.input_name].ravel().tolist()))


def _resolve_pretrained(spec: Spec, features: list[FeatureInfo], base_dir: Path) -> None:
    """Pretrained vector files: paths made absolute and checked now (a missing file fails
    the data stage, not the build after it); the vectors are read when the model is built."""
    declared = {f.name: f for f in spec.data.features}
    for i, feature in enumerate(spec.data.features):
        pretrained = getattr(feature, "pretrained", None)
        if pretrained is None:
            continue
        paths = {"path": pretrained.path, "vocabulary": pretrained.vocabulary}
        resolved = {}
        for key, value in paths.items():
            if value is None:
                resolved[key] = None
                continue
            path = Path(value).expanduser()
            path = path if path.is_absolute() else (base_dir / path)
            if not path.is_file():
                raise DataError(f"{path}: no such file (data.features[{i}].pretrained.{key})")
            resolved[key] = str(path.resolve())
        if resolved["path"].endswith(".npy") and resolved["vocabulary"] is None:
            raise DataError(f"{resolved['path']}: a .npy matrix needs data.features[{i}].pretrained.vocabulary "
                            "(one word per line, line i naming row i)")
        info = next(f for f in features if f.name == feature.name)
        info.pretrained = {**resolved, "trainable": pretrained.trainable}
    del declared


def _fingerprint(spec: Spec, table: Table) -> str:
    digest = hashlib.sha256()
    for name in sorted(table.columns):
        values = np.ascontiguousarray(table.columns[name])
        digest.update(name.encode())
        digest.update(str(values.dtype).encode() + str(values.shape).encode())
        digest.update(values.tobytes() if values.dtype != object else "\x1f".join(map(str, values)).encode())
    sections = {"data": spec.data.model_dump(mode="json"), "prepare": spec.prepare.model_dump(mode="json"),
                "seed": spec.seed}
    digest.update(json.dumps(sections, sort_keys=True).encode())
    return "sha256:" + digest.hexdigest()
