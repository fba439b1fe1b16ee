"""Loss and metrics objects from the `training` section, and compiling a model with them
(its optimizer from optimizers.py)."""

from __future__ import annotations

import importlib

from dlpipe import registry, tasks
from dlpipe.tasks import Task
from dlpipe.training.optimizers import make_optimizer

# Labels are integer class indices; these losses expect one-hot rows, so they get a wrapper.
_ONE_HOT_LOSSES = ("categorical_crossentropy", "categorical_focal_crossentropy")
_BINARY_LOSSES = ("binary_crossentropy", "binary_focal_crossentropy")


def loss_name(task: Task, loss: str, n_classes: int | None, multi_label: bool = False) -> str:
    if loss != "auto":
        return loss
    if task.output != "classes":  # numbers out (an embedding's: the reconstruction error)
        return "mse"
    return "binary_crossentropy" if n_classes == 2 or multi_label else "sparse_categorical_crossentropy"


def check_loss(task: Task, loss: str, n_classes: int | None, located=None, multi_label: bool = False) -> None:
    """A classification loss must fit the output layer: one sigmoid unit for two classes
    (one per label when multi-label), a softmax over the classes otherwise. Only the data
    tells how many classes there are."""
    if task.output != "classes" or loss == "auto":
        return
    problem = None
    if multi_label and loss not in _BINARY_LOSSES:
        problem = (f"a multi-label target ends in one sigmoid unit per label; {loss} does not fit it: "
                   f"use auto, {' or '.join(_BINARY_LOSSES)}")
    elif multi_label:
        pass
    elif n_classes == 2 and loss not in _BINARY_LOSSES:
        problem = (f"the data has 2 classes, so the model ends in one sigmoid unit; {loss} does not fit it: "
                   f"use auto, {' or '.join(_BINARY_LOSSES)}")
    elif n_classes != 2 and loss in _BINARY_LOSSES:
        problem = (f"the data has {n_classes} classes, so the model ends in a softmax; {loss} does not fit it: "
                   f"use auto, sparse_categorical_crossentropy, {' or '.join(_ONE_HOT_LOSSES)}")
    if problem:
        if located is not None:
            raise located(("training", "loss"), problem)
        from dlpipe.errors import StageError

        raise StageError("build", f"training.loss: {problem}")


def make_loss(task: Task, loss: str, n_classes: int | None, multi_label: bool = False,
              reduction: str = "sum_over_batch_size"):
    name = loss_name(task, loss, n_classes, multi_label)
    inner = registry.load("loss", name)(reduction=reduction)
    if task.output == "classes" and name in _ONE_HOT_LOSSES and not multi_label:
        from dlpipe.training.losses import OneHotLabels

        return OneHotLabels(inner, n_classes, reduction=reduction)
    return inner


def compile_model(model, spec, n_classes: int | None, located=None) -> None:
    import keras

    from dlpipe.training.determinism import gpus, resolve_jit

    jit = resolve_jit(spec.training.jit_compile, gpus(), keras.backend.backend())
    task = tasks.get(spec.task)
    if task.loss_factory:  # the task's own loss (the detector's, on its maps; n_classes: the box classes)
        module, _, name = task.loss_factory.partition(":")
        loss = getattr(importlib.import_module(module), name)(spec, n_classes)
        model.compile(optimizer=make_optimizer(spec.training.optimizer), jit_compile=jit, loss=loss)
        return
    multi_label = spec.data.target is not None and spec.data.target.multi_label
    check_loss(task, spec.training.loss, n_classes, located, multi_label)
    metric = task.training_metric
    if metric == "accuracy":
        metric = keras.metrics.BinaryAccuracy(name="accuracy") if n_classes == 2 or multi_label else \
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    loss = make_loss(task, spec.training.loss, n_classes, multi_label)
    if metric == "reconstruction_mse":  # an autoencoder's: per example over all its values (a conv's image)
        from dlpipe.training.losses import ReconstructionError, reconstruction_error

        loss = ReconstructionError()
        metric = keras.metrics.MeanMetricWrapper(reconstruction_error, name="reconstruction_mse")  # the loss
    if spec.distillation is not None:  # targets carry the teacher's outputs after the labels
        from dlpipe.training.distillation import Distillation, HardTargets

        binary = n_classes == 2 or multi_label
        kind = ("sigmoid" if binary else "softmax") if task.output == "classes" else "values"
        loss = Distillation(loss, kind, spec.distillation.temperature, spec.distillation.soft_loss_weight)
        metric = HardTargets(task.training_metric, binary=binary)
    model.compile(optimizer=make_optimizer(spec.training.optimizer), loss=loss, metrics=[metric], jit_compile=jit)
