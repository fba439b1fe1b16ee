"""`dlpipe validate --deep`: read the data, build the model without training, and show its
layers, output shapes and parameter count. Problems only a build can find (shapes that do
not fit) are located in the spec like any other validation problem."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from dlpipe import imports
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
            imports.check(spec, document)  # nothing is imported that the command line did not allow
            model = build(spec, document, Path(path).resolve().parent)
        except SpecError as err:
            problems.extend(err.problems)
            continue
        if echo is not None:
            echo(summary(model, str(path)))
    return problems


def activate_backend(paths: Sequence[str | Path], overrides: Sequence[str] = ()) -> None:
    """Import Keras on the backend of the first valid spec among `paths` (TensorFlow when none
    is valid), as `dlpipe run` would: a spec on `backend: jax` is built without TensorFlow.
    Keras takes one backend a process; a model's layers and shapes are the same on each, so
    the other specs are built on that one."""
    from dlpipe import backend
    from dlpipe.spec import load_document

    name = "tensorflow"
    for path in paths:
        try:
            name = load_document(path, overrides)[0].backend
        except SpecError:
            continue
        break
    if backend.current() is None:
        backend.activate(name)


def build(spec, document, base_dir: Path):
    """The model `dlpipe run` would train, built by the task's pipeline (hook `deep_build`) from
    the spec and the data's shapes, its weights left unallocated (Keras defers creating a
    variable's value in a stateless scope): a model too large for this machine is refused
    before it takes the memory."""
    import keras

    from dlpipe import tasks
    from dlpipe.spec import locate

    def located(path: tuple, message: str) -> SpecError:
        return SpecError([locate(document, path, message)])

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from dlpipe.spec.paths import resolved

    task = tasks.require(spec.task, "deep", spec.name)
    spec = resolved(spec, base_dir)  # as `dlpipe run` builds it: paths beyond the data (a from_run) too
    with keras.StatelessScope(initialize_variables=False):
        model = task.hook("deep_build")(spec, base_dir, located)
    problem = memory_problem(model, spec)
    if problem is not None:
        keras.utils.clear_session()  # forgets the deferred variables: nothing allocates them later
        raise located(*problem)
    return model


def memory_problem(model, spec) -> tuple[tuple, str] | None:
    """(spec path, message) when training the model would need more memory than this machine
    has for its parameters alone (weights, gradients, optimizer slots: limits.py); else None."""
    from dlpipe.limits import TRAINING_BYTES_PER_PARAMETER

    counts = [(sum(_size(v) for v in layer.weights), layer) for layer in _leaf_layers(model)]
    total = sum(_size(v) for v in model.weights)
    needed = total * TRAINING_BYTES_PER_PARAMETER
    memory = physical_memory()
    if memory is None or needed <= memory:
        return None
    largest, layer = max(counts, key=lambda pair: pair[0], default=(0, None))
    names = [node.name for node in getattr(spec.model, "nodes", [])]
    path = ("model", "nodes", names.index(layer.name)) if layer is not None and layer.name in names else ("model",)
    where = f"; the largest layer, {layer.name!r} ({type(layer).__name__}), holds {largest:,}" if layer else ""
    return path, (f"the model has {total:,} parameters: training needs about {needed / 1e9:,.1f} GB for them "
                  f"(weights, gradients and optimizer state in float32), more than this machine's "
                  f"{memory / 1e9:,.1f} GB{where}")


def physical_memory() -> int | None:
    """Bytes of memory this machine has, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


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
