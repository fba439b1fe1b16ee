"""Task regression: learn one or several numbers from the features.

Pipeline: pipelines/supervised.py. The target is read as numbers: labeling modes do not apply.
"""

from __future__ import annotations

from dlpipe.tasks.base import Task
from dlpipe.tasks.common import (ALL_COMMANDS, EVERY_TASK, SUPERVISED_DATA, SUPERVISED_EXPORT, SUPERVISED_TRAINING,
                                 VALUE_LOSSES)

TASK = Task(
    name="regression",
    pipeline="supervised",
    summary="learn numbers from the features; exports a model giving them",
    target="values",
    output="values",
    default_metrics=("mae", "mse", "rmse", "r2"),
    losses=VALUE_LOSSES,
    training_metric="mae",
    objective="mse",
    commands=ALL_COMMANDS | {"explain"},
    honours=(*EVERY_TASK, "backend", *SUPERVISED_DATA, "data.target.name", "data.streaming", "prepare", "model",
             *SUPERVISED_TRAINING, "evaluation.metrics", "evaluation.splits", "evaluation.baselines", "evaluation.explain",
             "compression", *SUPERVISED_EXPORT, "tuning", "distillation"),
    refusals={"data.target.class_names": "task regression learns numbers, not classes: class_names does not apply",
              "data.target.multi_label": "task regression learns numbers: multi_label needs task classification",
              "training.class_weight": "class_weight weighs classes; task regression has none "
                                       "(use training.sample_weight)"},
)
