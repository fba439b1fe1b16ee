"""A model with several outputs (task multi_output): its adapter to the one export loop
(exporters/stage.py). Every format must give every output, by name; each is compared with
the trained model's on the first `export.samples` test examples (`compare_outputs`: the worst
max abs diff of any output, and for classification outputs the share of predicted classes
that agree), against `export.tolerance`; then scored on the test split from that runtime
under metrics.json's names (`test_metrics`: `<output>/<metric>`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe.exporters.stage import Subject, data_summary, export, held_out, representative
from dlpipe.tasks.multi_output import gives_classes


def interface(spec, data, model) -> dict:
    """The card's and `dlpipe predict`'s view: the inputs as for any tabular model, and per
    output its kind, column, units, activation and class names (`output_names`: the spec's
    order, which `dlpipe predict`'s column groups follow)."""
    from dlpipe.exporters.model_card import describe_inputs

    outputs = {}
    for target in spec.data.targets:
        names = data.extra["outputs"][target.name]["class_names"]
        units = int(model.get_layer(target.name).output.shape[-1])
        if not gives_classes(target):
            entry = {"units": 1, "activation": "linear", "meaning": f"the predicted value of {target.column!r}"}
        elif units == 1:
            entry = {"units": 1, "activation": "sigmoid",
                     "meaning": f"the probability of class {names[1]!r} (1 minus it: {names[0]!r})"}
        else:
            entry = {"units": units, "activation": "softmax", "meaning": "one probability per class, in class_names order"}
        outputs[target.name] = {"kind": target.kind, "column": target.column, **entry, "class_names": names}
    return {"name": spec.name, "task": spec.task, "target": None, "inputs": describe_inputs(data),
            "output": {"meaning": f"one output per target, by name: {', '.join(outputs)}"},
            "outputs": outputs, "output_names": list(outputs), "class_names": None}


def compare_outputs(kinds: dict[str, bool]):
    """(reference, exported) → numbers over every output; `kinds`: output name → gives classes."""
    from dlpipe.exporters.verify import COUNTED, compare_values

    def compare(reference: dict, exported) -> dict:
        missing = sorted(set(kinds) - set(exported)) if isinstance(exported, dict) else sorted(kinds)
        if missing:
            got = sorted(exported) if isinstance(exported, dict) else "one array"
            return {"max_abs_diff": float("inf"), "mean_abs_diff": float("inf"), "agreement": 0.0, COUNTED: 1,
                    "missing": f"expected outputs {', '.join(kinds)}, got {got}"}
        found = {name: compare_values(reference[name], exported[name], classes) for name, classes in kinds.items()}
        result = {"max_abs_diff": max(r["max_abs_diff"] for r in found.values()),
                  "mean_abs_diff": float(np.mean([r["mean_abs_diff"] for r in found.values()])),
                  "outputs": {name: {k: v for k, v in r.items() if k != COUNTED} for name, r in found.items()}}
        classified = [r for r in found.values() if "agreement" in r]
        if classified:
            result["agreement"] = float(min(r["agreement"] for r in classified))
            result[COUNTED] = classified[0][COUNTED]
        return result

    return compare


def score(spec, data):
    """Every output's metrics on the test split from an export's own runtime, under the names
    metrics.json uses (`<output>/<metric>`: metrics/outputs.py), or None without a test split."""
    from dlpipe.exporters.scoring import run_split
    from dlpipe.metrics.outputs import score_outputs

    test = data.splits.get("test")
    if test is None or not len(test):
        return None
    return lambda predict: score_outputs(spec, data, test.y, run_split(predict, test))


def subject(model, spec, data) -> Subject:
    kinds = {target.name: gives_classes(target) for target in spec.data.targets}
    return Subject(model=model, inputs=held_out(spec, data), compare=compare_outputs(kinds),
                   interface=interface(spec, data, model), data=data_summary(data),
                   representative=representative(spec, data), score=score(spec, data))


def export_outputs(model, spec, data, out: Path, *, formats=None, metrics: dict | None = None,
                   keras_file: Path | None = None) -> dict:
    """Every format of `spec.export.formats` (or `formats`) written, reloaded, every output
    compared: export/verification.json and the model card."""
    return export(subject(model, spec, data), spec, out, formats=formats, metrics=metrics, keras_file=keras_file)
