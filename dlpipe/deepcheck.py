"""`dlpipe validate --deep`: read the data, build the model without training, and show its
layers, output shapes and parameter count. Problems only a build can find (shapes that do
not fit) are located in the spec like any other validation problem."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from dlpipe.errors import Problem, SpecError


def deep_check(paths: Sequence[str | Path], overrides: Sequence[str] = (),
               echo: Callable[[str], None] | None = None) -> list[Problem]:
    """Build the model of every spec that passes plain validation (the others are already
    reported); `echo` receives each model's summary. Returns the build problems."""
    from dlpipe.spec import load_document

    problems: list[Problem] = []
    for path in paths:
        try:
            spec, document = load_document(path, overrides)
        except SpecError:
            continue
        try:
            model = build(spec, document, Path(path).resolve().parent)
        except SpecError as err:
            problems.extend(err.problems)
            continue
        if echo is not None:
            echo(summary(model, str(path)))
    return problems


def build(spec, document, base_dir: Path):
    """The model `dlpipe run` would train, built from the spec and the data's shapes by the
    task's pipeline (hook `deep_build`)."""
    from dlpipe import tasks
    from dlpipe.spec import locate

    def located(path: tuple, message: str) -> SpecError:
        return SpecError([locate(document, path, message)])

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    task = tasks.require(spec.task, "deep", spec.name)
    return task.hook("deep_build")(spec, base_dir, located)


def summary(model, title: str) -> str:
    """One line per layer (name, class, output shape, parameters), then the model's outputs
    and its parameter count, which is Keras's `count_params()`."""
    rows = [("layer", "type", "output shape", "parameters")]
    for layer in model.layers:
        rows.append((layer.name, type(layer).__name__, _shape(layer), f"{layer.count_params():,}"))
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    lines = [f"{title}: model {model.name}"]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) if c < 3 else cell.rjust(w)
                                      for c, (cell, w) in enumerate(zip(row, widths))))
    trainable = sum(_size(v) for v in model.trainable_weights)
    total = int(model.count_params())
    outputs = ", ".join(_format(o.shape) for o in model.outputs)
    lines.append(f"  output shape: {outputs}")
    lines.append(f"  parameters: {total} (trainable {trainable}, non-trainable {total - trainable})")
    return "\n".join(lines)


def _size(variable) -> int:
    size = 1
    for d in variable.shape:
        size *= int(d)
    return size


def _shape(layer) -> str:
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return "?"
    if isinstance(output, dict):  # a detector's decoding: boxes, scores, classes
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return ", ".join(_format(o.shape) for o in output)
    return _format(output.shape)


def _format(shape) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"
