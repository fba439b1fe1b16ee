"""The `export` spec section: formats, TFLite modes, tolerances, intended use (no TensorFlow)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dlpipe.spec import Spec, check_files, load_spec
from dlpipe.spec.export import DEFAULT_TOLERANCES, QUANTIZATIONS, Export, Tolerance, export_keys

SPECS = Path(__file__).resolve().parent.parent / "specs"

HEAD = """\
version: 1
name: t
task: {task}
data:
  source: {{type: builtin, name: {dataset}}}
  target: {{name: {target}}}
model: {{type: mlp}}
"""


def problems(tmp_path: Path, export: str, task: str = "classification") -> list[str]:
    dataset, target = ("iris", "target") if task == "classification" else ("diabetes", "target")
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD.format(task=task, dataset=dataset, target=target) + textwrap.dedent(export))
    return [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in check_files([path])]


def test_defaults_keep_the_two_formats_every_install_has():
    export = Export()
    assert export.formats == ["keras", "saved_model"]
    assert export.verify == "error"
    assert export.samples == 256
    assert export.tflite.quantization == ["float32"]
    assert export.tflite.representative_samples == 200
    assert export.intended_use == ""


def test_every_format_and_mode_has_a_default_tolerance():
    keys = export_keys(["keras", "saved_model", "onnx", "tflite"], QUANTIZATIONS)
    assert set(keys) == set(DEFAULT_TOLERANCES)
    assert keys == ["keras", "saved_model", "onnx", "tflite/float32", "tflite/float16", "tflite/dynamic",
                    "tflite/int8"]
    for key in ("keras", "saved_model", "onnx", "tflite/float32"):
        assert DEFAULT_TOLERANCES[key] == Tolerance(max_abs_diff=1e-4)
    assert DEFAULT_TOLERANCES["tflite/int8"] == Tolerance(agreement=0.97)


def test_tolerance_resolution_mode_then_format_then_default():
    export = Export.model_validate({"formats": ["tflite", "onnx"],
                                    "tflite": {"quantization": ["float32", "int8"]},
                                    "tolerance": {"tflite": {"max_abs_diff": 0.5},
                                                  "tflite/int8": {"agreement": 0.9}}})
    assert export.keys() == ["tflite/float32", "tflite/int8", "onnx"]
    assert export.tolerance_for("tflite/int8") == Tolerance(agreement=0.9)
    assert export.tolerance_for("tflite/float32") == Tolerance(max_abs_diff=0.5)
    assert export.tolerance_for("onnx") == Tolerance(max_abs_diff=1e-4)


def test_templates_round_trip_with_export_section():
    for path in sorted(SPECS.glob("*.yaml")):
        spec = load_spec(path)
        assert Spec.model_validate(spec.model_dump()) == spec


def test_a_full_export_section_is_valid(tmp_path):
    assert problems(tmp_path, """\
        export:
          formats: [keras, saved_model, tflite, onnx]
          verify: warn
          tflite: {quantization: [float32, float16, dynamic, int8], representative_samples: 50}
          tolerance:
            onnx: {max_abs_diff: 1.0e-5}
            tflite/int8: {agreement: 0.95, max_abs_diff: 0.2}
          intended_use: Triage support only; not a diagnosis.
        """) == []


def test_unknown_names_get_did_you_mean(tmp_path):
    assert problems(tmp_path, """\
        export:
          formats: [keras, onxx]
          tflite: {quantization: [int4]}
          tolerance: {tflite/int9: {agreement: 0.9}}
        """) == [
        "9:20: export.formats[1]: unknown export format 'onxx'; did you mean 'onnx'?",
        "10:27: export.tflite.quantization[0]: expected 'float32', 'float16', 'dynamic' or 'int8', got 'int4'; "
        "did you mean 'int8'?",
        "11:28: export.tolerance.tflite/int9: unknown export format 'tflite/int9'; did you mean 'tflite/int8'?",
    ]


def test_duplicates_and_empty_tolerances_are_errors(tmp_path):
    assert problems(tmp_path, """\
        export:
          formats: [keras, keras]
          tflite: {quantization: [int8, int8]}
          tolerance: {onnx: {}}
        """) == [
        "9:20: export.formats[1]: 'keras' is listed twice",
        "10:33: export.tflite.quantization[1]: 'int8' is listed twice",
        "11:21: export.tolerance.onnx: give max_abs_diff, agreement or both",
    ]


def test_regression_int8_needs_an_explicit_max_abs_diff(tmp_path):
    found = problems(tmp_path, """\
        export:
          formats: [tflite]
          tflite: {quantization: [float32, int8]}
        """, task="regression")
    assert found == ["10:26: export.tflite.quantization: tflite/int8 is judged by class agreement by default, "
                     "which a regression model has not; set export.tolerance: {tflite/int8: {max_abs_diff: ...}}"]
    assert problems(tmp_path, """\
        export:
          formats: [tflite]
          tflite: {quantization: [float32, int8]}
          tolerance: {tflite/int8: {max_abs_diff: 5.0}}
        """, task="regression") == []


def test_agreement_needs_a_classifier(tmp_path):
    assert problems(tmp_path, """\
        export:
          tolerance: {keras: {agreement: 0.9}}
        """, task="regression") == ["9:34: export.tolerance.keras.agreement: agreement compares classes; "
                                    "a regression model gives none: use max_abs_diff"]


def test_bounds(tmp_path):
    assert problems(tmp_path, """\
        export:
          samples: 0
          tolerance: {keras: {agreement: 1.5, max_abs_diff: -1}}
        """) == [
        "9:12: export.samples: expected a value > 0, got 0",
        "10:34: export.tolerance.keras.agreement: expected a value <= 1, got 1.5",
        "10:53: export.tolerance.keras.max_abs_diff: expected a value > 0, got -1",
    ]


def test_schema_lists_export_formats_and_modes():
    from dlpipe.spec import json_schema

    schema = json_schema()
    export = schema["$defs"]["Export"]["properties"]
    assert export["formats"]["items"]["enum"] == ["keras", "saved_model", "tflite", "onnx"]
    assert "intended_use" in export and "tflite" in export
    assert schema["$defs"]["TFLite"]["properties"]["quantization"]["items"]["enum"] == list(QUANTIZATIONS)


@pytest.mark.parametrize("name", ["tflite", "onnx"])
def test_registered_formats_resolve(name):
    from dlpipe import registry

    export_format = registry.load("exporter", name)
    assert export_format.name == name
    assert registry.entry("exporter", name).extra == name
