"""The whole spec: one document describing data, model, training, evaluation, export."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dlpipe.spec.base import StrictModel
from dlpipe.spec.data import Data
from dlpipe.spec.evaluation import Evaluation
from dlpipe.spec.export import Export
from dlpipe.spec.model import Model
from dlpipe.spec.prepare import Prepare
from dlpipe.spec.training import Training
from dlpipe.spec.tuning import Tuning, resolve as resolve_tuning

Task = Literal["classification", "regression", "forecasting", "detection", "embedding", "generation"]

DEFAULT_METRICS: dict[str, list[str]] = {
    "classification": ["accuracy", "f1_macro"],
    "regression": ["mae", "mse", "rmse", "r2"],
    # naive_mae: the last-value forecast's error, so every run says whether it beats it.
    "forecasting": ["mae", "rmse", "naive_mae"],
    "detection": ["map_50", "map"],
    # knn_accuracy needs labels: dropped when the data has no target (see below).
    "embedding": ["reconstruction_mse", "knn_accuracy"],
    "generation": ["fid", "inception_score"],
}

# Which pipeline in pipelines/ runs each task.
PIPELINES: dict[str, str] = {"classification": "supervised", "regression": "supervised",
                             "forecasting": "supervised", "detection": "detection", "embedding": "embedding",
                             "generation": "adversarial"}


class Spec(StrictModel):
    """A dlpipe spec. `dlpipe schema` prints this model as JSON Schema."""

    version: Literal[1] = 1
    """The spec format's version; 1, the only one so far."""
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    """Names the run directory (runs/<name>-<time>): letters, digits, '_', '-', '.'."""
    description: str = ""
    """One line shown by `dlpipe templates` and in the model card."""
    task: Task
    """classification or regression: learn the target from the features (pipelines/supervised.py).
    embedding: learn an autoencoder on the features alone and export its encoder, which maps an
    example to a vector (pipelines/embedding.py); a target, if given, only scores the embedding."""
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 42
    """Seeds splits, shuffling, initial weights; with it a CPU run is bit-for-bit repeatable."""
    data: Data
    """Where the examples come from, which columns are features and target, and how they are
    split."""
    prepare: Prepare = Prepare()
    """Imputation, normalization and augmentation, fitted on the training split; imputation and
    normalization live inside the model."""
    model: Model
    """The architecture, picked by `type`, and its settings."""
    training: Training = Training()
    """Optimizer, schedule, loss, batch size, epochs, stopping, checkpoints and hardware
    settings."""
    evaluation: Evaluation = Evaluation()
    """Which metrics are computed, on which splits. Default: the task's usual metrics on validation
    and test."""
    export: Export = Export()
    """The formats written after training, how each is checked against the trained model, and the
    model card's intended use."""
    tuning: Tuning | None = None
    """Hyperparameter search for `dlpipe tune`; `dlpipe run` ignores it."""
    allow_unsafe_deserialization: bool = False
    """Load this run's `.keras` files (by `dlpipe evaluate`, `dlpipe export`, a rerun) with
    Keras safe mode off. A file holding a Lambda layer runs its Python code on loading: set
    this only for files you trust. Off, such a file is refused with one line."""

    @model_validator(mode="after")
    def _fill_task_defaults(self) -> "Spec":
        # Defaults that depend on the task are written into the spec itself, so that the
        # resolved spec.yaml of a run shows every value that was used.
        # Copies: a section left out is the class's one shared default object, and setting
        # a value on it would leak into every later spec.
        if self.evaluation.metrics is None:
            metrics = list(DEFAULT_METRICS[self.task])
            if self.task == "embedding" and self.data.target is None:
                metrics.remove("knn_accuracy")  # nothing to score the neighbours with
            evaluation = self.evaluation.model_copy(update={"metrics": metrics})
            object.__setattr__(self, "evaluation", evaluation)
        if self.data.split.stratify is None:
            # Stratifying needs one class per example: not per-step or multi-label targets.
            several = getattr(self.model, "return_sequences", False) or (
                self.data.target is not None and self.data.target.multi_label)
            split = self.data.split.model_copy(update={"stratify": self.task == "classification" and not several})
            object.__setattr__(self.data, "split", split)
        if self.task == "generation" and self.training.adversarial is None:
            from dlpipe.spec.training import Adversarial

            training = self.training.model_copy(update={"adversarial": Adversarial()})
            object.__setattr__(self, "training", training)
        if self.tuning is not None and self.task != "generation":  # refused in checks.py
            object.__setattr__(self, "tuning", resolve_tuning(self))
        return self

    @property
    def pipeline(self) -> str:
        return PIPELINES[self.task]
