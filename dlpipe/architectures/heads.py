"""Output heads: the combiner (side features joined to the architecture's output), the
head's dense layers, and the output layer, chosen by the task and the target's shape.

    target per example      architecture output     output layer
    one class of 2          a vector                1 sigmoid
    one class of K > 2      a vector                K softmax
    K indicators (multi)    a vector                K sigmoid
    one class per step      a vector per step       per step: 1 sigmoid or K softmax
    a number / K numbers    a vector                1 / K linear
    a number per step       a vector per step       per step: 1 linear
"""

from __future__ import annotations

import math

import keras

from dlpipe.architectures import BuildProblem
from dlpipe.architectures.inputs import Encoded, flat_features
from dlpipe.spec.model import Head

def output_units(classes: bool, n_classes: int | None, multi_label: bool = False) -> tuple[int, str]:
    """(units, activation) of the output layer, per example or per step; `classes`: the task's
    output is classes (dlpipe/tasks/), else numbers (linear units)."""
    if not classes:
        return 1, "linear"
    if multi_label:
        return n_classes, "sigmoid"
    return (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")


def combine(x: keras.KerasTensor, encoded: Encoded, embedding_dim: int = 16) -> keras.KerasTensor:
    """Join the features the architecture did not read to its output (per step, repeated,
    when the output has steps)."""
    side = flat_features(encoded, encoded.rest(), embedding_dim, name="side_features")
    if side is None:
        return x
    encoded.take()
    if len(x.shape) == 3:
        side = keras.layers.RepeatVector(x.shape[1], name="side_features_per_step")(side)
    elif len(x.shape) != 2:
        x = keras.layers.Flatten(name="body_flat")(x)
    return keras.layers.Concatenate(name="combined")([x, side])


def attach(x: keras.KerasTensor, head: Head, classes: bool, n_classes: int | None,
           target_shape: tuple[int, ...] = (), multi_label: bool = False) -> keras.KerasTensor:
    per_step = len(x.shape) == 3
    if len(x.shape) > 3 or (len(x.shape) == 3 and not per_step):
        x = keras.layers.Flatten(name="body_flat")(x)
    _check_target(x, classes, target_shape, multi_label)
    for i, units in enumerate(head.units):
        x = keras.layers.Dense(units, activation=head.activation, name=f"head_dense_{i}")(x)
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{i}")(x)
    if not head.units and head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    units, activation = output_units(classes, n_classes, multi_label)
    if not classes:
        # K numbers per example, or (steps × C) numbers per step.
        units = math.prod(target_shape[1:] if per_step else target_shape) or 1
    # float32 output whatever the compute precision: losses and exports expect it.
    x = keras.layers.Dense(units, activation=activation, dtype="float32", name="output")(x)
    if per_step and units == 1:  # one value per step: steps, not steps × 1, like the target
        x = keras.layers.Reshape((x.shape[1],), dtype="float32", name="output_steps")(x)
    elif not classes and len(target_shape) > 1 and not per_step:
        x = keras.layers.Reshape(target_shape, dtype="float32", name="output_shape")(x)
    return x


def _check_target(x, classes: bool, target_shape: tuple[int, ...], multi_label: bool) -> None:
    per_step = len(x.shape) == 3
    where = ("model", "return_sequences")
    if per_step:
        steps = x.shape[1]
        if not target_shape or target_shape[0] != steps:
            held = f"{target_shape[0]} values" if target_shape else "one value"
            raise BuildProblem(where, f"the model gives an output for each of {steps} steps, but the target holds "
                               f"{held} per example; per-step outputs need one target value per step")
        if classes and len(target_shape) != 1:
            raise BuildProblem(("data", "target"), f"per-step classes need one label per step, the target holds "
                               f"{target_shape} values per example")
    elif classes and not multi_label and target_shape:
        raise BuildProblem(("data", "target"), f"the target holds {target_shape} labels per example; set "
                           "data.target.multi_label, or model.return_sequences for a label per step")
