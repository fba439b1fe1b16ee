"""What an export format provides: a writer and a way to run what it wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class ExportFormat:
    name: str
    write: Callable[..., Path]
    """write(model, directory) → the artifact's path; writes atomically."""
    load: Callable[[Path], Predict]
    """load(path) → predict(inputs by name) using the format's own runtime, not the model."""
