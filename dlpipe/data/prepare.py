"""From a spec's `data` and `prepare` sections to arrays ready for training.

Resolves the features (listed, or inferred from the columns), checks every value, encodes
labels, splits, and computes normalization statistics on the training split only. The
statistics go into the model (dlpipe/architectures/inputs.py), never applied here, so the
exported model takes raw data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlpipe import readlog, tasks
from dlpipe.data.sources import load_source
from dlpipe.data.splits import kfold_indices, split_indices, split_record, time_ordered_split
from dlpipe.data.table import Table
from dlpipe.data.prepared import (SPLITS, STRING_TYPES, FeatureInfo, PreparedData, Split,  # noqa: F401
                                  _fingerprint, _fit_normalization, input_names, normalizer, spec_sections,
                                  text_settings)
from dlpipe.data.values import (MISSING_TEXT, _check_categories, _check_numbers, _check_target,  # noqa: F401
                               _is_missing, _list, _mostly_numbers)
from dlpipe.errors import DataError, DlpipeError
from dlpipe.errors import did_you_mean
from dlpipe.spec.checks import FEATURE_TYPES, IMPUTED_TYPES
from dlpipe.spec.spec import Spec


def prepare(spec: Spec, base_dir: Path, located) -> PreparedData:
    """`located(path, message)` builds a SpecError pointing at the spec's line for `path`."""
    if spec.data.streaming is not None:
        from dlpipe.data.image_streaming import IMAGE_SOURCES, prepare_image_streaming
        from dlpipe.data.streaming import prepare_streaming
        from dlpipe.data.text_streaming import prepare_text_streaming

        streamed = (prepare_image_streaming if spec.data.source.type in IMAGE_SOURCES else
                    prepare_text_streaming if spec.data.source.type == "text_folder" else prepare_streaming)
        data = streamed(spec, base_dir, located)
        _resolve_pretrained(spec, data.features, base_dir)
        if "splits" not in data.extra:  # a folder's record names files (image_streaming.py, text_streaming.py)
            data.extra["splits"] = split_record(data.origin, {name: s.rows for name, s in data.splits.items()})
        return data
    table, index = _load(spec, base_dir)
    if len(table) == 0:
        raise DataError(f"{table.origin}: the dataset is empty")
    if spec.data.windows is not None:
        from dlpipe.data.windows import prepare_windows

        data = prepare_windows(spec, table, located)
        data.extra["splits"] = split_record(table.origin, {name: s.rows for name, s in data.splits.items()}, table,
                                            windows=True)
        return data
    target = _check_target(spec, table, located) if spec.data.target is not None else None
    times = _time_values(spec, table, located) if spec.data.split.time_column else None
    features = _resolve_features(spec, table, target, located)
    keep = np.ones(len(table), dtype=bool)
    y, class_names = (None, None)
    if target is not None:
        y, class_names, keep = _labels(spec, table, target, base_dir, located)
    outputs = None
    if spec.data.targets:  # task multi_output: one label array per output (dlpipe/data/outputs.py)
        from dlpipe.data.outputs import output_labels

        y, outputs = output_labels(spec, table, located)
    dropped = int((~keep).sum())
    if dropped == len(table):
        raise DataError(f"{table.origin}: every row's label is unknown or missing; nothing is left to learn from")
    if index is None:
        index = _split(spec, table, None if outputs else y, keep, times, located)
    else:  # explicit split files: drop rows without a usable label from each
        index = {name: rows[keep[rows]] for name, rows in index.items()}
    for name in ("train", "test"):
        if len(index[name]) == 0:
            where = ("data", "split", "files", name) if spec.data.split.files and name == "test" else ("data", "split", name)
            raise located(where, f"the {name} split of {int(keep.sum())} examples is empty")
    weights = _sample_weights(spec, table, located)
    splits = {
        name: Split({f.input_name: _column(table, f)[rows] for f in features}, _rows(y, rows), rows,
                    None if weights is None else weights[rows])
        for name, rows in index.items()
    }
    _fit_imputation(spec, features, splits["train"], table)
    _fit_normalization(spec, features, splits["train"])
    _fit_vocabularies(spec, features, splits["train"])
    _resolve_pretrained(spec, features, base_dir)
    data = PreparedData(features=features, target=target, task=spec.task, class_names=class_names,
                        splits=splits, fingerprint=_fingerprint(spec, table), origin=table.origin)
    data.extra["splits"] = split_record(table.origin, index, table)
    if outputs is not None:
        data.extra["outputs"] = outputs
    if dropped:
        data.extra["dropped_rows"] = dropped
    if times is not None:
        data.extra["time_ranges"] = {name: [_shown_time(times[rows].min()), _shown_time(times[rows].max())]
                                     for name, rows in index.items() if len(rows)}
    return data


def _rows(y, rows: np.ndarray):
    """The labels of some rows: an array's, or each output's (task multi_output)."""
    if y is None:
        return None
    return {name: values[rows] for name, values in y.items()} if isinstance(y, dict) else y[rows]


def _load(spec: Spec, base_dir: Path) -> tuple[Table, dict[str, np.ndarray] | None]:
    """The table, and its split indices when the spec names a file per split."""
    from dlpipe.data.table import concatenate

    source, files = spec.data.source, spec.data.split.files
    table = load_source(source, base_dir)
    if files is None:
        return table, None
    tables = {"train": table}
    for name in ("validation", "test"):
        path = getattr(files, name)
        if path is not None:
            tables[name] = load_source(source.model_copy(update={"path": path}), base_dir)
    joined = concatenate(list(tables.values()))
    starts = dict(zip(tables, [start for start, _ in joined.pieces]))
    index = {name: np.arange(starts[name], starts[name] + len(tables[name])) if name in tables
             else np.array([], dtype=np.int64) for name in SPLITS}
    return joined, index


def _split(spec: Spec, table: Table, y, keep: np.ndarray, times, located) -> dict[str, np.ndarray]:
    split = spec.data.split
    fractions = {"train": split.train, "validation": split.validation, "test": split.test}
    kept = np.flatnonzero(keep)
    if times is not None:
        return time_ordered_split(times[kept], fractions, kept)
    stratify = split.stratify and y is not None and y.ndim == 1  # unlabeled rows have no class to keep
    strata = y[kept] if stratify else None
    if split.folds is not None:
        return {name: kept[rows] for name, rows in
                kfold_indices(len(kept), split.test, split.folds, split.fold, spec.seed, strata).items()}
    return {name: kept[rows] for name, rows in split_indices(len(kept), fractions, spec.seed, strata).items()}


def _time_values(spec: Spec, table: Table, located) -> np.ndarray:
    """The time column as numbers that order the rows (datetimes as nanoseconds)."""
    name = spec.data.split.time_column
    if name not in table.columns:
        hint = did_you_mean(name, table.columns) or f"; columns are: {_list(table.columns)}"
        raise located(("data", "split", "time_column"), f"no column {name!r} in {table.origin}{hint}")
    values = table.columns[name]
    if values.dtype.kind in "iuf":
        bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
        if len(bad):
            raise DataError(f"{table.at(bad[0])}, column {name!r}: a missing time")
        return values.astype(np.float64)
    import pandas as pd

    for row, value in enumerate(values):
        if _is_missing(value):
            raise DataError(f"{table.at(row)}, column {name!r}: a missing time")
        try:
            pd.Timestamp(value)
        except (ValueError, TypeError):
            raise DataError(f"{table.at(row)}, column {name!r}: expected a date or time, got {value!r}") from None
    stamps = pd.to_datetime(pd.Series(values), format="mixed")
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC")
    return stamps.astype("int64").to_numpy().astype(np.float64)


def _shown_time(value: float):
    return float(value)


def _resolve_features(spec: Spec, table: Table, target: str, located) -> list[FeatureInfo]:
    if spec.data.features:
        declared = [(f.name, f.type, ("data", "features", i, "name")) for i, f in enumerate(spec.data.features)]
        for name, _, path in declared:
            if name not in table.columns:
                hint = did_you_mean(name, table.columns) or f"; columns are: {_list(table.columns)}"
                raise located(path, f"no column {name!r} in {table.origin}{hint}")
    else:
        from dlpipe.data.outputs import target_columns

        declared, targets = [], target_columns(spec)
        for name, values in table.columns.items():
            if name in (target, spec.training.sample_weight, spec.data.split.time_column) or name in targets:
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
            _check_categories(table, name, imputed=_imputer(spec, name, kind) is not None)
            shape: tuple[int, ...] = (1,)
        elif kind == "numerical":
            _check_numbers(table, name, allow_nan=_imputer(spec, name, kind) is not None)
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
        imputer = _imputer(spec, name, kind)
        if imputer is not None:
            info.imputation = imputer.type
        declared_feature = next((f for f in spec.data.features if f.name == name), None)
        if kind == "ordinal":
            info.normalization, info.order = "none", list(declared_feature.order)
            _check_order(table, name, info.order, imputed=imputer is not None)
        if kind == "text":
            text_settings(info, declared_feature)
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
            default = 8 if info.encoding == "embedding" and declared_feature.pretrained is None else None
            info.embedding_dim = declared_feature.embedding_dim or default  # pretrained: the file's length
        if kind == "tokens":
            info.vocabulary_size = _vocabulary_size(spec, table, name, path, located)
        features.append(info)
    for key in spec.prepare.imputation:
        if key not in IMPUTED_TYPES and key not in {f.name for f in features}:
            hint = did_you_mean(key, [f.name for f in features] + list(IMPUTED_TYPES))
            raise located(("prepare", "imputation", key), f"{key!r} is neither a feature nor a feature type{hint}")
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
        raise DataError(f"{table.at(row)}, column {name!r}: token ids must be "
                        "whole numbers")
    low, high = int(values.min()), int(values.max())
    if low < 0:
        row = int(np.flatnonzero((values < 0).any(axis=1))[0])
        raise DataError(f"{table.at(row)}, column {name!r}: negative token id {low}")
    declared = next(f.vocabulary_size for f in spec.data.features if f.name == name)
    if declared is None:
        return high + 1  # from every row: an id first seen in the test split still has an embedding
    if high >= declared:
        raise located(path[:-1] + ("vocabulary_size",),
                      f"column {name!r} holds token id {high}, outside vocabulary_size {declared}")
    return declared


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
        raise DataError(f"{table.at(row)}, column {name!r}: a sample weight "
                        "must be a number >= 0")
    return weights


def _check_order(table: Table, name: str, order: list[str], imputed: bool = False) -> None:
    known = set(order) | ({MISSING_TEXT} if imputed else set())
    values = table.columns[name]
    for row, value in enumerate(values):
        if value not in known:
            hint = did_you_mean(value, order) or f"; the order lists {_list(order)}"
            raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: {value!r} is not "
                            f"one of the ordinal values{hint}")


def _column(table: Table, feature: FeatureInfo) -> np.ndarray:
    if feature.type in STRING_TYPES:
        return table.columns[feature.name].reshape(-1, 1)
    values = table.columns[feature.name].astype(feature.dtype, copy=False)
    return values.reshape(len(values), 1) if feature.type == "numerical" else values


def _labels(spec: Spec, table: Table, target: str, base_dir: Path,
            located) -> tuple[np.ndarray, list[str] | None, np.ndarray]:
    """(encoded labels, class names, which rows keep their label). Rows whose label is
    missing or unknown are an error, or dropped with `on_unknown: drop`."""
    values = table.columns[target]
    keep = np.ones(len(table), dtype=bool)
    if tasks.get(spec.task).target == "values":  # numbers, not classes
        if target in table.booleans or (values.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in values)):
            raise located(("data", "target", "name"), f"column {target!r} of {table.origin} holds true/false "
                          "values, not numbers to regress; for two classes use task classification")
        _check_numbers(table, target)
        return table.columns[target].astype(np.float32), None, keep
    declared = spec.data.target
    labels = Labels(table, target, declared.on_unknown)
    if declared.multi_label:
        return _multi_label(spec, labels)
    if values.ndim > 1 and not getattr(spec.model, "return_sequences", False):
        raise DataError(f"{table.origin}: column {target!r} holds {values.shape[1:]} labels per example; "
                        "set data.target.multi_label (any of K classes) or model.return_sequences "
                        "(one class per step)")
    if declared.threshold is not None:
        return _threshold(declared.threshold, declared.class_names, labels)
    text = values.dtype.kind not in "iufb"
    if declared.order is not None:
        return labels.mapped({name: i for i, name in enumerate(declared.order)}, list(declared.order),
                             "data.target.order")
    if declared.label_map is not None:
        mapping = _label_map(declared.label_map, base_dir, located)
        names = list(declared.class_names or sorted(set(mapping.values())))
        return labels.mapped({raw: names.index(name) for raw, name in mapping.items()}, names,
                             "data.target.label_map")
    names = declared.class_names or table.class_names.get(target)
    if names is not None and text:
        return labels.mapped({name: i for i, name in enumerate(names)}, list(names), "class_names")
    if names is not None:
        if values.dtype.kind not in "iu" and not np.all(np.isnan(values) | (values == np.round(values))):
            raise DataError(f"{table.origin}: column {target!r}: class_names need integer labels 0..{len(names) - 1}")
        missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, dtype=bool)
        outside = (((values < 0) | (values >= len(names))) & ~missing).reshape(len(values), -1)
        for row in np.flatnonzero(missing.reshape(len(values), -1).any(axis=1)):
            labels.unknown(row, "missing label")
        for row in np.flatnonzero(outside.any(axis=1)):
            label = values.reshape(len(values), -1)[row][outside[row]][0].item()
            labels.unknown(row, f"label {label!r} has no class name (class_names lists {len(names)})")
        codes = np.where(labels.keep.reshape((-1,) + (1,) * (values.ndim - 1)), np.nan_to_num(values), 0)
        return codes.astype(np.int64), list(names), labels.keep
    for row in labels.missing_rows():
        labels.unknown(row, "missing label")
    kept = values[labels.keep]
    as_text = kept.astype(str) if kept.dtype.kind not in "iub" else kept
    if kept.dtype.kind == "f" and np.all(kept == np.round(kept)):
        as_text = kept.astype(np.int64)  # 0.0/1.0 read from a column with gaps are the integers 0/1
    classes, codes = np.unique(as_text, return_inverse=True)
    _refuse_near_duplicates(classes, kept, labels)
    if len(classes) < 2:
        raise DataError(f"{table.origin}: column {target!r} has a single class ({classes[0].item()!r}); "
                        "classification needs at least two")
    y = np.zeros(values.shape, dtype=np.int64)
    y[labels.keep] = codes.reshape(kept.shape)  # per-step labels keep their steps
    return y, [str(c) for c in classes], labels.keep


def _refuse_near_duplicates(classes: np.ndarray, kept: np.ndarray, labels: "Labels") -> None:
    """Labels that differ only in spaces around them ('a' and 'a ') are one class mistyped,
    not two: refused, naming the row of the second spelling (nothing is stripped silently)."""
    if classes.dtype.kind not in "OUS":
        return
    first: dict[str, str] = {}
    for name in (str(c) for c in classes):
        other = first.setdefault(name.strip(), name)
        if other != name:
            rows = np.flatnonzero(labels.keep)  # kept[i] is row rows[i] of the table
            text = kept.astype(str).reshape(len(kept), -1)
            row, earlier = (int(rows[np.flatnonzero((text == label).any(axis=1))[0]]) for label in (name, other))
            raise DataError(f"{labels.table.at(row)}, column {labels.column!r}: label {name!r} differs from "
                            f"{other!r} (at {labels.table.at(earlier)}) only in surrounding spaces; write them the same")


class Labels:
    """Label values of one column, and the rows whose label is missing or unknown: each is an
    error naming file, row and column, or (on_unknown: drop) a row left out."""

    def __init__(self, table: Table, column: str, on_unknown: str):
        self.table, self.column, self.on_unknown = table, column, on_unknown
        self.values = table.columns[column]
        self.keep = np.ones(len(table), dtype=bool)

    def unknown(self, row: int, message: str) -> None:
        if self.on_unknown == "error":
            raise DataError(f"{self.table.at(row)}, column {self.column!r}: {message}")
        self.keep[row] = False

    def missing_rows(self) -> np.ndarray:
        values = self.values
        if values.dtype.kind == "f":
            return np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        if values.dtype == object:
            return np.flatnonzero([_is_missing(v) or (isinstance(v, str) and not v.strip()) for v in values])
        return np.array([], dtype=np.int64)

    def mapped(self, mapping: dict[str, int], names: list[str], what: str):
        """Each raw value (as text; 1.0 read as 1) looked up in `mapping`."""
        y = np.zeros(len(self.values), dtype=np.int64)
        missing = set(self.missing_rows().tolist())
        for row, value in enumerate(self.values):
            if row in missing:
                self.unknown(row, "missing label")
                continue
            key = _label_key(value)
            if key not in mapping:
                known = ", ".join(list(mapping)[:8]) + (" ..." if len(mapping) > 8 else "")
                self.unknown(row, f"label {key!r} is not in {what} ({known})")
                continue
            y[row] = mapping[key]
        return y, names, self.keep


def _label_key(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return str(value.item() if isinstance(value, np.generic) else value)


def _label_map(label_map: dict[str, str] | str, base_dir: Path, located) -> dict[str, str]:
    """The inline mapping, or the JSON / YAML file it names (read here, never by plain validate)."""
    if isinstance(label_map, dict):
        return dict(label_map)
    from dlpipe.data.sources import resolve_path

    path = resolve_path(label_map, base_dir)
    if not path.is_file():
        raise located(("data", "target", "label_map"), f"no label map file {str(path)!r}")
    readlog.named(label_map, base_dir)
    readlog.opened(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            mapping = json.loads(text)
        else:
            import yaml

            mapping = yaml.safe_load(text)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the label map: {str(err).strip().splitlines()[0]}") from None
    except Exception as err:  # yaml.YAMLError
        raise DataError(f"{path}: cannot read the label map: {str(err).strip().splitlines()[0]}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(f"{path}: a label map is a mapping of raw label → class name, got "
                        f"{type(mapping).__name__}")
    for raw, name in mapping.items():
        if not isinstance(name, (str, int, float)) or isinstance(name, bool):
            raise DataError(f"{path}: label {raw!r} maps to {name!r}; class names are text")
    return {_label_key(raw): str(name) for raw, name in mapping.items()}


def _threshold(threshold: float, class_names, labels: Labels):
    table, column = labels.table, labels.column
    values = labels.values
    if values.dtype.kind not in "iuf":
        converted = np.full(len(values), np.nan)
        for row, value in enumerate(values):
            if _is_missing(value):
                continue
            try:
                converted[row] = float(value)
            except (TypeError, ValueError):
                raise DataError(f"{table.at(row)}, column {column!r}: expected a number to compare with "
                                f"threshold {threshold:g}, got {value!r}") from None
        values = converted
    values = values.astype(np.float64)
    for row in np.flatnonzero(np.isnan(values)):
        labels.unknown(row, "missing label")
    names = list(class_names or [f"below {threshold:g}", f"{threshold:g} or more"])
    return (np.nan_to_num(values, nan=-np.inf) >= threshold).astype(np.int64), names, labels.keep


def _multi_label(spec: Spec, labels: Labels) -> tuple[np.ndarray, list[str], np.ndarray]:
    table, target = labels.table, labels.column
    values = labels.values
    declared = spec.data.target
    if values.dtype == object:
        return _multi_label_lists(spec, labels)
    if values.ndim != 2:
        hint = " (text labels need data.target.delimiter)" if values.dtype.kind in "iuf" else ""
        raise DataError(f"{table.origin}: column {target!r}: multi_label needs K indicators (0 or 1), a list "
                        f"of class names or a delimited string per example, got values of shape "
                        f"{values.shape[1:]}{hint}")
    _check_numbers(table, target)
    values = table.columns[target]
    bad = np.flatnonzero(~np.isin(values, (0, 1)).all(axis=1))
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{table.at(row)}, column {target!r}: multi-label "
                        f"indicators must be 0 or 1, got {values[row].tolist()}")
    k = values.shape[1]
    names = declared.class_names or table.class_names.get(target) or [str(i) for i in range(k)]
    if len(names) != k:
        raise DataError(f"{table.origin}: column {target!r} holds {k} indicators but {len(names)} class names")
    return values.astype(np.float32), list(names), labels.keep


def _multi_label_lists(spec: Spec, labels: Labels) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Each value names its classes: a list (JSON lines, parquet) or, with
    data.target.delimiter, a string such as "cat|dog" (an empty string: no class)."""
    table, target, declared = labels.table, labels.column, spec.data.target
    lists: list[list[str] | None] = []
    for row, value in enumerate(labels.values):
        if isinstance(value, (list, tuple, np.ndarray)):
            lists.append([_label_key(v) for v in value])
        elif isinstance(value, str) and declared.delimiter is not None:
            lists.append([part.strip() for part in value.split(declared.delimiter) if part.strip()])
        elif _is_missing(value) and declared.delimiter is not None:
            lists.append([])  # an empty cell: no class applies
        else:
            what = "a list of class names" if declared.delimiter is None else "text"
            hint = "" if declared.delimiter is not None else " (set data.target.delimiter for delimited text)"
            labels.unknown(row, f"expected {what}, got {value!r}{hint}")
            lists.append(None)
    names = list(declared.class_names or sorted({name for names in lists if names for name in names}))
    index = {name: i for i, name in enumerate(names)}
    y = np.zeros((len(lists), len(names)), dtype=np.float32)
    for row, names_of_row in enumerate(lists):
        if names_of_row is None:
            continue
        for name in names_of_row:
            if name not in index:
                labels.unknown(row, f"label {name!r} is not in class_names ({', '.join(names[:8])})")
                break
            y[row, index[name]] = 1.0
    if len(names) < 2:
        raise DataError(f"{table.origin}: column {target!r} names {len(names)} class(es); multi_label needs at least two")
    return y, names, labels.keep


def _imputer(spec: Spec, name: str, kind: str):
    if kind not in IMPUTED_TYPES:
        return None
    return spec.prepare.imputation.get(name) or spec.prepare.imputation.get(kind)


def _fit_imputation(spec: Spec, features: list[FeatureInfo], train: Split, table: Table) -> None:
    """Fill values from the training split only (missing values ignored): a number per
    column, or one text (categorical, ordinal, text: the model's input is then "" where
    the value is missing)."""
    for feature in features:
        if feature.imputation == "none":
            continue
        imputer = _imputer(spec, feature.name, feature.type)
        if feature.type in STRING_TYPES:
            feature.fill = np.array([_text_fill(imputer, train.x[feature.input_name].ravel(), feature, table)],
                                    dtype=object)
            continue
        values = train.x[feature.input_name].astype(np.float64)
        if imputer.type == "constant":
            fill = np.full(values.shape[-1], imputer.value)
        else:
            if np.isnan(values).all(axis=0).any():
                raise DataError(f"{table.origin}: column {feature.name!r}: every value of the training split is "
                                f"missing; a {imputer.type} cannot be computed (use a constant)")
            if imputer.type == "most_frequent":
                fill = np.array([_most_frequent(column[~np.isnan(column)]) for column in values.T])
            else:
                fill = np.nanmean(values, axis=0) if imputer.type == "mean" else np.nanmedian(values, axis=0)
        feature.fill = fill


def _text_fill(imputer, values: np.ndarray, feature: FeatureInfo, table: Table) -> str:
    if imputer.type == "constant":
        return str(imputer.value)
    present = values[values != MISSING_TEXT]
    if not len(present):
        raise DataError(f"{table.origin}: column {feature.name!r}: every value of the training split is missing; "
                        "a most_frequent cannot be computed (use a constant)")
    return str(_most_frequent(present))


def _most_frequent(values: np.ndarray):
    """The most frequent value; of equally frequent ones, the smallest (a seed-free choice)."""
    found, counts = np.unique(values, return_counts=True)
    value = found[np.argmax(counts)]
    return value.item() if isinstance(value, np.generic) else value


def _fit_vocabularies(spec: Spec, features: list[FeatureInfo], train: Split) -> None:
    for feature in features:
        if feature.type != "categorical":
            continue
        imputed = feature.fill is not None
        if feature.vocabulary is None:
            values = set(train.x[feature.input_name].ravel().tolist())
            feature.vocabulary = sorted(values - {MISSING_TEXT} if imputed else values)
        if imputed and str(feature.fill[0]) not in feature.vocabulary:
            # A constant is a category of its own: a missing value is then recognisably missing.
            feature.vocabulary = [*feature.vocabulary, str(feature.fill[0])]


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




# New labeled rows for a trained run (`dlpipe evaluate RUN_DIR --data FILE`) -------------------

NEW_DATA = "data"
"""The one split of new labeled rows (the name metrics.json reports them under)."""

_SUFFIX_SOURCES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                   ".npz": "npz"}


def prepare_labeled(spec: Spec, path: Path, described: dict) -> PreparedData:
    """New labeled examples for the run of `spec`, read and checked by the data stage's own
    code: the run's source reader (its type, delimiter, image column... when the file is of
    that type, else the type its suffix names), the same feature resolution and value checks
    (categories and texts as text, a missing value "" where the model imputes it, ordinal
    values against their order, images and sequences by shape), labels mapped onto the
    run's classes (`described`: the run's data.json). Nothing is fitted: normalization,
    vocabularies and fills live in the model. One split, `data`, holding every row with a
    label (forecasting: every window of the series)."""
    path = Path(path).resolve()
    source = _source_for(spec.data.source, path)
    data_spec = spec.data.model_copy(update={"source": source, "split": spec.data.split.model_copy(
        update={"files": None, "time_column": None, "folds": None}), "streaming": None})
    if not spec.data.features and not spec.data.windows:  # inferred by the run: the same columns, in its order
        data_spec = data_spec.model_copy(update={"features": _declared(described)})
    mapping = None
    if spec.data.target is not None and tasks.get(spec.task).target == "classes":
        target, mapping = _fixed_classes(spec, described["class_names"])
        data_spec = data_spec.model_copy(update={"target": target})
    spec = spec.model_copy(update={"data": data_spec})

    def located(where, message):  # the file is the user's new data, not the spec: name the file
        return DataError(f"{path}: " + message.replace(f" in {path}", ""))

    table = load_source(source, path.parent)
    if len(table) == 0:
        raise DataError(f"{table.origin}: no rows")
    if spec.data.windows is not None:
        return _labeled_windows(spec, table, described, located)
    name = _check_target(spec, table, located)
    features = _resolve_features(spec, table, name, located)
    _same_inputs(features, described, table.origin)
    if mapping is not None:
        y, _, keep = Labels(table, name, spec.data.target.on_unknown).mapped(mapping, described["class_names"],
                                                                            "the run's classes")
    else:
        y, _, keep = _labels(spec, table, name, path.parent, located)
    rows = np.flatnonzero(keep)
    if not len(rows):
        raise DataError(f"{table.origin}: no row has a usable label")
    split = Split({f.input_name: _column(table, f)[rows] for f in features}, y[rows], rows)
    data = PreparedData(features=features, target=name, task=spec.task, class_names=described.get("class_names"),
                        splits={NEW_DATA: split}, fingerprint=_fingerprint(spec, table), origin=table.origin)
    if len(rows) < len(table):
        data.extra["dropped_rows"] = int(len(table) - len(rows))
    return data


def _source_for(source, path: Path):
    """The run's source type reading `path` when it is of that type, else the type the
    suffix names (a run trained on parquet may be evaluated on a CSV)."""
    suffix = path.suffix.lower()
    folders = ("image_folder", "text_folder")
    if path.is_dir():
        if source.type not in folders:
            raise DataError(f"{path}: is a folder; the run read a {source.type} source, give a file")
        return source.model_copy(update={"path": str(path)})
    if source.type in folders:
        raise DataError(f"{path}: the run read a folder of class subfolders ({source.type}); give such a folder")
    same = {"csv": (".csv", ".tsv", ".txt"), "image_csv": (".csv", ".tsv", ".txt"), "jsonl": (".jsonl", ".ndjson", ".json"),
            "parquet": (".parquet",), "npz": (".npz",)}
    if suffix in same.get(source.type, ()):
        return source.model_copy(update={"path": str(path)})
    if suffix not in _SUFFIX_SOURCES:
        raise DataError(f"{path}: unknown kind of file; give {', '.join(sorted(_SUFFIX_SOURCES))} "
                        f"(the run read a {source.type} source)")
    from dlpipe.spec.data import CsvSource, JsonlSource, NpzSource, ParquetSource

    kind = _SUFFIX_SOURCES[suffix]
    model = {"csv": CsvSource, "jsonl": JsonlSource, "parquet": ParquetSource, "npz": NpzSource}[kind]
    return model(type=kind, path=str(path))


def _declared(described: dict) -> list:
    """The run's inferred features (numbers, images) as declared features."""
    from dlpipe.spec.data import ImageFeature, NumericalFeature

    kinds = {"numerical": NumericalFeature, "image": ImageFeature}
    found = []
    for feature in described.get("features", []):
        if feature["type"] not in kinds:
            raise DlpipeError(f"the run's data.json lists a {feature['type']} feature it could not have inferred")
        found.append(kinds[feature["type"]](name=feature["name"], type=feature["type"]))
    return found


def _fixed_classes(spec: Spec, names: list[str]):
    """(the run's target with its classes fixed to the run's, a raw label → class index
    mapping where the labels are read by one), so that new labels map onto the model's
    outputs whatever classes the new rows happen to hold."""
    target = spec.data.target
    if target.order is not None or target.threshold is not None or isinstance(target.label_map, str):
        return target, None  # the spec itself fixes the classes (a label map file is read as in the run)
    if target.label_map is not None or target.multi_label or getattr(spec.model, "return_sequences", False):
        return target.model_copy(update={"class_names": list(names)}), None
    # As the run read them: each class is named by its label value, and where the names came
    # from the spec or the dataset, an integer label is also the class's index.
    mapping = {name: i for i, name in enumerate(names)}
    if target.class_names is not None or spec.data.source.type == "builtin":
        mapping.update({str(i): i for i in range(len(names)) if str(i) not in mapping})
    return target, mapping


def _same_inputs(features: list[FeatureInfo], described: dict, origin: str) -> None:
    """The model takes what the run prepared: the same inputs, of the same shapes."""
    trained = {f["input"]: f for f in described.get("features", [])}
    for feature in features:
        known = trained.get(feature.input_name)
        if known is None:
            continue
        if feature.type not in ("text", "categorical", "ordinal") and list(feature.shape) != list(known["shape"]):
            raise DataError(f"{origin}: column {feature.name!r} holds values of shape {tuple(feature.shape)}; "
                            f"the model takes {tuple(known['shape'])}")


def _labeled_windows(spec: Spec, table: Table, described: dict, located) -> PreparedData:
    """Every window of a new series (in time order), scored like the run's test windows."""
    from dlpipe.data.windows import cut_windows, series_of

    channels, series, order = series_of(spec, table, located)
    trained = described["features"][0]["name"]
    if ", ".join(channels) != trained:
        raise DataError(f"{table.origin}: the series' channels are {', '.join(channels)}; the model reads {trained}")
    split, _ = cut_windows(series, order, 0, len(series), spec.data.windows)
    if not len(split):
        windows = spec.data.windows
        raise DataError(f"{table.origin}: {len(series)} rows hold no window of lookback {windows.lookback} + "
                        f"horizon {windows.horizon}")
    feature = FeatureInfo(trained, described["features"][0]["input"], "sequence", tuple(described["features"][0]["shape"]),
                          relative=True)
    return PreparedData(features=[feature], target=channels[0], task=spec.task, class_names=None,
                        splits={NEW_DATA: split}, fingerprint=_fingerprint(spec, table), origin=table.origin)
