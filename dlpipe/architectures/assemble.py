"""Spec + prepared data → one Keras model: inputs → normalization → architecture →
combiner → head. A spec that cannot be built becomes a located SpecError."""

from __future__ import annotations

import keras

from dlpipe import registry, tasks
from dlpipe.architectures import BuildProblem, heads
from dlpipe.architectures.inputs import adapt_text, build_inputs
from dlpipe.errors import Problem, SpecError


def build_model(spec, data, located=None) -> keras.Model:
    """`located(path, message)` → SpecError pointing at the spec's line (Context.located);
    without it the error names the spec path only."""
    return build_with(_build, spec, data, located)


def build_with(build, spec, data, located=None) -> keras.Model:
    """`build(spec, data)`, its BuildProblem turned into a located SpecError."""
    try:
        return build(spec, data)
    except BuildProblem as problem:
        if located is None:
            from dlpipe.spec.loader import format_path

            raise SpecError([Problem("spec", 0, 0, format_path(problem.path), problem.message)]) from problem
        raise located(problem.path, problem.message) from problem


def _build(spec, data) -> keras.Model:
    for feature in data.features:
        if feature.type == "text" and feature.vocabulary is None:  # from the training split only
            adapt_text(feature, data.splits["train"].x[feature.input_name])
    inputs, encoded = build_inputs(data.features)
    body = registry.load("architecture", spec.model.type)(spec.model, encoded)
    x = heads.combine(body, encoded, getattr(spec.model, "embedding_dim", 16))
    n_classes = len(data.class_names) if data.class_names else None
    target_shape = tuple(int(d) for d in data.splits["train"].y.shape[1:])
    task = tasks.get(spec.task)
    outputs = heads.attach(x, spec.model.head, task.output == "classes", n_classes, target_shape,
                           multi_label=spec.data.target.multi_label)
    if task.horizon:
        outputs = _from_last_value(outputs, inputs, data)
    return keras.Model(inputs, outputs, name=spec.name.replace("-", "_").replace(".", "_"))


def _from_last_value(outputs, inputs, data) -> keras.KerasTensor:
    """A forecast = the last observed value + a learned change, in the target's units: the
    network starts out as the naive forecast and only learns what differs from it, on a
    normalized scale (the training split's standard deviation of the target)."""
    from dlpipe.architectures.layers import LastValue
    from dlpipe.data.windows import WINDOW_INPUT

    horizon = int(outputs.shape[-1])
    change = keras.layers.Rescaling(data.extra.get("target_scale", 1.0), name="change")(outputs)
    last = LastValue(horizon, name="last_value")(inputs[WINDOW_INPUT])
    return keras.layers.Add(name="forecast", dtype="float32")([last, change])
