"""The search space: `tuning.search` → Optuna parameters → `--set` overrides of a trial.

Imports neither Optuna nor TensorFlow; Optuna's trial object is passed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dlpipe import tasks
from dlpipe.spec.loader import _split_key
from dlpipe.spec.tuning import Choice, Int, LogUniform, Uniform, _yaml, grid_values


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


@dataclass(frozen=True)
class Dimension:
    """One searched spec key. Its Optuna parameter is named by the key as written."""

    key: str
    path: tuple
    param: Any

    @property
    def encoded(self) -> bool:
        """Optuna's categorical choices must be scalars, and it tells 1 from True only by
        position: such choices are stored as their JSON text instead."""
        if not isinstance(self.param, Choice):
            return False
        values = self.param.values
        has_bool = any(isinstance(v, bool) for v in values)
        has_number = any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        return not all(map(_is_scalar, values)) or (has_bool and has_number)

    def choices(self) -> list:
        values = self.param.values
        return [json.dumps(v, sort_keys=True) for v in values] if self.encoded else list(values)

    def decode(self, stored: Any) -> Any:
        return json.loads(stored) if self.encoded else stored

    def grid(self) -> list:
        """The values the grid sampler tries, as Optuna stores them."""
        if isinstance(self.param, Choice):
            return self.choices()
        return grid_values(self.param)

    def suggest(self, trial) -> Any:
        """Draw this parameter for an Optuna trial; returns the value for the spec."""
        p = self.param
        if isinstance(p, Uniform):
            value = trial.suggest_float(self.key, p.low, p.high, step=p.step)
            # 0.1 + 2 × 0.1 is 0.30000000000000004 in binary; the spec gets 0.3.
            return round(value, 12) if p.step is not None else value
        if isinstance(p, LogUniform):
            return trial.suggest_float(self.key, p.low, p.high, log=True)
        if isinstance(p, Int):
            return trial.suggest_int(self.key, p.low, p.high, step=p.step, log=p.log)
        return self.decode(trial.suggest_categorical(self.key, self.choices()))


def dimensions(search: dict) -> list[Dimension]:
    """Shallow keys first, so that a searched mapping (`training.optimizer`) is set before
    a key inside it (`training.optimizer.learning_rate`)."""
    dims = [Dimension(key, _split_key(key), param) for key, param in search.items()]
    return sorted(dims, key=lambda d: len(d.path))


def trial_overrides(spec, user_overrides: list[str], dims: list[Dimension], values: dict) -> list[str]:
    """The `--set` list that turns the spec file into one trial's spec.

    Each top-level section a searched key lies in is first written out whole, as resolved
    (every default filled in): a key is then set inside the spec's actual values, so
    `training.optimizer.learning_rate` keeps the default optimizer's type when the spec
    file does not name one."""
    resolved = spec.model_dump(mode="json")
    sections = list(dict.fromkeys(d.path[0] for d in dims))
    base = [f"{section}={_yaml(resolved[section])}" for section in sections]
    return [*user_overrides, *base, *(f"{d.key}={_yaml(values[d.key])}" for d in dims)]


def progress_key(spec) -> tuple[str, float]:
    """The Keras log value reported to the pruner after each epoch, and its sign.

    Keras tracks the loss and one metric (accuracy / mae) on the validation data while
    training. When that metric is the objective it is reported as is; otherwise the
    validation loss stands in for it (mse is the loss of a regression trained with the
    default loss), negated when the objective is maximized so that better is always in the
    study's direction."""
    objective = spec.tuning.objective
    if objective.metric == tasks.get(spec.task).training_metric:
        return f"val_{objective.metric}", 1.0
    return "val_loss", 1.0 if objective.direction == "minimize" else -1.0


def shown(value: Any) -> str:
    """A parameter value for a one-line message."""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
