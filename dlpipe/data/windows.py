"""Forecasting data: one time-ordered series → windows of `lookback` steps, each predicting
the target's next `horizon` values.

The series is split by time before any window is made: the first `split.train` of the
rows train, the next `split.validation` validate, the rest test. Windows are cut inside
each part only, so no window straddles a boundary and no value of a later part reaches an
earlier one (neither as input nor as label). Normalization statistics come from the
training part alone, as everywhere else.
"""

from __future__ import annotations

import numpy as np

from dlpipe.data.table import Table
from dlpipe.errors import DataError, did_you_mean

WINDOW_INPUT = "window"
"""The model's one input: batch × lookback × channels, the target's channel first."""


def prepare_windows(spec, table: Table, located):
    from dlpipe.data.prepared import FeatureInfo, PreparedData, _fingerprint, _fit_normalization, normalizer

    windows = spec.data.windows
    channels, series, order = series_of(spec, table, located)
    target = channels[0]
    bounds = _bounds(len(series), spec.data.split)
    span = windows.lookback + windows.horizon
    splits, times = {}, {}
    for name, (start, end) in bounds.items():
        splits[name], times[name] = cut_windows(series, order, start, end, windows)
        if name in ("train", "test") and len(splits[name]) == 0:
            raise located(("data", "split", name),
                          f"the {name} part of the series holds {end - start} steps, fewer than one window of "
                          f"lookback {windows.lookback} + horizon {windows.horizon} = {span}")
    feature = FeatureInfo(", ".join(channels), WINDOW_INPUT, "sequence", (windows.lookback, len(channels)),
                          relative=True)
    norm = normalizer(spec, feature)
    feature.normalization = norm.type if norm else "none"
    _fit_normalization(spec, [feature], splits["train"])
    data = PreparedData(features=[feature], target=target, task=spec.task, class_names=None, splits=splits,
                        fingerprint=_fingerprint(spec, table), origin=table.origin)
    data.extra.update(channels=channels, window_steps=times, boundaries=bounds,
                      target_scale=float(feature.std[0]) if feature.std is not None else 1.0)
    return data


def series_of(spec, table: Table, located) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(channels, the series in time order: rows × channels, the rows' order) of a table."""
    from dlpipe.data.values import _check_numbers, _check_target, _list

    windows = spec.data.windows
    target = _check_target(spec, table, located)
    order = _time_order(spec, table, located)
    if spec.data.features:
        names = [f.name for f in spec.data.features]
        for i, name in enumerate(names):
            if name not in table.columns:
                hint = did_you_mean(name, table.columns) or f"; columns are: {_list(table.columns)}"
                raise located(("data", "features", i, "name"), f"no column {name!r} in {table.origin}{hint}")
    else:
        names = [n for n, v in table.columns.items()
                 if n not in (target, windows.order_by, spec.training.sample_weight) and v.dtype.kind in "iufb"
                 and v.ndim == 1]
    channels = [target, *names]
    for name in channels:
        _check_numbers(table, name)
        if table.columns[name].ndim != 1:
            raise DataError(f"{table.origin}: column {name!r} holds arrays; a series needs one number per row")
    return channels, np.stack([table.columns[name].astype(np.float32) for name in channels], axis=1)[order], order


def cut_windows(series: np.ndarray, order: np.ndarray, start: int, end: int, windows):
    """(the windows that fit in steps [start, end) of the series as a Split, their steps)."""
    from dlpipe.data.prepared import Split

    span = windows.lookback + windows.horizon
    starts = np.arange(start, end - span + 1, windows.stride)
    steps = starts[:, np.newaxis] + np.arange(span)[np.newaxis, :]
    channels = series.shape[1]
    x = series[steps[:, :windows.lookback]] if len(starts) else np.zeros((0, windows.lookback, channels), np.float32)
    y = series[steps[:, windows.lookback:], 0] if len(starts) else np.zeros((0, windows.horizon), np.float32)
    naive = np.repeat(x[:, -1:, 0], windows.horizon, axis=1)
    return Split({WINDOW_INPUT: x}, y.astype(np.float32), order[starts], naive=naive), steps


def _bounds(n: int, split) -> dict[str, tuple[int, int]]:
    """[start, end) of each part, in time order."""
    n_train = int(round(n * split.train))
    n_validation = int(round(n * split.validation))
    return {"train": (0, n_train), "validation": (n_train, n_train + n_validation),
            "test": (n_train + n_validation, n)}


def _time_order(spec, table: Table, located) -> np.ndarray:
    """Row indices in time order: as stored, or sorted by `order_by` (stable, so equal
    times keep their order); repeated times are refused (two values for one step)."""
    column = spec.data.windows.order_by
    if column is None:
        return np.arange(len(table))
    if column not in table.columns:
        hint = did_you_mean(column, table.columns) or ""
        raise located(("data", "windows", "order_by"), f"no column {column!r} in {table.origin}{hint}")
    return time_order(table.columns[column], column, table.origin, table.row_offset)


def time_order(values: np.ndarray, column: str, origin, row_offset: int) -> np.ndarray:
    """Positions of `values` (numbers or ISO dates) in time order; a value that is neither, or
    a time that occurs twice, is a DataError naming its row (row i is `i + row_offset`).
    Training (above) and `dlpipe predict` on a series (dlpipe/prediction.py) order alike."""
    raw = values
    if values.dtype.kind not in "iufM":
        try:
            values = np.array([np.datetime64(str(v)) for v in values])
        except ValueError:
            row = next(i for i, v in enumerate(values) if not _is_time(v))
            raise DataError(f"{origin}: row {row + row_offset}, column {column!r}: "
                            f"{values[row]!r} is not a number or an ISO date") from None
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(repeated):
        row = int(order[repeated[0] + 1])
        value = raw[row].item() if isinstance(raw[row], np.generic) else raw[row]
        raise DataError(f"{origin}: row {row + row_offset}, column {column!r}: time "
                        f"{value!r} occurs twice; a series has one row per step")
    return order


def _is_time(value) -> bool:
    try:
        np.datetime64(str(value))
        return True
    except ValueError:
        return False
