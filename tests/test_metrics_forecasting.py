"""Per-horizon metrics and the last-value baseline against scikit-learn, column by column."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from dlpipe.metrics.forecasting import last_value_forecast, naive_baseline, per_horizon


@pytest.mark.parametrize("seed", range(10))
def test_per_horizon_equals_scikit_learn_per_column(seed):
    rng = np.random.default_rng(seed)
    n, horizon = int(rng.integers(2, 60)), int(rng.integers(1, 8))
    y = rng.normal(size=(n, horizon)).astype(np.float32)
    prediction = (y + rng.normal(0, 0.5, size=(n, horizon))).astype(np.float32)
    got = per_horizon(["mae", "rmse", "r2"], y, prediction)
    assert len(got) == 3 * horizon
    for step in range(horizon):
        truth, guess = y[:, step].astype(np.float64), prediction[:, step].astype(np.float64)
        assert got[f"mae_h{step + 1}"] == pytest.approx(sk.mean_absolute_error(truth, guess), abs=1e-12)
        assert got[f"rmse_h{step + 1}"] == pytest.approx(sk.root_mean_squared_error(truth, guess), abs=1e-12)
        assert got[f"r2_h{step + 1}"] == pytest.approx(sk.r2_score(truth, guess), abs=1e-12)


def test_last_value_baseline():
    window = np.array([[1.0, 2.0, 3.0], [5.0, 4.0, 0.5]])
    assert last_value_forecast(window, 2).tolist() == [[3.0, 3.0], [0.5, 0.5]]
    assert last_value_forecast(window[..., np.newaxis], 1).tolist() == [[3.0], [0.5]]
    y = np.array([[4.0, 6.0], [0.5, 1.5]])
    assert naive_baseline(["mae"], window, y) == {"mae_h1_naive": 0.5, "mae_h2_naive": 2.0}
    with pytest.raises(ValueError, match=r"labels \(2, 2\) and predictions \(2, 3\) differ in shape"):
        per_horizon(["mae"], y, np.zeros((2, 3)))
