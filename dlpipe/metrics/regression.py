"""Regression metrics on numbers (scikit-learn's).

Labels and predictions are taken as float64 first: scikit-learn computes in the dtype it
is given, and a float32 model output would otherwise cost about seven digits.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk


def _float64(y, prediction) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64, the prediction in the labels' shape. Several outputs per example
    (N × K) stay apart: each metric is computed per output, then averaged, as scikit-learn
    does; flattening them would pool outputs of different scales into one number."""
    y = np.asarray(y, dtype=np.float64)
    return y, np.asarray(prediction, dtype=np.float64).reshape(y.shape)


def mae(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(sk.mean_absolute_error(*_float64(y, prediction)))


def mse(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(sk.mean_squared_error(*_float64(y, prediction)))


def rmse(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(sk.root_mean_squared_error(*_float64(y, prediction)))


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    """1 - SSE / SST; with constant labels, 1.0 for a perfect prediction and 0.0 otherwise
    (scikit-learn's convention, so the number stays finite)."""
    return float(sk.r2_score(*_float64(y, prediction)))


def mape(y: np.ndarray, prediction: np.ndarray) -> float:
    """Mean of |y - prediction| / |y|, as a fraction (0.05 is 5 %). A label of 0 divides by
    machine epsilon instead (scikit-learn's convention): the number is then huge, on purpose."""
    return float(sk.mean_absolute_percentage_error(*_float64(y, prediction)))
