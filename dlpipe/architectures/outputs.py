"""A model with several outputs (task multi_output): inputs → normalization → the spec's
architecture (the shared body) → one head per entry of `data.targets`, each its own dense
layers (`model.head`, named `<output>_dense_<i>`) and output layer named after the output.
The model returns a dict {output name: array}; a classification output is a softmax over
its classes (one sigmoid for two), a regression output one linear unit scaled back to the
target's units by the training split's mean and standard deviation."""

from __future__ import annotations

import keras
import numpy as np

from dlpipe import registry
from dlpipe.architectures import heads
from dlpipe.architectures.inputs import adapt_text, build_inputs
from dlpipe.tasks.multi_output import gives_classes


def build_multi_output(spec, data) -> keras.Model:
    for feature in data.features:
        if feature.type == "text" and feature.vocabulary is None:  # from the training split only
            adapt_text(feature, data.splits["train"].x[feature.input_name])
    inputs, encoded = build_inputs(data.features)
    body = registry.load("architecture", spec.model.type)(spec.model, encoded)
    x = heads.combine(body, encoded, getattr(spec.model, "embedding_dim", 16))
    if len(x.shape) != 2:
        x = keras.layers.Flatten(name="body_flat")(x)
    head, described = spec.model.head, data.extra["outputs"]
    outputs = {}
    for output in spec.data.targets:
        h = x
        for i, units in enumerate(head.units):
            h = keras.layers.Dense(units, activation=head.activation, name=f"{output.name}_dense_{i}")(h)
            if head.dropout:
                h = keras.layers.Dropout(head.dropout, name=f"{output.name}_dropout_{i}")(h)
        if not head.units and head.dropout:
            h = keras.layers.Dropout(head.dropout, name=f"{output.name}_dropout")(h)
        names = described[output.name]["class_names"]
        units, activation = heads.output_units(gives_classes(output), len(names) if names else None)
        # float32 whatever the compute precision: losses and exports expect it.
        if gives_classes(output):
            outputs[output.name] = keras.layers.Dense(units, activation=activation, dtype="float32",
                                                      name=output.name)(h)
            continue
        # A number in its own units: the unit learns a standardized value, which the last
        # layer scales by the training split's standard deviation and shifts by its mean, so
        # a target far from 0 (alcohol near 13 %) starts out near its mean, not at 0.
        values = np.asarray(data.splits["train"].y[output.name], dtype=np.float64)
        std = float(values.std()) or 1.0
        z = keras.layers.Dense(units, activation=activation, dtype="float32", name=f"{output.name}_standardized")(h)
        outputs[output.name] = keras.layers.Rescaling(std, offset=float(values.mean()), dtype="float32",
                                                      name=output.name)(z)
    return keras.Model(inputs, outputs, name=spec.name.replace("-", "_").replace(".", "_"))
