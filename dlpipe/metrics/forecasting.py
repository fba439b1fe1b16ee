"""Forecasting metrics: each regression metric per horizon step, and the naive baseline.

A forecast of H steps is an N × H array (example × step ahead). `per_horizon` scores every
step separately with the registered regression metrics; `last_value_forecast` is the
baseline every forecaster has to beat: the last observed value, repeated H times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlpipe import registry


def _steps(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1)


def per_horizon(names: Sequence[str], y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """{"<metric>_h<step>": value} for steps 1..H, e.g. mae_h1, mae_h2, ..."""
    y, prediction = _steps(y), _steps(prediction)
    if y.shape != prediction.shape:
        raise ValueError(f"labels {y.shape} and predictions {prediction.shape} differ in shape")
    return {f"{name}_h{step + 1}": registry.load("metric:regression", name)(y[:, step], prediction[:, step])
            for name in names for step in range(y.shape[1])}


def last_value_forecast(window: np.ndarray, horizon: int) -> np.ndarray:
    """N × horizon: each example's last observed value (window: N × T, or N × T × 1)."""
    window = np.asarray(window, dtype=np.float64)
    last = window.reshape(len(window), window.shape[1], -1)[:, -1, 0]
    return np.repeat(last[:, np.newaxis], horizon, axis=1)


def naive_baseline(names: Sequence[str], window: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The per-step metrics of the last-value forecast, named "<metric>_h<step>_naive"."""
    y = _steps(y)
    scores = per_horizon(names, y, last_value_forecast(window, y.shape[1]))
    return {f"{key}_naive": value for key, value in scores.items()}
