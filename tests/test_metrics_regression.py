"""Every registered regression metric against scikit-learn on random cases: noisy fits,
constant labels (R² edge), zero labels (MAPE edge), large and tiny magnitudes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from dlpipe import registry
from dlpipe.metrics.evaluate import scores

N_CASES = 240
# scikit-learn spends milliseconds validating each call: every 7th case runs in the fast
# suite (all kinds of case are among them), all 240 with the slow ones.
CASES = [pytest.param(seed, marks=() if seed % 7 == 0 else pytest.mark.slow) for seed in range(N_CASES)]


def case(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 150))
    scale = 10.0 ** rng.integers(-3, 5)
    kind = ["plain", "constant", "zeros", "perfect", "biased", "outliers"][seed % 6]
    y = rng.normal(rng.normal(0, 3), 1, n) * scale
    if kind == "constant":
        y[:] = y[0]
    if kind == "zeros":
        y[rng.random(n) < 0.3] = 0.0
    prediction = y + rng.normal(0, rng.uniform(0.01, 2), n) * scale
    if kind == "perfect":
        prediction = y.copy()
    if kind == "biased":
        prediction += 3 * scale
    if kind == "outliers":
        prediction[rng.integers(0, n)] += 1000 * scale
    # As the model gives them: float32 labels from the data stage, N × 1 float32 output.
    return y.astype(np.float32), prediction.astype(np.float32).reshape(-1, 1)


def reference(y, output) -> dict[str, float]:
    # The same numbers in float64 (exact): scikit-learn computes in the dtype it gets, and
    # in float32 it would be the reference that loses digits.
    y, prediction = y.astype(np.float64), output[:, 0].astype(np.float64)
    return {
        "mae": sk.mean_absolute_error(y, prediction),
        "mse": sk.mean_squared_error(y, prediction),
        "rmse": math.sqrt(sk.mean_squared_error(y, prediction)),
        "r2": sk.r2_score(y, prediction),
        "mape": sk.mean_absolute_percentage_error(y, prediction),
    }


def test_every_registered_metric_has_a_reference():
    assert set(reference(*case(0))) == set(registry.names("metric:regression"))


@pytest.mark.parametrize("seed", CASES)
def test_equals_scikit_learn(seed):
    y, output = case(seed)
    expected = reference(y, output)
    ours = scores("regression", list(registry.names("metric:regression")), y, output, None)
    for name, value in expected.items():
        # 1e-9 absolute, or relative for numbers above 1 (MSE of values near 1e4 is ~1e8).
        assert ours[name] == pytest.approx(value, abs=1e-9, rel=1e-9), name


def test_hand_computed_case():
    y = np.array([1.0, 2.0, 4.0])
    output = np.array([[2.0], [2.0], [2.0]])
    got = scores("regression", ["mae", "mse", "rmse", "r2", "mape"], y, output, None)
    assert got == pytest.approx({"mae": 1.0, "mse": 5 / 3, "rmse": math.sqrt(5 / 3),
                                 "r2": 1 - 5 / (14 / 3), "mape": (1 + 0 + 0.5) / 3}, abs=1e-12)
