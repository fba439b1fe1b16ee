"""The benchmarks' inputs stay valid as the spec grows (no timing here: timings live in
benchmarks/ and docs/benchmarks.md)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from dlpipe.spec import check_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import scaling  # noqa: E402


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_benchmark_specs_are_valid(path):
    assert check_text(str(path), path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("streaming", [False, True])
def test_scaling_spec_is_valid_with_and_without_streaming(tmp_path, streaming):
    assert scaling.has_streaming()
    text = scaling.spec_text(100, tmp_path / "rows.csv", 2, streaming)
    assert check_text("scaling.yaml", text) == []


def test_scaling_csv_has_the_rows_and_columns_the_spec_names(tmp_path):
    path = tmp_path / "rows.csv"
    scaling.write_csv(path, 58)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 58
    assert list(rows[0]) == [f"x{i}" for i in range(8)] + ["colour", "label"]
    assert {row["label"] for row in rows} == {"0", "1"}
    assert {row["colour"] for row in rows} <= {"red", "green", "blue", "grey", "black"}
    scaling.write_csv(tmp_path / "again.csv", 58)
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()  # seeded
