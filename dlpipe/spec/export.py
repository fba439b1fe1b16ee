"""The `export` section: formats to write, how strictly to verify each one, and what the
model card says the model is for."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from dlpipe import registry
from dlpipe.errors import did_you_mean
from dlpipe.spec.base import Name, PositiveFloat, PositiveInt, StrictModel, unknown_name

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
QUANTIZED = ("dynamic", "int8")
"""Modes whose weights are integers: judged by class agreement, not by absolute difference."""

Quantization = Literal["float32", "float16", "dynamic", "int8"]


class TFLite(StrictModel):
    """TensorFlow Lite (LiteRT) files, one per quantization mode, each verified on its own."""

    quantization: Annotated[list[Quantization], Field(min_length=1)] = ["float32"]
    """float32: the model as trained. float16: weights stored as float16 (half the size).
    dynamic: weights stored as int8, computed in float. int8: weights and activations int8,
    calibrated on `representative_samples` training examples (inputs and outputs stay
    float32). Writes export/tflite/model_<mode>.tflite for each."""
    representative_samples: Annotated[PositiveInt, Field(le=10_000)] = 200
    """Training-split examples (seeded draw) that calibrate int8 activation ranges."""


class Tolerance(StrictModel):
    """When an export counts as computing what the trained model computes. Every bound
    given must hold; an entry replaces the default for its key as a whole."""

    max_abs_diff: PositiveFloat | None = None
    """Largest absolute difference allowed between an output of the export and the model."""
    agreement: Annotated[float, Field(gt=0, le=1)] | None = None
    """Smallest fraction of examples on which the export predicts the model's class
    (classifiers only)."""


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    key: Tolerance(**bound) for name in registry.names("exporter")
    for key, bound in registry.entry("exporter", name).tolerance.items()
}
"""Per artifact key, from each export format's registry entry."""

OUTPUT_TOLERANCES: dict[str, dict[str, Tolerance]] = {}
"""Per kind of model output (a task's `output`), the defaults that replace DEFAULT_TOLERANCES
for it (a detector's boxes): each export format's registry entry's `output_tolerance`."""
for _name in registry.names("exporter"):
    for _kind, _bounds in registry.entry("exporter", _name).output_tolerance.items():
        OUTPUT_TOLERANCES.setdefault(_kind, {}).update({key: Tolerance(**bound) for key, bound in _bounds.items()})


def export_keys(formats, quantization) -> list[str]:
    """The entries of verification.json: one per format, one per TFLite mode."""
    keys = []
    for name in formats:
        keys += [f"tflite/{mode}" for mode in quantization] if name == "tflite" else [name]
    return keys


def _check_tolerance_key(key: str) -> str:
    known = [*registry.names("exporter"), *(f"tflite/{mode}" for mode in QUANTIZATIONS)]
    if key not in known:
        hint = did_you_mean(key, known) or f"; choose from {', '.join(known)}"
        raise unknown_name("export format", key, hint)
    return key


ToleranceKey = Annotated[str, AfterValidator(_check_tolerance_key),
                         WithJsonSchema({"type": "string", "description": "a format, or tflite/<mode>"})]


class Export(StrictModel):
    formats: list[Name("exporter", "export format")] = ["keras", "saved_model"]
    """Each format is loaded back with its own runtime and compared with the trained model:
    keras (Keras), saved_model (tf.saved_model), tflite (LiteRT; extra `tflite`), onnx
    (onnxruntime; extra `onnx`)."""
    verify: Literal["error", "warn", "off"] = "error"
    """What an export outside its tolerance does: fail the run, warn, or skip checking."""
    tolerance: dict[ToleranceKey, Tolerance] = {}
    """Per format (`onnx`), per TFLite mode (`tflite/int8`) or for every TFLite mode
    (`tflite`). Defaults: max_abs_diff 1e-4 for keras, saved_model, onnx and tflite/float32;
    1e-2 for tflite/float16; agreement 0.97 for tflite/dynamic and tflite/int8
    (a regression model has no classes: give those a max_abs_diff). A detector's boxes and
    scores: max_abs_diff 1e-5 (keras) and 1e-4 (saved_model), and agreement 1.0 (the class
    of every kept detection)."""
    samples: Annotated[PositiveInt, Field(le=100_000)] = 256
    """Held-out examples used for the comparison: the first of the test split (all of them
    when fewer); a generator's, this many seeded latent vectors."""
    tflite: TFLite = TFLite()
    """TensorFlow Lite options, used when `formats` lists tflite."""
    latency_calls: Annotated[int, Field(ge=0, le=10_000)] = 50
    """Single-example calls timed per export with its own runtime (after two untimed ones),
    for export/verification.json's latency median and p90; 0 measures none. Each export is
    also scored on the whole test split with the spec's metrics, and its bytes and gzip
    bytes are recorded (skipped with `verify: off`, which runs no export)."""
    intended_use: str = ""
    """What the model is for, and what it is not for: the model card's first section."""

    def keys(self, formats=None) -> list[str]:
        return export_keys(self.formats if formats is None else formats, self.tflite.quantization)

    def tolerance_for(self, key: str, output: str | None = None) -> Tolerance:
        """The spec's entry for `key`, else for its format, else the default for a model
        whose output is `output` (a task's `output` fact), else the default."""
        fmt = key.split("/")[0]
        return (self.tolerance.get(key) or self.tolerance.get(fmt)
                or OUTPUT_TOLERANCES.get(output, {}).get(key) or DEFAULT_TOLERANCES[key])


def tolerance_problem(export: Export, key: str, task) -> tuple[tuple, str] | None:
    """(spec path, message) when the tolerance for `key` cannot judge a model of `task` (a
    dlpipe.tasks.Task: agreement compares classes, which only some outputs carry)."""
    tolerance = export.tolerance_for(key, task.output)
    if task.has_classes or tolerance.agreement is None:
        return None
    given = key if key in export.tolerance else key.split("/")[0]
    if given in export.tolerance:
        return (("export", "tolerance", given, "agreement"),
                f"agreement compares classes; a {task.name} model gives none: use max_abs_diff")
    return (("export", "tflite", "quantization"),
            f"{key} is judged by class agreement by default, which a {task.name} model has not; "
            f"set export.tolerance: {{{key}: {{max_abs_diff: ...}}}}")
