"""Trained runs shared by the export and prediction tests: each is trained once per pytest
session (training dominates their cost), in a folder removed at exit. Not a test module."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ALL_FORMATS = "export.formats=[keras,saved_model,tflite,onnx]"

_BASE = Path(tempfile.mkdtemp(prefix="dlpipe-test-runs-"))
atexit.register(shutil.rmtree, _BASE, ignore_errors=True)


def _run(spec: Path, name: str, overrides: list[str]) -> Path:
    import pytest

    from dlpipe.runner import run_spec

    # These runs export every format: without the extras (`pip install -e .[onnx,tflite]`)
    # the tests that need them are skipped, not failed.
    for module in ("onnx", "onnxruntime", "tf2onnx", "ai_edge_litert"):
        pytest.importorskip(module)

    return run_spec(spec, overrides=overrides, out=_BASE / name, command=["pytest", name])


@functools.cache
def tabular() -> Path:
    """The tabular-classification template as shipped (50 epochs of a small MLP: seconds),
    all four formats; TFLite float32 and int8 (each TFLite mode of this 30-input model
    takes ~3 s to convert; the digits run covers all four modes)."""
    return _run(ROOT / "specs" / "tabular-classification.yaml", "tabular",
                [ALL_FORMATS, "export.tflite.quantization=[float32,int8]"])


@functools.cache
def digits() -> Path:
    """The image-classification template, 10 epochs instead of up to 40, all formats and modes."""
    return _run(ROOT / "specs" / "image-classification.yaml", "digits",
                ["training.epochs=10", ALL_FORMATS, "export.tflite.quantization=[float32,float16,dynamic,int8]"])


@functools.cache
def churn() -> Path:
    """Text categorical inputs (tests/fixtures/churn.yaml): keras, saved_model, tflite, onnx."""
    return _run(FIXTURES / "churn.yaml", "churn", [])


@functools.cache
def embedding() -> Path:
    """The autoencoder-embeddings template copied with `dlpipe init` and run for 12 epochs
    instead of up to 60 (keras and SavedModel, as shipped): shared by tests/test_embedding.py
    and the template table of tests/test_run_templates.py."""
    from click.testing import CliRunner

    from dlpipe.cli import main

    folder = _BASE / "embedding"
    folder.mkdir()
    result = CliRunner().invoke(main, ["init", "autoencoder-embeddings", str(folder)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["run", str(folder / "autoencoder-embeddings.yaml"), "--set",
                                       "training.epochs=12", "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return folder / "run"


def _cli_run(name: str, *sets: str) -> Path:
    """`dlpipe run specs/NAME.yaml --set ... --out DIR` through the CLI, in this process."""
    from click.testing import CliRunner

    from dlpipe.cli import main

    out = _BASE / f"template-{name}" / "run"
    result = CliRunner().invoke(main, ["run", str(ROOT / "specs" / f"{name}.yaml"),
                                       *[arg for key in sets for arg in ("--set", key)], "--out", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


SHORTENED = {
    "text-classification": ("training.epochs=3",),  # seen: test accuracy 0.90
    "time-series-forecasting": ("training.epochs=6",),  # seen: MAE 0.39 against the last value's 0.75
    "object-detection": ("data.source.images=400", "training.epochs=10"),  # seen: map_50 0.44 (in full: 0.9)
}
"""Templates whose shortened runs (these --set overrides) tests/test_run_templates.py checks
(their metrics against a baseline, their exports, their reports) and tests/test_evaluation.py
too (their report and `dlpipe evaluate`): made once, by `template`."""


@functools.cache
def template(name: str) -> Path:
    """The template `name` of SHORTENED, run with its overrides (on the template's backend)."""
    return _cli_run(name, *SHORTENED[name])


def _quick(spec: Path, name: str, overrides: list[str]) -> Path:
    """A short run exporting keras and saved_model only (no extras needed)."""
    from dlpipe.runner import run_spec

    return run_spec(spec, overrides=["export.formats=[keras,saved_model]", *overrides], out=_BASE / name,
                    command=["pytest", name])


@functools.cache
def quick_tabular() -> Path:
    """The tabular-classification template for 3 epochs: what `dlpipe serve` and the Python
    API are checked against (the answers matter, not the accuracy)."""
    return _quick(ROOT / "specs" / "tabular-classification.yaml", "quick-tabular", ["training.epochs=3"])


@functools.cache
def quick_digits() -> Path:
    """The image-classification template for 3 epochs (8×8 digits, one image input)."""
    return _quick(ROOT / "specs" / "image-classification.yaml", "quick-digits", ["training.epochs=3"])
