"""Spec + prepared data → one Keras model: inputs → normalization → architecture → head."""

from __future__ import annotations

import keras

from dlpipe import registry
from dlpipe.architectures import heads
from dlpipe.architectures.inputs import build_inputs


def build_model(spec, data) -> keras.Model:
    inputs, encoded = build_inputs(data.features)
    body = registry.load("architecture", spec.model.type)(spec.model, encoded)
    n_classes = len(data.class_names) if data.class_names else None
    outputs = heads.attach(body, spec.model.head, spec.task, n_classes)
    return keras.Model(inputs, outputs, name=spec.name.replace("-", "_").replace(".", "_"))
