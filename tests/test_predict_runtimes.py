"""`dlpipe predict` runs ONNX and TFLite exports too, each with its own runtime (onnxruntime,
the LiteRT interpreter with the lookup pre-step): the same rows give what model.keras gives,
within the export's tolerance."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import _runs
from dlpipe.cli import main
from dlpipe.errors import DlpipeError
from dlpipe.prediction import locate_model

ROWS = "tenure_months,plan,region\n3,basic,north\n60,pro,south\n20,plus,nowhere\n48,basic,east\n7,gold,west\n"


def predict(model, rows, out):
    result = CliRunner().invoke(main, ["predict", str(model), str(rows), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def probabilities(rows) -> np.ndarray:
    return np.array([[float(row["probability_no"]), float(row["probability_yes"])] for row in rows])


@pytest.mark.slow
def test_onnx_and_tflite_exports_predict_what_model_keras_predicts(tmp_path):
    root = _runs.churn()  # keras, saved_model, tflite (float32, int8), onnx; text categories
    export = root / "export"
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS, encoding="utf-8")
    reference = predict(root / "model.keras", rows, tmp_path / "keras.csv")
    runs = {
        "onnx": (export / "onnx", 1e-4),                          # a format's folder
        "onnx file": (export / "onnx" / "model.onnx", 1e-4),      # its file
        "tflite": (export / "tflite", 1e-4),                      # float32 of the folder's modes
        "tflite int8": (export / "tflite" / "model_int8.tflite", 0.1),
    }
    for name, (model, tolerance) in runs.items():
        got = predict(model, rows, tmp_path / f"{name.replace(' ', '_')}.csv")
        diff = np.abs(probabilities(got) - probabilities(reference)).max()
        assert diff <= tolerance, (name, diff)
        if tolerance < 1e-3:
            assert [r["prediction"] for r in got] == [r["prediction"] for r in reference], name
    assert locate_model(export / "onnx").kind == "onnx"
    assert locate_model(export / "tflite").path.name == "model_float32.tflite"
    assert locate_model(export / "tflite" / "model_int8.tflite").export_key == "tflite/int8"
    # An export folder holding only ONNX and TFLite is predicted with ONNX.
    only = tmp_path / "export"
    shutil.copytree(export, only, ignore=shutil.ignore_patterns("saved_model", "keras"))
    assert locate_model(only).kind == "onnx"
    got = predict(only, rows, tmp_path / "only.csv")
    assert np.abs(probabilities(got) - probabilities(reference)).max() <= 1e-4
    (only / "tflite" / "model_float32.tflite").unlink()
    shutil.copy(export / "tflite" / "model_int8.tflite", only / "tflite" / "model_dynamic.tflite")
    with pytest.raises(DlpipeError, match="holds several .tflite files; name one"):
        locate_model(only / "tflite")
