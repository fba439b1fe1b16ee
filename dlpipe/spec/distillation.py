"""The `distillation` section: train the spec's model (the student) to match an earlier
model (the teacher) as well as the labels — knowledge distillation (Hinton, Vinyals and
Dean, 2015)."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated

from pydantic import Field

from dlpipe.spec.base import StrictModel
from dlpipe.spec.paths import AnyPath


class Distillation(StrictModel):
    """The student (the spec's `model`, any architecture) learns from the labels (the hard
    loss, `training.loss`) and from the teacher's outputs on the same examples (the soft
    loss). The teacher's outputs are computed once per training example and kept with the
    prepared data (`cache/teacher.npz`); with `prepare.augmentation` every batch differs, so
    the teacher then runs on each augmented batch."""

    teacher: AnyPath
    """An earlier run directory (its model.keras and class names) or a .keras file; a relative
    path is resolved against the spec's folder. It must give what the task needs: a
    classifier's probabilities over the same classes (matched by name for a run directory,
    by position for a file), a regression model's values; it takes inputs named as the
    student's."""
    temperature: Annotated[float, Field(gt=0, le=100)] = 4.0
    """Classification: both models' class probabilities are softened as softmax(logit / T)
    before they are compared (the soft loss is the Kullback-Leibler divergence, times T²
    so that its gradients keep their size as T changes). A regression teacher's values are
    matched as they are (mean squared error): leave it at its default."""
    soft_loss_weight: Annotated[float, Field(ge=0, le=1)] = 0.5
    """loss = (1 - w) · hard loss + w · soft loss. 0: the labels alone (the teacher unused);
    1: the teacher alone."""
