"""Checks on a table's values, shared by every way of preparing data: each bad value is
reported with its file, row and column."""

from __future__ import annotations

import re

import numpy as np

from dlpipe.data.sources import float32
from dlpipe.data.table import Table
from dlpipe.errors import DataError, did_you_mean
from dlpipe.spec.spec import Spec


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


def _mostly_numbers(values: np.ndarray) -> bool:
    """A text column whose values are mostly numbers is a numeric column with typos
    (reported by row later), not a text feature."""
    import pandas as pd

    present = pd.Series(values).dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").notna().mean() > 0.5


def _check_numbers(table: Table, name: str, allow_nan: bool = False) -> None:
    """Every value a finite number (NaN allowed where an imputation fills it)."""
    values = table.columns[name]
    if values.dtype.kind not in "iufb":
        numbers = np.empty(values.shape, dtype=np.float64)
        for row, value in enumerate(values):
            number = _number(value)
            if number is None:
                raise DataError(f"{table.at(row)}, column {name!r}: "
                                f"expected a number, got {value!r}") from None
            numbers[row] = number
        values = table.columns[name] = float32(numbers, table.origin, name, table.at)
    if values.dtype.kind == "f":
        flat = values.reshape(len(values), -1)
        bad = ~(np.isfinite(flat) | (np.isnan(flat) if allow_nan else False)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            if np.isinf(flat[row]).any():
                raise DataError(f"{table.at(row)}, column {name!r}: an infinite value; "
                                f"{int(bad.sum())} row(s) in all")
            raise DataError(f"{table.at(row)}, column {name!r}: a missing value (NaN); {int(bad.sum())} row(s) "
                            f"in all (fill them with prepare.imputation, or clean them)")


# What Python's float() accepts beyond a number as a file writes one ("1_000", "١٢"),
# refused: a number in a data file is digits, a sign, a point, an exponent, or nan / inf.
_NUMBER = re.compile(r"\s*[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|infinity|nan)\s*",
                     re.IGNORECASE | re.ASCII)


def _number(value) -> float | None:
    """A cell's number, parsed strictly; None for anything else (text, true/false, a list)."""
    if value is None or _is_missing(value):
        return float("nan")
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


MISSING_TEXT = ""
"""How a missing categorical, ordinal or text value reaches an imputing model: an empty
string (the model replaces it: dlpipe/architectures/inputs.py)."""


def _check_categories(table: Table, name: str, imputed: bool = False) -> None:
    """Categories become text: the model's input is a string, whatever the column held. A
    missing value is an error, or with an imputation the empty string the model fills."""
    values = table.columns[name]
    if values.dtype.kind == "f":
        missing = np.isnan(values.reshape(len(values), -1)).any(axis=1)
    else:
        missing = np.array([_is_missing(v) for v in values], dtype=bool)
    if missing.any() and not imputed:
        row = int(np.flatnonzero(missing)[0])
        raise DataError(f"{table.at(row)}, column {name!r}: a missing value; "
                        f"{int(missing.sum())} row(s) in all (fill them with prepare.imputation, or clean them)")
    table.columns[name] = np.array([MISSING_TEXT if gap else _text(v) for v, gap in zip(values, missing)],
                                   dtype=object)


def _text(value) -> str:
    # A number read from a column with gaps is a float: 3.0 is the category "3", as in a
    # column without gaps (pandas reads those as integers).
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _is_missing(value) -> bool:
    # None (JSON null), NaN (pandas' empty cell), pandas.NA (nullable columns)
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType"
