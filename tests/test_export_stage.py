"""The export stage on real trained runs: every format written, loaded with its own runtime,
compared with the trained model; verification.json, the model card, `dlpipe export`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import _runs
from dlpipe.cli import main

FLOAT_KEYS = ("keras", "saved_model", "onnx", "tflite/float32")


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def saved_model_cli(directory: Path) -> str:
    """`saved_model_cli show --all`: the console script when installed, else its module."""
    script = Path(sys.executable).with_name("saved_model_cli")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    done = subprocess.run([*command, "show", "--dir", str(directory), "--all"], capture_output=True, text=True,
                          timeout=120, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("run, test_size, modes", [
    (_runs.tabular, 114, ("float32", "int8")),
    (_runs.digits, 179, ("float32", "float16", "dynamic", "int8")),
])
def test_templates_export_and_verify_every_format(run, test_size, modes):
    results = read(run() / "export" / "verification.json")
    assert sorted(results) == sorted(["keras", "saved_model", "onnx", *(f"tflite/{m}" for m in modes)])
    for key, entry in results.items():
        assert entry["passed"] is True, (key, entry)
        assert entry["samples"] == test_size and entry["batch_sizes"] == [test_size, 1]
        assert (run() / "export" / entry["path"]).exists()
    for key in FLOAT_KEYS:
        assert results[key]["max_abs_diff"] <= 1e-4, key
        assert results[key]["agreement"] == 1.0, key
        assert results[key]["tolerance"] == {"max_abs_diff": 1e-4}
    assert results["tflite/int8"]["agreement"] >= 0.97
    assert results["tflite/int8"]["tolerance"] == {"agreement": 0.97}
    assert results["tflite/int8"]["max_abs_diff"] > 0  # it really is quantized
    assert results["onnx"]["opset"] == 17 and results["tflite/int8"]["quantization"] == "int8"
    # Every export scored on the whole test split with its own runtime, sized, timed.
    model_test = read(run() / "metrics.json")["test"]
    for key, entry in results.items():
        assert set(entry["test_metrics"]) == set(model_test), key
        close = 1e-4 if key in FLOAT_KEYS else 0.03  # int8 and float16 may move a few examples
        for metric in ("accuracy", "f1_macro"):
            assert abs(entry["test_metrics"][metric] - model_test[metric]) <= close, (key, metric)
        assert 0 < entry["gzip_bytes"] < entry["bytes"] and entry["latency"]["calls"] == 50
        assert entry["latency"]["median_ms"] <= entry["latency"]["p90_ms"]
    sizes = {key: entry["bytes"] for key, entry in results.items()}
    assert sizes["tflite/int8"] < sizes["tflite/float32"]


@pytest.mark.slow
def test_keras_export_is_the_runs_model_file_verified():
    root = _runs.tabular()
    # The run saved model.keras once; the export copies that file (no second save), and the
    # copy is still loaded back and compared like any export.
    assert (root / "export" / "keras" / "model.keras").read_bytes() == (root / "model.keras").read_bytes()
    entry = read(root / "export" / "verification.json")["keras"]
    assert entry["passed"] is True and entry["max_abs_diff"] <= 1e-6


@pytest.mark.slow
def test_model_card_describes_the_run():
    root = _runs.tabular()
    card = read(root / "export" / "model_card.json")
    assert card["name"] == "breast-cancer-mlp" and card["task"] == "classification"
    assert card["class_names"] == ["malignant", "benign"]
    assert card["output"] == {"units": 1, "activation": "sigmoid",
                              "meaning": "the probability of class 'benign' (1 minus it: 'malignant')"}
    assert len(card["inputs"]) == 30
    assert card["inputs"][0] == {**card["inputs"][0], "name": "mean radius", "input": "mean_radius",
                                 "type": "numerical", "dtype": "float32", "shape": [1], "normalization": "zscore"}
    assert card["data"]["fingerprint"] == read(root / "run.json")["data_fingerprint"]
    assert card["data"]["split_sizes"] == {"train": 398, "validation": 57, "test": 114}
    model_metrics = {split: values for split, values in read(root / "metrics.json").items() if split != "baselines"}
    assert card["metrics"] == model_metrics  # the model's own numbers; the baselines stay in metrics.json
    assert card["exports"] == read(root / "export" / "verification.json")
    assert card["intended_use"].startswith("A teaching example of tabular classification")
    assert {"dlpipe", "python", "tensorflow", "keras", "onnxruntime", "ai-edge-litert"} <= set(card["versions"])
    markdown = (root / "export" / "model_card.md").read_text(encoding="utf-8")
    for heading in ("# Model card: breast-cancer-mlp", "## Intended use", "## Inputs", "## Data",
                    "## Metrics", "## Exports", "## Versions"):
        assert heading in markdown
    assert "## Intended use\n\nA teaching example of tabular classification on a small public dataset" in markdown
    assert "| mean radius | `mean_radius` | numerical | float32 | (1,) | zscore |" in markdown
    assert "| tflite/int8 | `tflite/model_int8.tflite` | yes |" in markdown


def test_model_card_says_when_the_intended_use_is_not_stated():
    from dlpipe.exporters.model_card import render_markdown

    card = {"name": "m", "description": "", "intended_use": None, "task": "regression", "target": "y",
            "output": {"units": 1, "activation": "linear", "meaning": "the predicted value of 'y'"},
            "class_names": None, "inputs": [{"name": "x", "input": "x", "type": "numerical", "dtype": "float32",
                                             "shape": [1], "normalization": "none", "value_range": [0.0, 2.5]}],
            "data": {"origin": "a.csv", "fingerprint": "sha256:0", "split_sizes": {"train": 8, "test": 2}},
            "training": {"architecture": "mlp", "parameters": 1234, "epochs": 3, "batch_size": 4,
                         "optimizer": "adam", "seed": 1},
            "metrics": {"test": {"mae": 0.5}}, "versions": {"dlpipe": "0.1.0"},
            "exports": {"keras": {"path": "keras/model.keras"}}}
    markdown = render_markdown(card)
    assert "## Intended use\n\nNot stated in the spec (`export.intended_use`)." in markdown
    assert "| x | `x` | numerical | float32 | (1,) | none | 0 … 2.5 |" in markdown
    assert "| mae | 0.5 |" in markdown
    assert "| keras | `keras/model.keras` | not checked | – | – |  |  |" in markdown
    assert "mlp with 1,234 parameters; up to 3 epochs, batch size 4, adam, seed 1." in markdown


def test_model_card_markdown_shows_what_the_spec_and_data_wrote_as_text_never_markup():
    from dlpipe.exporters.model_card import render_markdown

    script = "<script>alert(1)</script>"
    card = {"name": "m", "description": f"Made by {script} & co", "intended_use": "<img src=x onerror=alert(1)>",
            "task": "classification", "target": "label`<b>",
            "output": {"units": 2, "activation": "softmax", "meaning": f"one of {script}"},
            "class_names": [script, "a`b``c"],
            "inputs": [{"name": f"x|{script}", "input": "x", "type": "categorical", "dtype": "string",
                        "shape": [1], "encoding": "one_hot", "vocabulary": [script, "<!-- hidden", "ok"]}],
            "data": {"origin": "`<iframe>`", "fingerprint": "sha256:0", "split_sizes": {"train": 8, "test": 2}},
            "training": {"architecture": "mlp", "parameters": 1, "epochs": 1, "batch_size": 1,
                         "optimizer": "adam", "seed": 1},
            "metrics": {"test": {"accuracy": 0.5}}, "versions": {"dlpipe": "0.1.0"},
            "exports": {"keras": {"path": "keras/model.keras", "error": script}}}
    markdown = render_markdown(card)
    outside_code = re.sub(r"(`+)(?:(?!\1).)*?\1", "", markdown)  # what a renderer treats as Markdown/HTML
    assert "<" not in outside_code and "&lt;script&gt;" in markdown
    assert "Made by &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in markdown
    assert "target column ``label`<b>``" in markdown  # a code span: shown as written, never markup
    assert "0: `<script>alert(1)</script>`, 1: ```a`b``c```" in markdown
    assert "| x\\|&lt;script&gt;alert(1)&lt;/script&gt; | `x` |" in markdown
    assert "Source: `` `<iframe>` ``;" in markdown


@pytest.mark.slow
def test_model_card_of_text_inputs_lists_vocabularies():
    card = read(_runs.churn() / "export" / "model_card.json")
    plan = next(entry for entry in card["inputs"] if entry["name"] == "plan")
    assert plan["dtype"] == "string" and plan["vocabulary"] == ["basic", "plus", "pro"]
    assert plan["encoding"] == "one_hot"
    assert card["intended_use"] == "A test fixture for dlpipe's text inputs; not a model of real customers."
    markdown = (_runs.churn() / "export" / "model_card.md").read_text(encoding="utf-8")
    assert "| plan | `plan` | categorical | string | (1,) | lookup → one_hot | basic, plus, pro" in markdown


@pytest.mark.slow
def test_saved_model_cli_shows_serving_default_with_raw_input_names():
    text = saved_model_cli(_runs.churn() / "export" / "saved_model")
    block = text[text.index("signature_def['serving_default']:"):]
    for name, dtype in (("plan", "DT_STRING"), ("region", "DT_STRING"), ("tenure_months", "DT_FLOAT")):
        at = block.index(f"inputs['{name}'] tensor_info:")
        assert f"dtype: {dtype}" in block[at:at + 120]


@pytest.mark.slow
def test_template_saved_model_signature_takes_the_raw_columns():
    import tensorflow as tf

    serve = tf.saved_model.load(str(_runs.tabular() / "export" / "saved_model")).signatures["serving_default"]
    _, named = serve.structured_input_signature
    card = read(_runs.tabular() / "export" / "model_card.json")
    assert sorted(named) == sorted(entry["input"] for entry in card["inputs"])
    assert {spec.dtype for spec in named.values()} == {tf.float32}
    assert named["mean_radius"].shape.as_list() == [None, 1]


@pytest.mark.slow
def test_text_inputs_stay_text_in_saved_model_and_onnx():
    import onnxruntime

    root = _runs.churn()
    results = read(root / "export" / "verification.json")
    for key in ("keras", "saved_model", "onnx", "tflite/float32"):
        assert results[key]["passed"] and results[key]["max_abs_diff"] <= 1e-4, key
    session = onnxruntime.InferenceSession(str(root / "export" / "onnx" / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    types = {node.name: node.type for node in session.get_inputs()}
    assert types == {"plan": "tensor(string)", "region": "tensor(string)", "tenure_months": "tensor(float)"}
    # The model learned from the text: the rule's basic-plan churners and pro-plan stayers.
    assert read(root / "metrics.json")["test"]["accuracy"] >= 0.9


@pytest.mark.slow
def test_export_command_reexports_without_training():
    root = _runs.tabular()
    model_hash = hashlib.sha256((root / "model.keras").read_bytes()).hexdigest()
    before = read(root / "export" / "verification.json")
    onnx_file = root / "export" / "onnx" / "model.onnx"
    onnx_file.unlink()  # proves the file comes back
    stale = {**before, "onnx": {k: v for k, v in before["onnx"].items()
                                if k not in ("test_metrics", "bytes", "gzip_bytes", "latency")}}
    (root / "export" / "verification.json").write_text(json.dumps(stale))  # proves the scores come back
    result = CliRunner().invoke(main, ["export", str(root), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("onnx             verified     onnx/model.onnx  max abs diff ")
    after = read(root / "export" / "verification.json")
    assert sorted(after) == sorted(before)
    assert {k: v for k, v in after.items() if k != "onnx"} == {k: v for k, v in before.items() if k != "onnx"}
    assert after["onnx"]["passed"] and after["onnx"]["max_abs_diff"] <= 1e-4
    assert after["onnx"]["test_metrics"]["accuracy"] == pytest.approx(read(root / "metrics.json")["test"]["accuracy"])
    assert after["onnx"]["bytes"] == onnx_file.stat().st_size and after["onnx"]["latency"]["calls"] == 50
    assert onnx_file.is_file()
    assert hashlib.sha256((root / "model.keras").read_bytes()).hexdigest() == model_hash
    assert read(root / "export" / "model_card.json")["exports"] == after


@pytest.mark.slow
def test_out_of_tolerance_fails_the_stage_or_warns(tmp_path, capsys):
    import keras

    from dlpipe.data.prepare import prepare
    from dlpipe.errors import StageError
    from dlpipe.exporters.stage import export_model
    from dlpipe.spec import load_spec

    root = _runs.digits()
    spec = load_spec(root / "spec.yaml", ["export.formats=[tflite]", "export.tflite.quantization=[float16]",
                                          "export.tolerance={tflite/float16: {max_abs_diff: 1.0e-7}}"])
    data = prepare(spec, root, None)
    model = keras.saving.load_model(root / "model.keras")
    with pytest.raises(StageError) as failed:
        export_model(model, spec, data, tmp_path / "error")
    message = str(failed.value)
    assert message.startswith("export: tflite/float16: max abs diff ")
    assert message.endswith(f" exceeds 1e-07 (see {tmp_path / 'error' / 'verification.json'})")
    entry = read(tmp_path / "error" / "verification.json")["tflite/float16"]
    assert entry["passed"] is False and entry["max_abs_diff"] > 1e-7

    warn = spec.model_copy(update={"export": spec.export.model_copy(update={"verify": "warn"})})
    results = export_model(model, warn, data, tmp_path / "warn")
    assert results["tflite/float16"]["passed"] is False
    assert "[dlpipe] warning: export tflite/float16: max abs diff " in capsys.readouterr().err

    off = spec.model_copy(update={"export": spec.export.model_copy(update={"verify": "off"})})
    results = export_model(model, off, data, tmp_path / "off")
    assert results == {"tflite/float16": {"format": "tflite", "path": "tflite/model_float16.tflite",
                                          "quantization": "float16"}}


def test_export_command_refuses_what_it_cannot_do(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == f"error: {tmp_path}: not a trained dlpipe run: no spec.yaml\n"
    shutil.copy(_runs.ROOT / "specs" / "tabular-classification.yaml", tmp_path / "spec.yaml")
    (tmp_path / "model.keras").write_bytes(b"")
    result = runner.invoke(main, ["export", str(tmp_path), "--set", "training.epochs=3"])
    assert result.exit_code == 1
    assert result.output == "error: --set training.epochs=3: dlpipe export may change export.* keys only\n"
    result = runner.invoke(main, ["export", str(tmp_path), "--format", "onxx"])
    assert result.exit_code == 2 and "'onxx' is not one of 'keras', 'saved_model', 'tflite', 'onnx'" in result.output


def test_a_missing_extra_is_named_before_training(monkeypatch):
    import importlib.util

    from dlpipe.errors import StageError
    from dlpipe.exporters.stage import check_available

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "tf2onnx" else real(name))
    check_available(["keras", "saved_model", "tflite"])
    with pytest.raises(StageError) as failed:
        check_available(["keras", "onnx"])
    assert str(failed.value) == ("setup: export format onnx needs the onnx extra: pip install 'dlpipe[onnx]' "
                                 "(cannot import tf2onnx)")


def test_importing_the_cli_and_stage_does_not_import_tensorflow():
    code = ("import sys, dlpipe.cli, dlpipe.exporters.stage, dlpipe.prediction, dlpipe.spec.export; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'onnx', "
            "'onnxruntime', 'ai_edge_litert', 'tf2onnx')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
