"""Task multi_output: several targets from one set of features, one model with an output
(its own head, loss, loss weight and metrics) per entry of `data.targets`.

Pipeline: pipelines/multi_output.py. Each output is a classification (labels → a softmax,
or a sigmoid for two classes) or a regression (a number → a linear unit). metrics.json keeps
the `{split: {metric: value}}` layout of every task, with `<output>/<metric>` names
(`cultivar/accuracy`, `alcohol/mae`); baselines, the report, `dlpipe evaluate`, `dlpipe tune`
(`tuning.objective.metric: alcohol/mae`, or `weights` over several) and `dlpipe compare` read
them like any other metric.
"""

from __future__ import annotations

from dlpipe.tasks.base import Task
from dlpipe.tasks.common import (CLASS_LOSSES, EVERY_TASK, SUPERVISED_DATA, SUPERVISED_EXPORT, SUPERVISED_TRAINING,
                                 VALUE_LOSSES)

KINDS = {"classification": CLASS_LOSSES, "regression": VALUE_LOSSES}
"""An output's kind → the losses that fit it (besides auto)."""

DEFAULT_METRICS = {"classification": ("accuracy", "f1_macro"), "regression": ("mae", "mse", "rmse", "r2")}
"""An output's metrics when its entry lists none."""

SEPARATOR = "/"
"""Between an output's name and its metric in metrics.json (`alcohol/mae`)."""

_TRAINING = tuple(key for key in SUPERVISED_TRAINING if key not in ("training.loss", "training.strategy"))


def gives_classes(output) -> bool:
    """Whether an entry of data.targets is a classification output (its kind's task gives classes)."""
    return output.kind == "classification"


def metric_table(kind: str) -> str:
    """The registry's metric table of an output kind."""
    return f"metric:{kind}"


def output_metrics(output) -> list[str]:
    """An output's metrics: its own list, or its kind's defaults."""
    return list(output.metrics) if output.metrics is not None else list(DEFAULT_METRICS[output.kind])


def metric_names(spec) -> list[str]:
    """Every `<output>/<metric>` name a run of `spec` writes into metrics.json, in order."""
    return [f"{output.name}{SEPARATOR}{metric}" for output in spec.data.targets or ()
            for metric in output_metrics(output)]


def check_targets(spec):
    """data.targets: present, names unique, each loss and metric fitting its output's kind,
    no column both a target and a feature."""
    from dlpipe import registry
    from dlpipe.errors import did_you_mean

    outputs = spec.data.targets
    if not outputs:
        yield (("data",), "missing required key 'targets' (task multi_output learns one output per entry: "
                          "{name, column, kind})")
        return
    names, features = [], {f.name for f in spec.data.features}
    for i, output in enumerate(outputs):
        path = ("data", "targets", i)
        if output.name in names:
            yield ((*path, "name"), f"output name {output.name!r} is used twice (first at data.targets[{names.index(output.name)}]); "
                                    "every output needs its own name")
        names.append(output.name)
        if output.column in features:
            yield ((*path, "column"), f"{output.column!r} is a feature; a column cannot be both a feature and a target")
        fitting = KINDS[output.kind]
        if output.loss != "auto" and output.loss not in fitting:
            other = next((kind for kind, losses in KINDS.items() if output.loss in losses), None)
            if other is not None:
                yield ((*path, "loss"), f"loss {output.loss!r} is a {other} loss; it does not fit {output.kind} "
                                        f"output {output.name!r}: use auto, {', '.join(fitting)}")
            else:
                hint = did_you_mean(output.loss, [*fitting, "auto"]) or f"; use auto, {', '.join(fitting)}"
                yield ((*path, "loss"), f"unknown loss {output.loss!r}{hint}")
        known = registry.names(metric_table(output.kind))
        for j, metric in enumerate(output.metrics or ()):
            if metric in known:
                continue
            hint = did_you_mean(metric, known) or f"; choose from {', '.join(known)}"
            yield ((*path, "metrics", j), f"metric {metric!r} does not score {output.kind} output "
                                          f"{output.name!r}{hint}")


TASK = Task(
    name="multi_output",
    pipeline="multi_output",
    summary="learn several targets (classes and numbers) from the same features; exports a model "
            "giving one output per target",
    target="outputs",
    output="outputs",
    default_metrics=(),
    own_loss="each output's loss, weighted by its loss_weight (data.targets)",
    scored=metric_names,
    commands=frozenset({"evaluate", "export", "predict", "tune", "resume", "rerun", "deep"}),
    honours=(*EVERY_TASK, "backend", *SUPERVISED_DATA, "data.targets", "prepare.normalization", "prepare.imputation", "model",
             *_TRAINING, "evaluation.splits", "evaluation.baselines", *SUPERVISED_EXPORT, "tuning"),
    refusals={"data.target": "task multi_output reads its targets from data.targets (one entry per output); "
                             "data.target does not apply",
              "training.loss": "task multi_output takes each output's loss from data.targets[].loss; "
                               "training.loss does not apply",
              "evaluation.metrics": "task multi_output scores each output with data.targets[].metrics; "
                                    "evaluation.metrics does not apply",
              "model.return_sequences": "task multi_output gives one value per example and output; "
                                        "return_sequences does not apply"},
    checks=(check_targets,),
)
