"""`dlpipe predict` on a forecaster takes the series it was trained from: rows of the target
(and its other channels) with their time, in any order; it cuts the model's window from the
series' end (or every window) and writes one column per step ahead."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.errors import DataError
from dlpipe.prediction import read_examples

LOOKBACK, HORIZON = 10, 3
INTERFACE = {
    "task": "forecasting",
    "class_names": None,
    "output": {"units": HORIZON, "activation": "linear"},
    "inputs": [{"name": "load, temp", "input": "window", "type": "sequence", "shape": [LOOKBACK, 2]}],
    "windows": {"lookback": LOOKBACK, "horizon": HORIZON, "order_by": "day", "channels": ["load", "temp"]},
}


def series(n: int = 160, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Days in time order and a (load, temp) row per day: a weekly cycle, a trend, noise."""
    rng = np.random.default_rng(seed)
    days = [str(np.datetime64("2020-01-01") + i) for i in range(n)]
    t = np.arange(n)
    load = 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.2, n)
    temp = 5 + 3 * np.cos(2 * np.pi * t / 30) + rng.normal(0, 0.3, n)
    return days, np.stack([load, temp], axis=1).round(4)


def write_series(path: Path, days: list[str], values: np.ndarray, order: np.ndarray | None = None) -> Path:
    order = np.arange(len(days)) if order is None else order
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["day", "load", "temp"])
        for i in order:
            writer.writerow([days[i], repr(float(values[i, 0])), repr(float(values[i, 1]))])
    return path


# No TensorFlow here: the series is read, ordered and cut as the model's windows.

def test_the_series_end_becomes_one_window_in_time_order(tmp_path):
    days, values = series(40)
    shuffled = np.random.default_rng(1).permutation(40)
    examples = read_examples(write_series(tmp_path / "s.csv", days, values, shuffled), INTERFACE)
    assert examples.count == 1 and examples.label_name == "day" and examples.labels == [days[-1]]
    np.testing.assert_array_equal(examples.batch(0, 1)["window"][0], values[-LOOKBACK:].astype(np.float32))


def test_every_window_is_every_lookback_consecutive_steps(tmp_path):
    days, values = series(25)
    examples = read_examples(write_series(tmp_path / "s.csv", days, values), INTERFACE, every_window=True)
    assert examples.count == 25 - LOOKBACK + 1 and examples.labels == days[LOOKBACK - 1:]
    batch = examples.batch(0, examples.count)["window"]
    for i in range(examples.count):
        np.testing.assert_array_equal(batch[i], values[i:i + LOOKBACK].astype(np.float32))


@pytest.mark.parametrize("text, message", [
    ("day,load\n2020-01-01,1\n", r"s.csv: no column 'temp' \(a channel of its windows\); a forecaster takes "
                                 r"its series with columns load, temp, day, one row per step, or windows under 'window'$"),
    ("load,temp\n1,2\n", r"s.csv: no column 'day' \(the time it is ordered by\)"),
    ("day,load,temp\n2020-01-01,1,2\n2020-01-02,x,2\n", r"s.csv: row 3, column 'load': expected a number, got 'x'$"),
    ("day,load,temp\n2020-01-01,1,2\n2020-01-02,,2\n", r"s.csv: row 3, column 'load': a missing value"),
    ("day,load,temp\n2020-01-01,1,2\n2020-01-01,1,2\n", r"s.csv: row 3, column 'day': time '2020-01-01' occurs twice"),
    ("day,load,temp\n2020-01-01,1,2\n2020-01-02,1,2\n", r"s.csv: 2 rows, fewer than the 10 steps each window of "
                                                        r"this model looks back$"),
])
def test_a_bad_series_is_one_located_line(tmp_path, text, message):
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_examples(path, INTERFACE)


def test_every_window_needs_a_forecaster(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("x\n1\n", encoding="utf-8")
    interface = {**INTERFACE, "task": "regression", "windows": None}
    with pytest.raises(Exception, match="--every-window: only a forecasting model reads a series"):
        read_examples(path, interface, every_window=True)


# A real forecaster, trained from a CSV ------------------------------------------------

SPEC = f"""\
version: 1
name: load-forecast
task: forecasting
seed: 3
data:
  source: {{type: csv, path: series.csv}}
  target: {{name: load}}
  features: [{{name: temp, type: numerical}}]
  windows: {{lookback: {LOOKBACK}, horizon: {HORIZON}, order_by: day}}
  split: {{train: 0.7, validation: 0.15, test: 0.15}}
model: {{type: rnn, cell: gru, units: [8]}}
training: {{epochs: 2, batch_size: 32}}
export: {{formats: [keras, saved_model]}}
"""


@functools.cache
def trained(folder: Path) -> tuple[Path, list[str], np.ndarray]:
    from dlpipe.runner import run_spec

    days, values = series()
    write_series(folder / "series.csv", days, values)
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    return run_spec(folder / "spec.yaml", out=folder / "run", command=["pytest"]), days, values


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("forecaster"))


def predict(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["predict", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_a_forecaster_predicts_from_the_last_rows_of_its_csv(forecaster, tmp_path):
    import keras

    run, days, values = forecaster
    # The CSV's last 30 rows, written in shuffled order: predict puts them back in time order.
    tail = write_series(tmp_path / "tail.csv", days[-30:], values[-30:], np.random.default_rng(2).permutation(30))
    code, out, err = predict(run, tail)
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert list(rows[0]) == ["day", "forecast_1", "forecast_2", "forecast_3"] and len(rows) == 1
    assert rows[0]["day"] == days[-1]
    # The oracle: model.keras on the window built by hand (last LOOKBACK days, target first).
    model = keras.saving.load_model(run / "model.keras")
    window = values[-LOOKBACK:].astype(np.float32)[np.newaxis]
    expected = model.predict({"window": window}, verbose=0)[0]
    got = np.array([float(rows[0][f"forecast_{k}"]) for k in (1, 2, 3)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The SavedModel of the export folder forecasts the same; JSON lines hold the same columns.
    code, _, err = predict(run / "export", tail, "--out", tmp_path / "f.jsonl")
    assert code == 0, err
    (line,) = [json.loads(text) for text in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert list(line) == ["day", "forecast_1", "forecast_2", "forecast_3"]
    np.testing.assert_allclose([line[f"forecast_{k}"] for k in (1, 2, 3)], expected, atol=1e-5)
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert card["windows"] == {"lookback": LOOKBACK, "horizon": HORIZON, "order_by": "day",
                               "channels": ["load", "temp"]}


@pytest.mark.slow
def test_every_window_and_a_bad_series_print_no_header(forecaster, tmp_path):
    import keras

    run, days, values = forecaster
    whole = write_series(tmp_path / "all.csv", days, values)
    code, out, err = predict(run, whole, "--every-window")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == len(days) - LOOKBACK + 1 and [r["day"] for r in rows] == days[LOOKBACK - 1:]
    model = keras.saving.load_model(run / "model.keras")
    windows = np.stack([values[i:i + LOOKBACK] for i in range(len(rows))]).astype(np.float32)
    expected = model.predict({"window": windows}, verbose=0)
    got = np.array([[float(r[f"forecast_{k}"]) for k in (1, 2, 3)] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    short = write_series(tmp_path / "short.csv", days[:4], values[:4])
    code, out, err = predict(run, short)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [f"error: {short}: 4 rows, fewer than the {LOOKBACK} steps each window of "
                                        "this model looks back"]


@pytest.mark.slow
def test_model_keras_loads_in_plain_keras_after_the_one_import(forecaster):
    """README: `import dlpipe.custom_objects`, then plain `keras.saving.load_model` (compiled,
    safe mode) in a fresh process; without the import Keras names the missing dlpipe class."""
    import subprocess
    import sys

    import keras

    run, _, values = forecaster
    window = values[-LOOKBACK:].astype(np.float32)[np.newaxis]
    expected = keras.saving.load_model(run / "model.keras").predict({"window": window}, verbose=0)
    code = ("import sys, numpy as np, keras\n"
            "try:\n"
            "    keras.saving.load_model(sys.argv[1])\n"
            "except Exception as err:\n"
            "    print('without:', 'dlpipe>SubtractLast' in str(err))\n"
            "import dlpipe.custom_objects\n"
            "model = keras.saving.load_model(sys.argv[1])\n"
            "print('with:', model.predict({'window': np.load(sys.argv[2])}, verbose=0).tolist())\n")
    np.save(run.parent / "window.npy", window)
    done = subprocess.run([sys.executable, "-c", code, str(run / "model.keras"), str(run.parent / "window.npy")],
                          capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                                             "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "without: True"
    np.testing.assert_allclose(json.loads(lines[1].removeprefix("with: ")), expected, atol=1e-6)
