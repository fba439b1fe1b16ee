"""`dlpipe compare RUN...`: metrics side by side with the best marked, the spec differences,
learning curves overlaid; text on the terminal and one self-contained page."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.compare import compare, direction, html_page

ROOT = Path(__file__).resolve().parent.parent


def write_run(folder: Path, metrics: dict, spec: dict, history: list[dict]) -> Path:
    """A run directory's files as `dlpipe run` writes them (run.json, metrics.json,
    spec.yaml, history.csv): compare reads nothing else."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "completed"}))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    keys = list(history[0])
    (folder / "history.csv").write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(row[k]) for k in keys) + "\n" for row in history))
    return folder


def spec(learning_rate: float, units=(64, 64)) -> dict:
    return {"name": "x", "task": "classification", "model": {"type": "mlp", "units": list(units)},
            "training": {"epochs": 2, "optimizer": {"type": "adam", "learning_rate": learning_rate}}}


@pytest.fixture
def two(tmp_path):
    a = write_run(tmp_path / "slow", {"test": {"accuracy": 0.9, "log_loss": 0.30, "roc_auc": 0.95, "odd": 1.0}},
                  spec(0.001), [{"epoch": 1, "loss": 0.6, "val_loss": 0.7}, {"epoch": 2, "loss": 0.4, "val_loss": 0.5}])
    b = write_run(tmp_path / "fast", {"test": {"accuracy": 0.95, "log_loss": 0.35, "roc_auc": 0.95, "odd": 2.0}},
                  spec(0.01, (32,)), [{"epoch": 1, "loss": 0.5, "val_loss": 0.6}, {"epoch": 2, "loss": 0.2,
                                                                                  "val_loss": 0.45}])
    return a, b


def test_best_follows_each_metrics_direction_and_ties_mark_none(two):
    comparison = compare(list(two))
    best = {name: mark for _, name, _, mark in comparison.metrics}
    assert best == {"accuracy": 1, "log_loss": 0, "roc_auc": None, "odd": None}  # odd: no registry entry
    assert direction("classification", "log_loss") == "min" and direction(None, "mae") == "min"
    assert direction("classification", "accuracy") == "max" and direction("classification", "odd") is None
    assert comparison.differences == [("model.units", ["[64, 64]", "[32]"]),
                                      ("training.optimizer.learning_rate", ["0.001", "0.01"])]
    assert comparison.curves == ["loss"]


def test_the_terminal_table(two):
    result = CliRunner().invoke(main, ["compare", *map(str, two)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["metric", "slow", "fast"]
    assert lines[1].split() == ["test", "accuracy", "0.9000", "0.9500*"]
    assert lines[2].split() == ["test", "log_loss", "0.3000*", "0.3500"]
    assert "spec differences (2):" in lines
    assert any(line.split() == ["training.optimizer.learning_rate", "0.001", "0.01"] for line in lines)
    assert lines[-1] == "curves: loss (epochs: slow 2, fast 2)"


def test_the_page_is_self_contained_with_both_curves(two, tmp_path):
    page = html_page(compare(list(two)))
    assert "<script" not in page and not re.search(r"""(src|href)=['"]?(https?:|//)""", page)
    lines = re.findall(r"<polyline [^>]*data-run='(\w+)' data-key='(\w+)'", page)
    assert sorted(lines) == [("fast", "loss"), ("fast", "val_loss"), ("slow", "loss"), ("slow", "val_loss")]
    assert "data-key='training.optimizer.learning_rate'" in page
    assert re.search(r"data-metric='accuracy'>.*?<td class='num best' data-run='fast'", page)


def test_refusals_are_one_line(two, tmp_path):
    for args, message in [([str(two[0])], "error: dlpipe compare: give at least two run directories"),
                          ([str(two[0]), str(tmp_path)], f"error: {tmp_path}: not a dlpipe run directory (no run.json)"),
                          ([str(two[0]), str(two[0])], f"error: dlpipe compare: {two[0]} is given twice")]:
        result = CliRunner().invoke(main, ["compare", *args])
        assert result.exit_code == 1 and result.stderr.strip() == message, result.output


@pytest.mark.slow
def test_two_runs_differing_in_the_learning_rate(tmp_path):
    """Real runs of the tabular template, 4 epochs, learning rates 1e-3 and 1e-2: the
    terminal shows the difference, the page both runs' curves, and Chromium shows the page."""
    runs = []
    for rate in ("0.001", "0.01"):
        out = tmp_path / f"lr-{rate}"
        done = subprocess.run([sys.executable, "-m", "dlpipe", "run", str(ROOT / "specs" / "tabular-classification.yaml"),
                               "--set", "training.epochs=4", "--set", f"training.optimizer.learning_rate={rate}",
                               "--set", "export.formats=[keras]", "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(out)
    page = tmp_path / "compare.html"
    result = CliRunner().invoke(main, ["compare", *map(str, runs), "--out", str(page)])
    assert result.exit_code == 0, result.output
    differences = [line.split() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert differences == [["training.optimizer.learning_rate", "0.001", "0.01"]]
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("test log_loss"))
    better = 0 if metrics[0]["test"]["log_loss"] < metrics[1]["test"]["log_loss"] else 1
    assert row[2 + better].endswith("*") and not row[3 - better].endswith("*")
    text = page.read_text()
    for name in ("lr-0.001", "lr-0.01"):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
            assert f"data-run='{name}' data-key='{key}'" in text
    rates = [yaml.safe_load((run / "spec.yaml").read_text())["training"]["optimizer"]["learning_rate"] for run in runs]
    assert rates == [0.001, 0.01]

    from _system import require
    from browser import Chromium, find_chromium

    executable = require(find_chromium(), "chromium is not installed",
                         "apt-get install chromium (Debian/Ubuntu), or put a Chromium or Chrome on PATH")
    shot = ROOT / "build" / "report-screenshots" / "compare.png"
    with Chromium(executable, tmp_path / "chromium") as browser:
        seen = browser.look(page, shot)
    assert seen["errors"] == []
    assert seen["headings"] == ["Metrics", "Spec differences", "Learning curves"]
    assert "training.optimizer.learning_rate" in seen["text"] and "★" in seen["text"]
    from matplotlib.image import imread

    ink = (imread(shot)[..., :3] < 0.9).any(axis=-1).mean()
    assert 0.01 < ink < 0.9, ink
