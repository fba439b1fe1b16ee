"""A table of examples in memory: named numpy columns of equal length."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Table:
    columns: dict[str, np.ndarray]
    origin: str
    """Where the rows came from, for messages ("builtin:digits", "/data/x.csv")."""
    class_names: dict[str, list[str]] = field(default_factory=dict)
    """Names of integer-coded classes, per column, where the source knows them."""
    row_offset: int = 1
    """Added to a 0-based row index for messages (2 for a CSV: 1-based plus the header)."""
    row_numbers: np.ndarray | None = None
    """Each row's number in its file, where rows are not consecutive (blank lines skipped)."""
    row_files: list[str] | None = None
    """Each row's own file (a folder of images or texts): messages name it instead of a row."""
    pieces: list[tuple[int, "Table"]] = field(default_factory=list)
    """(first row, table) of each file joined into this one (explicit split files)."""
    booleans: set[str] = field(default_factory=set)
    """Columns the source read as true/false, held as 1/0: a regression target may not be one."""

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def at(self, row: int) -> str:
        """Where 0-based `row` came from, for a message: "FILE: row N" (or the row's own file)."""
        row = int(row)
        if self.pieces:
            i = bisect.bisect_right([start for start, _ in self.pieces], row) - 1
            start, piece = self.pieces[i]
            return piece.at(row - start)
        if self.row_files is not None:
            return self.row_files[row]
        number = int(self.row_numbers[row]) if self.row_numbers is not None else row + self.row_offset
        return f"{self.origin}: row {number}"


def concatenate(tables: list[Table]) -> Table:
    """Rows of several tables with the same columns, one after another (messages still name
    each row's own file and row)."""
    first = tables[0]
    for table in tables[1:]:
        if list(table.columns) != list(first.columns):
            missing = [c for c in first.columns if c not in table.columns]
            what = f"no column {missing[0]!r}" if missing else f"columns {', '.join(table.columns)}"
            raise _data_error(f"{table.origin}: {what}; every split file needs the columns of {first.origin}: "
                              f"{', '.join(first.columns)}")
        for name, values in table.columns.items():
            if values.shape[1:] != first.columns[name].shape[1:]:
                raise _data_error(f"{table.origin}: column {name!r} holds values of shape {values.shape[1:]}, "
                                  f"{first.origin} of shape {first.columns[name].shape[1:]}")
    columns = {}
    for name in first.columns:
        parts = [t.columns[name] for t in tables]
        if any(p.dtype == object for p in parts):
            parts = [p.astype(object) for p in parts]
        columns[name] = np.concatenate(parts)
    starts = np.cumsum([0] + [len(t) for t in tables[:-1]]).tolist()
    return Table(columns, origin=first.origin, class_names=dict(first.class_names),
                 pieces=list(zip(starts, tables)), booleans=set().union(*(t.booleans for t in tables)))


def _data_error(message: str):
    from dlpipe.errors import DataError

    return DataError(message)
