"""Task forecasting on `backend: jax`: the windows reach `fit` as numpy batches, and nothing of
the run, nor `dlpipe evaluate`, `export` and `predict` (from a series) afterwards, imports
TensorFlow.

A tiny two-channel series (tests/test_predict_forecast.py's) trains once on JAX in a fresh
process where TensorFlow cannot be imported (tests/test_backend.py's hook), and once on
TensorFlow in this process; the two are compared: the same windows and splits, test errors
close to each other and far below the last-value forecast's, and the JAX model's forecasts
equal on both backends.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_backend import AFTER_TRAINING, dlpipe_without_tensorflow, without_tensorflow
from test_predict_forecast import LOOKBACK, series, write_series
from test_predict_forecast import SPEC as FORECASTER

pytestmark = pytest.mark.slow

# tests/test_predict_forecast.py's forecaster, with its own split, a longer training that
# learns (so the two backends' test errors compare) and a lighter evaluation and export.
SPEC = {**yaml.safe_load(FORECASTER),
        "training": {"epochs": 20, "batch_size": 32, "optimizer": {"type": "adam", "learning_rate": 0.02},
                     "progress": "none"},
        "evaluation": {"baselines": False},
        "export": {"formats": ["keras"], "latency_calls": 0}}
SPEC["data"] = {**SPEC["data"], "split": {"train": 0.6, "validation": 0.15, "test": 0.25}}
# 96 training rows → 84 windows → 3 batches an epoch.
JAX = ("--set", "backend=jax")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """folder/jax (trained without TensorFlow), folder/tensorflow (this process), and
    folder/cache (JAX's compiled steps, loaded again by the later JAX runs)."""
    from dlpipe.runner import run_spec

    folder = tmp_path_factory.mktemp("forecast-jax")
    days, values = series()
    write_series(folder / "series.csv", days, values)
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False), encoding="utf-8")
    result = dlpipe_without_tensorflow("run", str(folder / "spec.yaml"), *JAX, "--out", str(folder / "jax"),
                                       env={"DLPIPE_CACHE_DIR": str(folder / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    run_spec(folder / "spec.yaml", out=folder / "tensorflow", command=["pytest"])
    return folder


def test_forecasting_trains_on_jax_as_on_tensorflow(runs):
    record = json.loads((runs / "jax" / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "jax"
    assert "jax" in record["versions"] and "tensorflow" not in record["versions"]
    assert json.loads((runs / "tensorflow" / "run.json").read_text())["backend"] == "tensorflow"
    # The same windows, cut from the same splits of the series, on both backends.
    for name in ("splits.json", "data.json"):
        assert (runs / "jax" / name).read_bytes() == (runs / "tensorflow" / name).read_bytes(), name
    jax, tensorflow = (json.loads((runs / name / "metrics.json").read_text())["test"] for name in ("jax", "tensorflow"))
    assert jax["naive_mae"] == pytest.approx(tensorflow["naive_mae"], rel=1e-6)  # the same test windows
    for metrics in (jax, tensorflow):  # seen: mae 0.27 (jax), 0.28 (tensorflow); the last value 1.96
        assert metrics["mae"] <= 0.2 * metrics["naive_mae"], metrics
    assert jax["mae"] == pytest.approx(tensorflow["mae"], rel=0.3), (jax, tensorflow)
    assert (runs / "jax" / "export" / "keras" / "model.keras").is_file()
    assert json.loads((runs / "jax" / "export" / "verification.json").read_text())["keras"]["passed"] is True


def test_a_jax_forecaster_is_evaluated_exported_and_predicted_without_tensorflow(runs, tmp_path):
    """`dlpipe evaluate`, `export --format keras` and `predict` from a series (its end, and
    every window) of the JAX run, without TensorFlow; the forecasts equal the JAX model.keras
    run here on TensorFlow over windows cut by hand."""
    from dlpipe.modelfile import load_keras_model

    run = runs / "jax"
    days, values = series()
    tail = write_series(tmp_path / "tail.csv", days[-30:], values[-30:], np.random.default_rng(2).permutation(30))
    commands = [["evaluate", str(run)], ["export", str(run), "--format", "keras"],
                ["predict", str(run), str(tail), "--out", str(tmp_path / "end.csv")],
                ["predict", str(run), str(tail), "--every-window", "--out", str(tmp_path / "every.csv")]]
    result = without_tensorflow(AFTER_TRAINING.format(commands=commands))
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = {metric: float(value) for _, metric, value in
                 (line.split("\t") for line in result.stdout.splitlines() if line.startswith("test\t"))}
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert set(evaluated) == set(trained)
    for metric, value in trained.items():
        assert evaluated[metric] == pytest.approx(value, abs=1e-4), metric
    assert "keras            verified" in result.stdout

    model = load_keras_model(run / "model.keras")  # written on JAX, loaded on TensorFlow
    windows = np.stack([values[i:i + LOOKBACK] for i in range(len(days) - 30, len(days) - LOOKBACK + 1)])
    expected = np.asarray(model({"window": windows.astype(np.float32)}, training=False))
    (end,) = read_forecasts(tmp_path / "end.csv", days[-1:])
    np.testing.assert_allclose(end, expected[-1], atol=1e-4)
    every = read_forecasts(tmp_path / "every.csv", days[-30 + LOOKBACK - 1:])
    np.testing.assert_allclose(every, expected, atol=1e-4)


def read_forecasts(path: Path, days: list[str]) -> np.ndarray:
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [row["day"] for row in rows] == days
    return np.array([[float(row[f"forecast_{k}"]) for k in (1, 2, 3)] for row in rows])


def test_a_killed_jax_forecasting_run_resumes_to_the_same_bits(runs):
    """Killed (SIGKILL) in epoch 2, after epoch 1's checkpoint, and resumed: the weights and the
    history equal the uninterrupted JAX run's."""
    cache = {"DLPIPE_CACHE_DIR": str(runs / "cache")}
    spec, out = str(runs / "spec.yaml"), str(runs / "killed")
    killed = dlpipe_without_tensorflow("run", spec, *JAX, "--out", out,
                                       env={"DLPIPE_TEST_KILL_AT": "train:10", **cache})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert json.loads((runs / "killed/checkpoints/last.json").read_text())["epoch"] == 1
    resumed = dlpipe_without_tensorflow("run", spec, *JAX, "--out", out, "--resume", env=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    whole, again = (json.loads((runs / name / "run.json").read_text()) for name in ("jax", "killed"))
    assert again["resumed_from_epoch"] == 1 and again["weights_sha256"] == whole["weights_sha256"]
    assert (runs / "jax/history.csv").read_text() == (runs / "killed/history.csv").read_text()
