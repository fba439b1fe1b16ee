"""The `tuning` section: what `dlpipe tune` optimizes, over which spec keys, and how.

`dlpipe run` ignores this section. `dlpipe tune` runs trials, each a normal run of the spec
with the searched keys set as `--set` overrides would set them, and keeps the best.

    tuning:
      objective: {metric: log_loss}                      # on the validation split
      search:
        training.optimizer.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
        model.dropout: {type: uniform, low: 0.0, high: 0.5}
        model.units: {type: choice, values: [[32], [64, 64]]}
      sampler: {type: bayesian}
      pruner: {type: median}

Checks here (run by `dlpipe validate` too, so before any trial): every searched key is a
key of the spec, with a did-you-mean; bounds are sane; every bound and choice is a value
the spec accepts at that key; the objective is a metric the spec computes.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, WithJsonSchema

from dlpipe import registry, tasks
from dlpipe.spec.base import ByType, PositiveFloat, PositiveInt, StrictModel
from dlpipe.spec.evaluation import _check_metric

MAXIMIZED = registry.maximized()
"""Metrics where higher is better (each registry entry's direction); every other metric
(losses, errors, FID) is minimized."""
DEFAULT_TRIALS = 20


def metric_direction(metric: str) -> str:
    """An output's metric (`cultivar/accuracy`) goes the way of its metric."""
    return "maximize" if metric.rpartition("/")[2] in MAXIMIZED else "minimize"


def _check_objective_metric(name: str) -> str:
    """A metric's name, or an output's metric (`alcohol/mae`, task multi_output) whose part
    after the slash is a metric's name."""
    output, slash, metric = name.rpartition("/")
    if slash and output:
        _check_metric(metric)
        return name
    return _check_metric(name)


ObjectiveMetric = Annotated[str, AfterValidator(_check_objective_metric),
                            WithJsonSchema({"type": "string", "description": "a metric, or <output>/<metric>"})]


class Objective(StrictModel):
    """The number trials are ranked by: one metric of the trial's metrics.json, or a weighted
    sum of several (a model with several outputs)."""

    metric: ObjectiveMetric | None = None
    """A metric listed in evaluation.metrics; default accuracy (classification) or mse
    (regression). Task multi_output: one output's metric, `<output>/<metric>`."""
    weights: Annotated[dict[ObjectiveMetric, float], Field(min_length=1)] | None = None
    """Instead of `metric` (task multi_output): the trial's value is the sum of each
    `<output>/<metric>` times its weight (`{cultivar/accuracy: 1.0, alcohol/mae: -0.5}`);
    give `direction` too."""
    split: Literal["validation"] = "validation"
    """Trials are ranked on the validation split only. Ranking on the test split would
    spend it on model selection, and the best run's test metrics would stop being an
    honest estimate."""
    direction: Literal["maximize", "minimize"] | None = None
    """Follows from the metric (maximize accuracy, f1, precision, recall, roc_auc, r2;
    minimize losses and errors); written out in the resolved spec. Required with `weights`."""

    @property
    def shown(self) -> str:
        """The objective in words: the metric, or the weighted sum."""
        if self.weights is None:
            return str(self.metric)
        return " + ".join(f"{weight:g} × {name}" for name, weight in self.weights.items())

    def value(self, scores: dict) -> float | None:
        """The trial's value from its metrics.json split; None when a metric is missing."""
        names = [self.metric] if self.weights is None else list(self.weights)
        if any(name not in scores for name in names):
            return None
        values = {name: float("nan") if scores[name] is None else float(scores[name]) for name in names}
        if self.weights is None:
            return values[self.metric]
        return sum(weight * values[name] for name, weight in self.weights.items())


class Uniform(StrictModel):
    """A float drawn evenly from [low, high]; with `step`, one of low, low + step, …, high."""

    type: Literal["uniform"]
    """Picks this distribution: uniform floats."""
    low: float
    """The smallest value."""
    high: float
    """The largest value."""
    step: PositiveFloat | None = None
    """Quantize to multiples of `step` above `low`; high − low must be a multiple of it.
    Needed for the grid sampler."""


class LogUniform(StrictModel):
    """A float whose logarithm is even in [log low, log high]: every decade is equally
    likely, as suits learning rates and weight decay."""

    type: Literal["loguniform"]
    """Picks this distribution: log-uniform floats."""
    low: PositiveFloat
    """The smallest value (> 0)."""
    high: PositiveFloat
    """The largest value."""


class Int(StrictModel):
    """An integer in [low, high], both included, every `step`."""

    type: Literal["int"]
    """Picks this distribution: integers."""
    low: int
    """The smallest value."""
    high: int
    """The largest value (included)."""
    step: PositiveInt = 1
    """Spacing of the values from `low`."""
    log: bool = False
    """Draw evenly on a log scale (as many values 8–16 as 64–128: layer widths); needs
    low ≥ 1 and step 1."""


class Choice(StrictModel):
    """One of `values`. A value may be any YAML: a number, a name, a list (`[64, 64]`
    for model.units) or a mapping (a whole `training.optimizer`)."""

    type: Literal["choice"]
    """Picks this distribution: a list of values."""
    values: Annotated[list[Any], Field(min_length=1)]
    """The values to try, each one a complete value for the key."""


Param = Annotated[Union[Uniform, LogUniform, Int, Choice], ByType()]


class GridSampler(StrictModel):
    """Every combination of the search space once: each parameter a choice, an int range,
    or a uniform range with a step."""

    type: Literal["grid"]
    """Picks this sampler: every combination once."""


class RandomSampler(StrictModel):
    """Independent draws from each parameter's distribution."""

    type: Literal["random"]
    """Picks this sampler: independent random draws."""


class BayesianSampler(StrictModel):
    """Tree-structured Parzen Estimator (Optuna's TPE): random trials first, then draws
    where earlier trials did well."""

    type: Literal["bayesian"]
    """Picks this sampler: TPE."""
    startup_trials: PositiveInt = 10
    """Random trials before TPE starts to model the results."""


Sampler = Annotated[Union[GridSampler, RandomSampler, BayesianSampler], ByType()]


class NoPruner(StrictModel):
    """Every trial trains for all its epochs."""

    type: Literal["none"]
    """Picks this pruner: no pruning."""


class MedianPruner(StrictModel):
    """Stop a trial whose value after an epoch is worse than the median of earlier trials
    after the same epoch."""

    type: Literal["median"]
    """Picks this pruner: median pruning."""
    startup_trials: Annotated[int, Field(ge=0)] = 5
    """Trials that finish before any is pruned."""
    warmup_epochs: Annotated[int, Field(ge=0)] = 1
    """Epochs a trial always trains before it can be pruned."""


class HyperbandPruner(StrictModel):
    """Hyperband: successive halving in several brackets; most trials get few epochs, the
    promising ones all of `training.epochs`."""

    type: Literal["hyperband"]
    """Picks this pruner: Hyperband."""
    min_epochs: PositiveInt = 1
    """Epochs every trial gets."""
    reduction_factor: Annotated[int, Field(ge=2)] = 3
    """Keep 1 in `reduction_factor` trials at each rung."""


Pruner = Annotated[Union[NoPruner, MedianPruner, HyperbandPruner], ByType()]


class Tuning(StrictModel):
    """Hyperparameter search for `dlpipe tune`; `dlpipe run` ignores this section."""

    objective: Objective = Objective()
    """The metric trials are ranked by, and its direction."""
    search: Annotated[dict[str, Param], Field(min_length=1)] | None = None
    """Spec keys, as dotted paths (`training.optimizer.learning_rate`,
    `model.blocks[0].filters`), each with the values to try. Left out: the learning rate
    (log scale, a decade either side of the spec's), the dropout and the batch size."""
    sampler: Sampler = BayesianSampler(type="bayesian")
    """How each trial's values are chosen; default: bayesian (TPE)."""
    pruner: Pruner = MedianPruner(type="median")
    """Fed the validation value after every epoch (see docs/architecture.md, Tuning)."""
    trials: PositiveInt | None = None
    """Trials one `dlpipe tune` runs; a rerun, or a second worker on the same storage,
    runs as many more. Default 20; for the grid sampler, the whole grid."""
    timeout: PositiveFloat | None = None
    """Seconds after which no new trial starts (the one running finishes)."""


# Defaults that depend on the rest of the spec ------------------------------------------


def default_search(spec) -> dict[str, Param]:
    """The space searched when `tuning.search` is left out."""
    rate = spec.training.optimizer.learning_rate
    search: dict[str, Param] = {
        "training.optimizer.learning_rate": LogUniform(
            type="loguniform", low=float(f"{rate / 10:.6g}"), high=float(f"{rate * 10:.6g}")),
    }
    fields = type(spec.model).model_fields
    if "dropout" in fields:
        search["model.dropout"] = Uniform(type="uniform", low=0.0, high=0.5)
    elif "head" in fields and not tasks.get(spec.task).refused("model.head"):  # an embedding's autoencoder has none
        search["model.head.dropout"] = Uniform(type="uniform", low=0.0, high=0.5)
    size = spec.training.batch_size
    search["training.batch_size"] = Choice(type="choice", values=sorted({max(1, size // 2), size, size * 2}))
    return search


def resolve(spec) -> Tuning:
    """`spec.tuning` with the task-dependent defaults written in (a new object: pydantic
    shares default instances between specs, so they must never be changed in place)."""
    tuning: Tuning = spec.tuning
    given = tuning.objective
    if given.weights is not None:  # a weighted sum: its direction is the spec's (spec/search.py)
        objective = given
    else:
        metric = given.metric or tasks.get(spec.task).objective
        objective = given.model_copy(update={
            "metric": metric, "direction": given.direction or (metric_direction(metric) if metric else None)})
    search = tuning.search if tuning.search is not None else default_search(spec)
    trials = tuning.trials
    if trials is None:
        size = grid_size(search) if tuning.sampler.type == "grid" else None
        trials = size or DEFAULT_TRIALS
    return tuning.model_copy(update={"objective": objective, "search": search, "trials": trials})


# The values of one parameter --------------------------------------------------------------


def _steps(low: float, high: float, step: float) -> int | None:
    """How many steps of `step` from low to high, or None if high − low is not a multiple."""
    count = (high - low) / step
    rounded = round(count)
    return rounded if abs(count - rounded) <= 1e-9 * max(1.0, abs(count)) else None


def grid_values(param) -> list | None:
    """Every value the grid sampler tries for `param`; None for a continuous range."""
    if isinstance(param, Choice):
        return list(param.values)
    if isinstance(param, Int):
        return list(range(param.low, param.high + 1, param.step))
    if isinstance(param, Uniform) and param.step is not None:
        count = _steps(param.low, param.high, param.step)
        if count is None:
            return None
        # Rounded so that 0.1 + 2 × 0.1 is written (and stored) as 0.3.
        return [round(param.low + i * param.step, 12) for i in range(count + 1)]
    return None


def grid_size(search: dict) -> int | None:
    size = 1
    for param in search.values():
        values = grid_values(param)
        if values is None:
            return None
        size *= len(values)
    return size


def bound_values(param) -> list[tuple[tuple, Any]]:
    """(where, value) pairs that stand for a parameter's domain: both ends of a range,
    every choice. Each is checked against the spec field it will be written to."""
    if isinstance(param, Choice):
        return [(("values", i), value) for i, value in enumerate(param.values)]
    return [(("low",), param.low), (("high",), param.high)]


def _yaml(value: Any) -> str:
    """A value as YAML flow text for `--set` (json.dumps would write 1e-05, which YAML
    reads as a string)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
