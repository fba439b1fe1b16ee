"""A table of examples in memory: named numpy columns of equal length."""

from __future__ import annotations

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

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0
