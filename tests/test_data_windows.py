"""Forecasting windows in the data stage: a time-ordered split with no look-ahead."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.prepare import prepare
from dlpipe.errors import DataError, SpecError
from dlpipe.spec import load_document, locate


def write_case(tmp_path: Path, rows: list[str], windows: str, features: str = "") -> Path:
    (tmp_path / "series.csv").write_text("day,level,rain\n" + "\n".join(rows) + "\n")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(f"""\
        name: series
        task: forecasting
        data:
          source: {{type: csv, path: series.csv}}
          target: {{name: level}}
          windows: {windows}
          split: {{train: 0.6, validation: 0.2, test: 0.2}}
        {features}
        model: {{type: mlp}}
        """))
    return tmp_path / "spec.yaml"


def prepared(path: Path):
    spec, document = load_document(path)
    return spec, prepare(spec, path.parent, lambda where, message: SpecError([locate(document, where, message)]))


def shuffled_series(n: int = 100, seed: int = 3) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rows in a random order; day d has level 10·d (+ noise) and rain d mod 7."""
    rng = np.random.default_rng(seed)
    days = np.datetime64("2020-01-01") + np.arange(n)
    level = 10.0 * np.arange(n) + rng.normal(0, 1, n).round(3)
    rows = [f"{days[i]},{level[i]},{i % 7}" for i in rng.permutation(n)]
    return rows, days, level


def test_time_ordered_split_never_puts_a_later_step_in_an_earlier_part(tmp_path):
    rows, days, level = shuffled_series()
    spec, data = prepared(write_case(tmp_path, rows, "{lookback: 5, horizon: 3, stride: 2, order_by: day}",
                                     "  features: [{name: rain, type: numerical}]"))
    steps = data.extra["window_steps"]  # time positions each window touches (input and label)
    assert steps["train"].max() < steps["validation"].min() <= steps["validation"].max() < steps["test"].min()
    # Parts: days 0-59, 60-79, 80-99; windows (8 steps, stride 2) lie wholly inside one.
    assert data.extra["boundaries"] == {"train": (0, 60), "validation": (60, 80), "test": (80, 100)}
    for name, (start, end) in data.extra["boundaries"].items():
        assert steps[name].min() >= start and steps[name].max() < end
        split = data.splits[name]
        first = steps[name][:, 0]
        assert np.array_equal(first, np.arange(start, end - 8 + 1, 2))
        # Inputs: level (target first) and rain for 5 days; labels: the level of the next 3.
        np.testing.assert_allclose(split.x["window"][:, :, 0], level[steps[name][:, :5]], rtol=1e-6)
        np.testing.assert_allclose(split.x["window"][:, :, 1], steps[name][:, :5] % 7)
        np.testing.assert_allclose(split.y, level[steps[name][:, 5:]], rtol=1e-6)
        np.testing.assert_allclose(split.naive, np.repeat(level[steps[name][:, 4:5]], 3, axis=1), rtol=1e-6)
    # The later timestamps of the file really are later: compare the dates, not positions.
    train_days, test_days = days[steps["train"]], days[steps["test"]]
    assert train_days.max() < test_days.min()
    (feature,) = data.features
    assert (feature.input_name, feature.type, feature.shape) == ("window", "sequence", (5, 2))
    # Per-channel statistics of the training windows only.
    np.testing.assert_allclose(feature.mean, data.splits["train"].x["window"].mean(axis=(0, 1)), rtol=1e-5)
    assert feature.mean[0] < level[:60].max() < level[60:].min()


def test_default_order_is_the_file_order_and_features_default_to_the_numbers(tmp_path):
    rows = [f"{d},{d * 2.0},{d % 3}" for d in range(40)]
    _, data = prepared(write_case(tmp_path, rows, "{lookback: 4}"))
    assert data.extra["channels"] == ["level", "day", "rain"]
    assert data.splits["train"].y.shape == (24 - 4, 1)


@pytest.mark.parametrize("row, message", [
    ("2020-13-45,1,1", "row 7, column 'day': '2020-13-45' is not a number or an ISO date"),
    ("2020-01-02,1,1", "row 7, column 'day': time '2020-01-02' occurs twice; a series has one row per step"),
])
def test_bad_times_are_data_errors_naming_the_row(tmp_path, row, message):
    rows = [f"2020-01-{d:02d},{d},0" for d in range(1, 30)]
    rows[5] = row
    with pytest.raises(DataError, match=message):
        prepared(write_case(tmp_path, rows, "{lookback: 3, order_by: day}"))


def test_a_part_shorter_than_one_window_is_a_located_error(tmp_path):
    rows = [f"{d},{d},0" for d in range(20)]
    with pytest.raises(SpecError, match=r"spec.yaml:\d+:\d+: data.split.test: the test part of the series holds 4 "
                       r"steps, fewer than one window of lookback 4 \+ horizon 2 = 6"):
        prepared(write_case(tmp_path, rows, "{lookback: 4, horizon: 2}"))
