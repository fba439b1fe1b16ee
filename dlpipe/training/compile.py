"""Optimizer, loss and metrics objects from the `training` section."""

from __future__ import annotations

from dlpipe import registry
from dlpipe.spec.checks import TRAINING_METRIC


def make_optimizer(spec):
    options = spec.model_dump(exclude={"type"}, exclude_none=True)
    return registry.load("optimizer", spec.type)(**options)


def loss_name(task: str, loss: str, n_classes: int | None, multi_label: bool = False) -> str:
    if loss != "auto":
        return loss
    if task == "regression":
        return "mse"
    return "binary_crossentropy" if n_classes == 2 or multi_label else "sparse_categorical_crossentropy"


def make_loss(task: str, loss: str, n_classes: int | None, multi_label: bool = False):
    name = loss_name(task, loss, n_classes, multi_label)
    return registry.load("loss", name)()


def compile_model(model, spec, n_classes: int | None) -> None:
    import keras

    metric = TRAINING_METRIC[spec.task]
    multi_label = spec.data.target.multi_label
    if metric == "accuracy":
        metric = keras.metrics.BinaryAccuracy(name="accuracy") if n_classes == 2 or multi_label else \
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=make_optimizer(spec.training.optimizer),
                  loss=make_loss(spec.task, spec.training.loss, n_classes, multi_label),
                  metrics=[metric], jit_compile=False)
