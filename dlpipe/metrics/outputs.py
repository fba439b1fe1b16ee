"""Scores of a model with several outputs (task multi_output).

metrics.json keeps every task's layout, `{split: {metric: value}}`, with each metric named
`<output>/<metric>` (`cultivar/accuracy`, `alcohol/mae`): every reader of metrics.json
(the report, `dlpipe compare`, `dlpipe tune`, MLflow) takes them as it takes any metric.
Each output is scored by its kind's metric table (metric:classification or
metric:regression) against its own labels, exactly as a single-output run of that kind
scores it; baselines likewise, fitted per output on the same training rows:
`{"baselines": {split: {baseline: {"<output>/<metric>": value}}}}`. A classification
output's confusion matrix and per-class scores go to evaluation/<split>/<output>/.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlpipe import tasks
from dlpipe.data.pipeline import predict
from dlpipe.rundir import atomic_write_json
from dlpipe.tasks.multi_output import SEPARATOR, gives_classes, output_metrics


def named(output: str, metric: str) -> str:
    return f"{output}{SEPARATOR}{metric}"


def n_classes(data, output: str) -> int | None:
    names = data.extra["outputs"][output]["class_names"]
    return len(names) if names else None


def score_outputs(spec, data, y: dict, output: dict) -> dict[str, float]:
    """{`<output>/<metric>`: value} of model outputs `output` against labels `y` (both by output name)."""
    from dlpipe.metrics.evaluate import scores

    found = {}
    for target in spec.data.targets:
        values = scores(tasks.get(target.kind), output_metrics(target), y[target.name],
                        np.asarray(output[target.name]), n_classes(data, target.name))
        found.update({named(target.name, metric): value for metric, value in values.items()})
    return found


def evaluate_outputs(model, spec, data, out: Path, splits: Sequence[str],
                     outputs: dict | None = None) -> dict[str, dict[str, float]]:
    """Every output's metrics on each named split → metrics.json (and evaluation/ per
    classification output); `outputs`, when given, receives each split's model outputs."""
    from dlpipe.metrics.evaluate import _classification_artifacts, json_ready, probabilities

    metrics = {}
    for name in splits:
        split = data.splits[name]
        if not len(split):
            continue
        output = predict(model, split.x)
        metrics[name] = score_outputs(spec, data, split.y, output)
        for target in spec.data.targets:
            if gives_classes(target):
                classes = data.extra["outputs"][target.name]["class_names"]
                _classification_artifacts(out / "evaluation" / name / target.name, split.y[target.name],
                                          probabilities(output[target.name], len(classes)), classes)
        if outputs is not None:
            outputs[name] = output
    atomic_write_json(out / "metrics.json", json_ready(metrics))
    for name, values in metrics.items():
        summary = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"[dlpipe] {name}: {summary}", file=sys.stderr, flush=True)
    return metrics


def output_baselines(spec, data, splits: Sequence[str]) -> dict:
    """{split: {baseline: {`<output>/<metric>`: value}}}: metrics/baselines.py's plain
    predictors, fitted and scored on each output's labels in turn."""
    from dlpipe.metrics.baselines import _fit, _score

    found: dict = {}
    for target in spec.data.targets:
        task = tasks.get(target.kind)
        view = dataclasses.replace(data, splits={
            name: dataclasses.replace(split, y=split.y[target.name]) for name, split in data.splits.items()})
        k = n_classes(data, target.name)
        scored = _score(task, view, splits, _fit(task, view, spec.seed, False, k), output_metrics(target), k, False)
        for split, baselines in scored.items():
            for baseline, values in baselines.items():
                found.setdefault(split, {}).setdefault(baseline, {}).update(
                    {named(target.name, metric): value for metric, value in values.items()})
    return found


def baseline_summary(spec, metrics: dict, baselines: dict) -> str | None:
    """One line per output's first metric on test: the model's and the best baseline's."""
    from dlpipe import registry

    split = "test" if "test" in metrics and "test" in baselines else None
    if split is None:
        return None
    parts = []
    for target in spec.data.targets:
        metric = named(target.name, output_metrics(target)[0])
        model = metrics[split].get(metric)
        scored = {name: values[metric] for name, values in baselines[split].items()
                  if values.get(metric) is not None and np.isfinite(values[metric])}
        if model is None or not scored:
            continue
        larger = registry.entry(f"metric:{target.kind}", output_metrics(target)[0]).direction == "max"
        best = (max if larger else min)(scored, key=scored.get)
        parts.append(f"{metric} {model:.4f} (best baseline {best} {scored[best]:.4f})")
    return f"{split} " + "; ".join(parts) if parts else None
