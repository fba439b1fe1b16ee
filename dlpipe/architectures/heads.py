"""Output heads: the last layers, chosen by the task and the number of classes."""

from __future__ import annotations

import keras

from dlpipe.spec.model import Head


def output_units(task: str, n_classes: int | None) -> tuple[int, str]:
    """(units, activation) of the output layer."""
    if task == "regression":
        return 1, "linear"
    return (1, "sigmoid") if n_classes == 2 else (n_classes, "softmax")


def attach(x: keras.KerasTensor, head: Head, task: str, n_classes: int | None) -> keras.KerasTensor:
    for i, units in enumerate(head.units):
        x = keras.layers.Dense(units, activation=head.activation, name=f"head_dense_{i}")(x)
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{i}")(x)
    if not head.units and head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    units, activation = output_units(task, n_classes)
    # float32 output whatever the compute precision: losses and exports expect it.
    return keras.layers.Dense(units, activation=activation, dtype="float32", name="output")(x)
