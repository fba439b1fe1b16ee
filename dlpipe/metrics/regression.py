"""Regression metrics on numbers (scikit-learn's)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk


def mae(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(sk.mean_absolute_error(y, prediction))


def mse(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(sk.mean_squared_error(y, prediction))


def rmse(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.sqrt(sk.mean_squared_error(y, prediction)))


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(sk.r2_score(y, prediction))
