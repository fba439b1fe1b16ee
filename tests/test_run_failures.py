"""`dlpipe run` on bad input: one line, exit 1, run.json says why, nothing looks complete.

These run the real CLI in a subprocess (exit code, stderr, no traceback). Data problems are
found before TensorFlow is imported, so each case takes about a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABULAR = ROOT / "specs/tabular-classification.yaml"


def dlpipe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlpipe.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def csv_spec(tmp_path: Path, csv_text: str, target: str = "label") -> Path:
    (tmp_path / "data.csv").write_text(csv_text)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: csv-test\n"
        "task: classification\n"
        "data:\n"
        "  source: {type: csv, path: data.csv}\n"
        f"  target: {{name: {target}}}\n"
        "  split: {train: 0.6, validation: 0.2, test: 0.2}\n"
        "model: {type: mlp, units: [4]}\n"
        "training: {epochs: 1}\n")
    return spec


def rows(n: int, bad_row: int | None = None) -> str:
    lines = ["x,y,label"]
    for i in range(n):
        x = "abc" if i == bad_row else str(i / n)
        lines.append(f"{x},{(i * 7) % 5},{'yes' if i % 2 else 'no'}")
    return "\n".join(lines) + "\n"


def test_non_numeric_value_names_file_row_and_column(tmp_path):
    result = dlpipe("run", str(csv_spec(tmp_path, rows(20, bad_row=6))), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"error: {tmp_path / 'data.csv'}: row 8, column 'x': expected a number, got 'abc'"
    assert "Traceback" not in result.stderr
    record = json.loads((tmp_path / "run/run.json").read_text())
    assert record["status"] == "failed" and "row 8, column 'x'" in record["error"]
    assert record["stages"]["data"]["status"] == "failed"
    assert not (tmp_path / "run/metrics.json").exists() and not (tmp_path / "run/model.keras").exists()


def test_unknown_target_column_points_at_the_spec_line(tmp_path):
    spec = csv_spec(tmp_path, rows(20), target="lable")
    result = dlpipe("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"{spec}:5:18: data.target.name: no column 'lable' in {tmp_path / 'data.csv'}; did you mean 'label'?")


def test_missing_data_file(tmp_path):
    spec = csv_spec(tmp_path, rows(5))
    (tmp_path / "data.csv").unlink()
    result = dlpipe("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'data.csv'}: no such file"


def test_missing_value_without_imputation(tmp_path):
    text = rows(10).replace("\n0.3,", "\n,", 1)
    result = dlpipe("run", str(csv_spec(tmp_path, text)), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert "row 5, column 'x': a missing value (NaN)" in result.stderr.strip().splitlines()[-1]


def test_run_refuses_a_directory_that_holds_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/metrics.json").write_text("{}")
    result = dlpipe("run", str(TABULAR), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'run'}: already holds a run; choose another --out or remove it"
    assert (tmp_path / "run/metrics.json").read_text() == "{}"


def test_invalid_spec_is_refused_before_anything_is_written(tmp_path):
    result = dlpipe("run", str(TABULAR), "--set", "training.epochs=0", "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip() == "--set:1:17: training.epochs: expected a value > 0, got 0"
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path):
    spec = csv_spec(tmp_path, rows(5))
    (tmp_path / "data.csv").unlink()
    result = dlpipe("--debug", "run", str(spec), "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and "Traceback" in result.stderr and "DataError" in result.stderr
