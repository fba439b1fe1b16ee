"""What a task is: the facts every command reads, in one TF-free object.

A task (`task:` in a spec) is one `Task`, defined in its own module of this package and
registered in the `task` table of dlpipe/registry.py. Everything outside a task's own files
(this package and its pipeline in pipelines/) asks the task for a fact or calls a hook of
its pipeline; nothing else compares task names. The spec layer reads these objects, so this
package imports only the standard library and dlpipe's contract modules: never pydantic,
never Keras.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

Found = Iterator[tuple[tuple, str]]
"""(spec path, message) pairs, as every check yields them."""

COMMANDS = ("evaluate", "export", "predict", "tune", "deep", "resume", "rerun", "explain")
"""What a task may support beside `dlpipe run`:

    evaluate  `dlpipe evaluate RUN_DIR` re-evaluates a finished run (pipeline hook `reevaluate`)
    export    `dlpipe export RUN_DIR` exports a finished run again (pipeline hook `reexport`)
    predict   `dlpipe predict` runs its exported model on raw inputs
    tune      `dlpipe tune` searches its hyperparameters
    deep      `dlpipe validate --deep` builds its model (pipeline hook `deep_build`)
    resume    `dlpipe run --resume` continues an interrupted run from its last checkpoint
    rerun     `dlpipe run --out DIR` into a folder holding a run reuses unchanged stages
    explain   `dlpipe explain RUN_DIR` and `evaluation.explain` explain a finished run's model
              (pipeline hook `explain`; the run's own stage reads `evaluation.explain`)
"""

COMMAND_NAMES = {"evaluate": "dlpipe evaluate", "export": "dlpipe export", "predict": "dlpipe predict",
                 "tune": "dlpipe tune", "deep": "dlpipe validate --deep", "resume": "dlpipe run --resume",
                 "rerun": "dlpipe run into a folder that holds a run", "explain": "dlpipe explain"}

Target = Literal["classes", "values", "optional_classes", "none", "outputs"]
Output = Literal["classes", "values", "embedding", "boxes", "images", "outputs"]


@dataclass(frozen=True)
class Task:
    """One task's facts. Fields default to what most tasks do; each task module states the
    rest. `checks` are the task's own cross-field rules over a validated Spec (duck-typed:
    this package does not import the spec models)."""

    name: str
    pipeline: str
    """The module in pipelines/ that runs it (`dlpipe.pipelines.<pipeline>`)."""
    summary: str
    """One line: what a run of this task learns and produces."""
    target: Target
    """What `data.target` holds: classes (required; every labeling mode), values (required
    numbers), optional_classes (labels that only score or condition the model), none (the
    source carries the annotations; a target is refused), outputs (data.targets names one
    column per output; data.target is refused)."""
    output: Output
    """What the exported model gives per example; `dlpipe predict` writes it accordingly."""
    default_metrics: tuple[str, ...]
    """evaluation.metrics when the spec gives none."""
    unlabelled_drop: tuple[str, ...] = ()
    """Default metrics that need labels: left out of the defaults when data.target is absent."""
    losses: tuple[str, ...] = ()
    """Loss names a spec may choose besides `auto`; empty: the task trains with its own loss."""
    own_loss: str = ""
    """What `auto` means when `losses` is empty (said in the refusal of any other loss)."""
    loss_factory: str | None = None
    """`"module:function"` of the task's own loss, `function(spec, n_classes)` → a Keras loss;
    None: the spec's `training.loss` (auto: chosen from the output)."""
    training_metric: str | None = None
    """The metric Keras tracks beside the loss during training (early stopping, checkpoints and
    reduce-on-plateau may monitor it, or its val_ form)."""
    objective: str | None = None
    """`dlpipe tune`'s default objective (on the validation split); None where the spec must
    name one (task multi_output: an output's metric, or a weighted sum)."""
    scored: Callable[[Any], list[str]] | None = None
    """The metric names a run of a spec writes into metrics.json, where they are not
    `evaluation.metrics` (task multi_output: `<output>/<metric>`); tuning objectives name them."""
    commands: frozenset[str] = frozenset()
    """The subset of COMMANDS this task supports."""
    honours: tuple[str, ...] = ()
    """Dotted spec keys its pipeline reads; a key honours every key below it. Any other key set
    to a value other than its default is refused by `dlpipe validate` (spec/checks.py)."""
    refusals: dict[str, str] = field(default_factory=dict)
    """Why a key outside `honours` does not apply, where a plain refusal would not say enough."""
    filled: tuple[str, ...] = ()
    """Optional spec sections written in with their defaults for this task (the resolved spec
    shows every value used)."""
    models: tuple[str, ...] = ()
    """model.type values only this task trains (refused for any other task); empty: none."""
    sources: tuple[str, ...] = ()
    """data.source.type values only this task reads (refused for any other task); empty: none."""
    horizon: bool = False
    """Outputs are the steps of one forecast: scores pool every step, and the model learns a
    change from the last observed value."""
    baseline: tuple[str, str, str] | None = None
    """(metric, baseline metric, what the baseline is): every evaluation says whether the model
    beat it."""
    checks: tuple[Callable[[Any], Found], ...] = ()

    @property
    def has_classes(self) -> bool:
        """Its model's output carries classes (a classifier's; each detection's), which an
        export tolerance's `agreement` compares."""
        return self.output in ("classes", "boxes")

    def supports(self, command: str) -> bool:
        if command not in COMMANDS:
            raise KeyError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
        return command in self.commands

    def pipeline_module(self) -> ModuleType:
        """The pipeline's module: `run(ctx)` and the hooks of the commands it supports."""
        return importlib.import_module(f"dlpipe.pipelines.{self.pipeline}")

    def hook(self, name: str) -> Callable:
        """A hook of the task's pipeline (`run`, `reevaluate`, `reexport`, `deep_build`, `explain`)."""
        module = self.pipeline_module()
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"pipeline {module.__name__} has no hook {name!r} (task {self.name})") from None

    def honoured(self, key: str) -> bool:
        """Whether the pipeline reads `key` (dotted), or a key above it."""
        return any(key == h or key.startswith(h + ".") for h in self.honours)

    def refused(self, key: str) -> bool:
        """Whether `key` lies under a refusal (refused even below an honoured key)."""
        return any(key == r or key.startswith(r + ".") for r in self.refusals)

    def refusal(self, key: str) -> str:
        """Why `key` is refused: the reason of the nearest refusal above it, else a plain line."""
        covering = [r for r in self.refusals if key == r or key.startswith(r + ".")]
        if covering:
            return self.refusals[max(covering, key=len)]
        return f"the {self.name} task does not use this key; remove it"

    def __post_init__(self) -> None:
        unknown = set(self.commands) - set(COMMANDS)
        if unknown:
            raise ValueError(f"task {self.name}: unknown commands {sorted(unknown)}")
