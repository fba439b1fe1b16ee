"""Task classification: learn a class (or several, or one per step) from the features.

Pipeline: pipelines/supervised.py. Every labeling mode of data.target applies.
"""

from __future__ import annotations

from dlpipe.tasks.base import Task
from dlpipe.tasks.common import (ALL_COMMANDS, CLASS_LOSSES, EVERY_TASK, SUPERVISED_DATA, SUPERVISED_EXPORT,
                                 SUPERVISED_TRAINING)

TASK = Task(
    name="classification",
    pipeline="supervised",
    summary="learn a class from the features; exports a model giving class probabilities",
    target="classes",
    output="classes",
    default_metrics=("accuracy", "f1_macro"),
    losses=CLASS_LOSSES,
    training_metric="accuracy",
    objective="accuracy",
    commands=ALL_COMMANDS | {"explain"},
    honours=(*EVERY_TASK, "backend", *SUPERVISED_DATA, "data.target", "data.streaming", "prepare", "model",
             *SUPERVISED_TRAINING, "training.class_weight", "evaluation.metrics", "evaluation.splits", "evaluation.baselines",
             "evaluation.explain", "compression", *SUPERVISED_EXPORT, "tuning", "distillation"),
)
