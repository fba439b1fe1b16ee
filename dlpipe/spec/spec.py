"""The whole spec: one document describing data, model, training, evaluation, export."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dlpipe import registry, tasks
from dlpipe.spec.base import StrictModel
from dlpipe.spec.compression import Compression
from dlpipe.spec.data import Data
from dlpipe.spec.distillation import Distillation
from dlpipe.spec.evaluation import Evaluation
from dlpipe.spec.export import Export
from dlpipe.spec.model import Model
from dlpipe.spec.prepare import Prepare
from dlpipe.spec.tracking import Tracking
from dlpipe.spec.training import Training
from dlpipe.spec.tuning import Tuning, resolve as resolve_tuning

Task = Literal[registry.names("task")]
"""Every registered task (dlpipe/tasks/); each one's facts come from `tasks.get(name)`."""


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
    backend: Literal["tensorflow", "jax", "torch"] = "tensorflow"
    """The Keras backend the run trains on. `jax` imports no TensorFlow unless a step needs it
    (SavedModel, TFLite and ONNX export, TFRecord sources, `training.tensorboard: true`): data
    reaches the model as numpy batches, start-up is a few seconds shorter, and the train step is
    compiled by XLA. `torch` (Keras on PyTorch, eager steps) likewise imports no TensorFlow
    unless a step needs it; its SavedModel (and the TFLite and ONNX files made from it) is
    written by TensorFlow in a child process from the model's `.keras` file. On both, string
    features, tf.distribute strategies and attributions need `tensorflow`; on torch also
    `training.jit_compile: true`. A `.keras` file from any backend loads on any other."""
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
    compression: Compression | None = None
    """Pruning during training: the model is trained sparse and exported with its pruned weights
    exactly zero."""
    export: Export = Export()
    """The formats written after training, how each is checked against the trained model, and the
    model card's intended use."""
    distillation: Distillation | None = None
    """Train the model (the student) on an earlier model's outputs (the teacher) as well as
    on the labels: classification and regression."""
    tuning: Tuning | None = None
    """Hyperparameter search for `dlpipe tune`; `dlpipe run` ignores it."""
    tracking: Tracking | None = None
    """Experiment tracking: `tracking.mlflow` logs each run (and each tuning trial) to MLflow."""
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
        task = tasks.get(self.task)
        if self.evaluation.metrics is None and task.default_metrics:  # multi_output: per output (data.targets)
            metrics = [name for name in task.default_metrics  # some need labels to score with
                       if self.data.target is not None or name not in task.unlabelled_drop]
            evaluation = self.evaluation.model_copy(update={"metrics": metrics})
            object.__setattr__(self, "evaluation", evaluation)
        if self.data.split.stratify is None:
            # Stratifying needs one class per example: not per-step or multi-label targets.
            several = getattr(self.model, "return_sequences", False) or (
                self.data.target is not None and self.data.target.multi_label)
            split = self.data.split.model_copy(update={"stratify": task.target == "classes" and not several})
            object.__setattr__(self.data, "split", split)
        for key in task.filled:  # optional sections this task always uses: written in with their defaults
            section_name, _, field = key.partition(".")
            section = getattr(self, section_name)
            if getattr(section, field) is None:
                filled = section.model_copy(update={field: _section_class(type(section), field)()})
                object.__setattr__(self, section_name, filled)
        if self.tuning is not None and task.supports("tune"):  # refused otherwise (spec/checks.py)
            object.__setattr__(self, "tuning", resolve_tuning(self))
        return self

    @property
    def pipeline(self) -> str:
        return tasks.get(self.task).pipeline


def _section_class(model: type, field: str) -> type:
    """The model class of an optional field (`X | None`)."""
    import typing

    from pydantic import BaseModel

    annotation = model.model_fields[field].annotation
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise TypeError(f"{model.__name__}.{field} is not an optional section")
