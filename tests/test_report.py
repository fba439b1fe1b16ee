"""report.html and the plots, on hand-made run files (no TensorFlow): numbers, escaping,
self-containment, pictures that show what they should. Real runs: tests/test_evaluation.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dlpipe.report import plots
from dlpipe.report.html import format_number, write_report
from dlpipe.rundir import atomic_write_json
from report_page import Page, assert_every_metric_shown

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value, text", [
    (0.93859649, "0.9386"), (1.0, "1.0000"), (0.0, "0"), (12345.678, "12345.6780"), (123456.0, "1.2346e+05"),
    (2.5e-6, "2.5000e-06"), (-0.25, "-0.2500"), (float("nan"), "NaN"), (float("inf"), "∞"), (6209, "6,209"), (None, "n/a"),
])
def test_format_number(value, text):
    assert format_number(value) == text


def png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)


@pytest.fixture
def run_files(tmp_path) -> Path:
    """A run directory's files as a run writes them, with awkward numbers and names."""
    shutil.copy(ROOT / "specs" / "tabular-classification.yaml", tmp_path / "spec.yaml")
    spec = (tmp_path / "spec.yaml").read_text().replace(
        "description: Breast-cancer", "description: <script>alert('x')</script> Breast-cancer")
    (tmp_path / "spec.yaml").write_text(spec)
    atomic_write_json(tmp_path / "metrics.json", {
        "test": {"accuracy": 0.9385964912280702, "roc_auc": float("nan"), "mse": 2.5e-06, "big": 123456.789},
        "validation": {"accuracy": 1.0},
    })
    atomic_write_json(tmp_path / "data.json", {
        "origin": "builtin:breast_cancer", "fingerprint": "sha256:00", "task": "classification", "target": "target",
        "class_names": ["malignant", "benign"], "split_sizes": {"test": 114, "train": 398, "validation": 57},
        "features": [{"name": f"f<{i}>", "input": f"f{i}", "type": "numerical", "shape": [1],
                      "normalization": "zscore"} for i in range(50)],
    })
    atomic_write_json(tmp_path / "export" / "verification.json", {
        "keras": {"path": "export/keras/model.keras", "max_abs_diff": 0.0, "mean_abs_diff": 0.0, "agreement": 1.0,
                  "samples": 64, "tolerance": 1e-4, "passed": True}})
    (tmp_path / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                                          "1,0.5,0.9,0.6,0.8\n2,0.7,0.6,0.65,0.7\n3,0.8,0.4,0.7,0.6\n")
    return tmp_path


def test_page_has_every_number_escaped_and_nothing_external(run_files):
    path = write_report(run_files)
    assert path == run_files / "report.html"
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    metrics = json.loads((run_files / "metrics.json").read_text())
    assert assert_every_metric_shown(page.cells, metrics) == 5
    assert page.cells[("test", "roc_auc")] == {"title": "nan", "text": "NaN"}
    assert page.cells[("test", "big")]["text"] == "1.2346e+05"
    # Splits in reading order, whatever order metrics.json keeps them in.
    assert html.index('data-split="validation"') < html.index('data-split="test"')
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "f&lt;0&gt;" in html and "… and 10 more features" in html
    assert not page.external and "script" not in page.tags and "link" not in page.tags
    assert len(page.images) == 1 and page.images[0].startswith("data:image/png;base64,")  # learning curves
    assert page.headings == ["Metrics", "Plots", "Spec", "Data", "Export verification"]
    assert "train 398, validation 57, test 114" in html
    assert not list(run_files.glob(".*.tmp*"))  # written atomically: no temporary file left


def test_report_without_optional_files(tmp_path):
    """A run that stopped before evaluating still gets a page saying what is missing."""
    shutil.copy(ROOT / "specs" / "image-classification.yaml", tmp_path / "spec.yaml")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No metrics.json." in html and "No data.json." in html and "No export/verification.json." in html
    assert Page(html).cells == {}


def test_plots_show_what_they_should(tmp_path):
    # Boxes: a red rectangle drawn on a black image shows up as red pixels.
    image = np.zeros((1, 32, 32, 1))
    image[0, 0, 0, 0] = 1.0  # so the image is not constant
    path = plots.image_grid(image, ["one"], tmp_path / "boxes.png", "Detections",
                            boxes=[[((4, 4, 28, 28), "cat 0.9", "red")]])
    pixels = png(path)[..., :3]
    red = (pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 50
    assert plots.image_grid(np.zeros((0, 8, 8, 1)), [], tmp_path / "none.png", "empty") is None
    # Learning curves: one panel per quantity, from history.csv.
    (tmp_path / "history.csv").write_text("epoch,loss,mae,val_loss,val_mae\n1,3,2,4,3\n2,2,1.5,3,2.5\n")
    history = plots.read_history(tmp_path / "history.csv")
    assert history == {"epoch": [1, 2], "loss": [3, 2], "mae": [2, 1.5], "val_loss": [4, 3], "val_mae": [3, 2.5]}
    assert png(plots.learning_curves(history, tmp_path / "curves.png")).shape[1] == 2 * 420
    # ROC is undefined with one class in the labels: no file rather than a wrong picture.
    assert plots.roc_curve(np.zeros(5, dtype=int), np.linspace(0, 1, 5), tmp_path / "roc.png", "test", "b") is None
    assert not (tmp_path / "roc.png").exists()
    counts = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    assert png(plots.confusion_matrix(counts, fractions, ["a", "b", "c"], tmp_path / "cm.png", "test")).ndim == 3
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    assert png(plots.residuals(y, y + rng.normal(0, 0.1, 50), tmp_path / "res.png", "test")).ndim == 3
