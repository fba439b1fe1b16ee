"""Compute a spec's metrics on each evaluated split."""

from __future__ import annotations

import numpy as np

from dlpipe import registry


def probabilities(model_output: np.ndarray, n_classes: int) -> np.ndarray:
    """Model output → N × K class probabilities (a sigmoid output becomes two columns)."""
    output = np.asarray(model_output, dtype=np.float64)
    if n_classes == 2 and output.shape[-1] == 1:
        p = output[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    return output


def scores(task: str, names: list[str], y: np.ndarray, output: np.ndarray, n_classes: int | None) -> dict:
    prediction = probabilities(output, n_classes) if task == "classification" else np.asarray(output).reshape(-1)
    return {name: registry.load(f"metric:{task}", name)(y, prediction) for name in names}
