"""Labels of a multi-output spec (task multi_output): one array per entry of `data.targets`,
read from its column as classes (integer indices, names from the source or the sorted
values) or as numbers. Every missing or unreadable value is an error naming file, row and
column: an output cannot drop a row the others keep."""

from __future__ import annotations

import numpy as np

from dlpipe.data.table import Table
from dlpipe.data.values import _check_numbers, _is_missing, _list
from dlpipe.errors import DataError, did_you_mean
from dlpipe.tasks.multi_output import gives_classes


def target_columns(spec) -> set[str]:
    """The columns data.targets reads (never features)."""
    return {output.column for output in spec.data.targets or ()}


def output_labels(spec, table: Table, located) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """({output name: labels or values}, {output name: {"kind", "column", "class_names"}})."""
    labels, described = {}, {}
    for i, output in enumerate(spec.data.targets):
        column = output.column
        if column not in table.columns:
            hint = did_you_mean(column, table.columns) or f"; columns are: {_list(table.columns)}"
            raise located(("data", "targets", i, "column"), f"no column {column!r} in {table.origin}{hint}")
        values = table.columns[column]
        if values.ndim != 1:
            raise located(("data", "targets", i, "column"), f"column {column!r} holds arrays of shape "
                          f"{values.shape[1:]}; an output learns one label or number per example")
        if not gives_classes(output):
            if column in table.booleans:
                raise located(("data", "targets", i, "kind"), f"column {column!r} of {table.origin} holds "
                              "true/false values; use kind classification")
            _check_numbers(table, column)
            labels[output.name], names = table.columns[column].astype(np.float32), None
        else:
            labels[output.name], names = _classes(table, column)
        described[output.name] = {"kind": output.kind, "column": column, "class_names": names}
    return labels, described


def _classes(table: Table, column: str) -> tuple[np.ndarray, list[str]]:
    values = table.columns[column]
    for row, value in enumerate(values):
        if _is_missing(value):
            raise DataError(f"{table.at(row)}, column {column!r}: a missing label")
    known = table.class_names.get(column)
    if known is not None and values.dtype.kind in "iu":
        bad = np.flatnonzero((values < 0) | (values >= len(known)))
        if len(bad):
            raise DataError(f"{table.at(bad[0])}, column {column!r}: label {values[bad[0]]!r} is outside "
                            f"0..{len(known) - 1}")
        return values.astype(np.int64), list(known)
    text = np.asarray([str(v) for v in values], dtype=object)
    classes = sorted(set(text))
    if len(classes) < 2:
        raise DataError(f"{table.origin}: column {column!r} has a single class ({classes[0]!r}); "
                        "a classification output needs at least two")
    index = {name: i for i, name in enumerate(classes)}
    return np.asarray([index[v] for v in text], dtype=np.int64), classes
