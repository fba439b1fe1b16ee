"""The evaluation stage: predict each split, compute the spec's metrics, keep the evidence.

One function, `evaluate`, serves both `dlpipe run` (pipelines/supervised.py) and
`dlpipe evaluate` (dlpipe/evaluation.py). It writes, under its output folder:

    metrics.json                          {split: {metric: number}}
    evaluation/<split>/confusion_matrix.json, per_class.json     (classification)

and hands back each split's model output, which dlpipe/report/evaluation.py draws (metrics
compute numbers; the report draws them).
"""

from __future__ import annotations

import math

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlpipe import registry, tasks
from dlpipe.data.pipeline import predict
from dlpipe.rundir import atomic_write_json

def probabilities(model_output: np.ndarray, n_classes: int) -> np.ndarray:
    """Model output → N × K class probabilities (a sigmoid output becomes two columns)."""
    output = np.asarray(model_output, dtype=np.float64)
    if n_classes == 2 and output.shape[-1] == 1:
        p = output[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    return output


def scores(task, names: list[str], y: np.ndarray, output: np.ndarray, n_classes: int | None,
           multi_label: bool = False, naive: np.ndarray | None = None) -> dict:
    """`task`: a Task (dlpipe/tasks/) or its name; its metric table is `metric:<task name>`."""
    task = tasks.get(task) if isinstance(task, str) else task
    y, output = np.asarray(y), np.asarray(output)
    table = f"metric:{task.name}"
    if task.horizon:
        # Every step of the horizon counts alike; naive_* score the last-value forecast.
        y = y.reshape(len(y), -1)
        forecasts = {"model": output.reshape(y.shape), "naive": None if naive is None else naive.reshape(y.shape)}
        return {name: registry.load(table, name)(
                    y, forecasts["naive" if name.startswith("naive_") else "model"]) for name in names}
    if multi_label:
        return {name: multi_label_score(name, y, output) for name in names}
    classes = task.output == "classes"
    if classes and y.ndim == 2:  # a class per step: every step is one decision
        y, output = y.reshape(-1), output.reshape(y.size, -1)
    if not classes:
        # Several numbers per example (or per step): sklearn averages over the outputs.
        output = output.reshape(y.shape)
        if y.ndim > 2:
            y, output = y.reshape(len(y), -1), output.reshape(len(y), -1)
        prediction = output if y.ndim == 2 else output.reshape(-1)
    else:
        prediction = probabilities(output, n_classes)
    return {name: registry.load(table, name)(y, prediction) for name in names}


def json_ready(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """JSON has no NaN or infinity: a metric undefined on a split (ROC AUC when one class is
    absent, a diverged loss) is written as null."""
    return {split: {name: value if math.isfinite(value) else None for name, value in values.items()}
            for split, values in metrics.items()}


def evaluate(model, spec, data, out: Path, splits: Sequence[str],
             outputs: dict | None = None) -> dict[str, dict[str, float]]:
    """Metrics of `model` on each named split of `data` (a PreparedData); writes
    metrics.json and the per-split artifacts under `out`. `outputs`, when given, receives
    each split's model output (for the report's plots)."""
    n_classes = len(data.class_names) if data.class_names else None
    task = tasks.get(spec.task)
    classes = task.output == "classes"
    metrics = {}
    for name in splits:
        split = data.splits[name]
        if not len(split):
            continue
        stream = getattr(split, "stream", None)  # data.streaming: features read again, chunk by chunk
        output = predict(model, split.x, compiled=True) if stream is None else stream.predict(model)
        multi_label = spec.data.target.multi_label
        metrics[name] = scores(task, spec.evaluation.metrics, split.y, output, n_classes,
                               multi_label=multi_label, naive=split.naive)
        if classes and not multi_label and split.y.ndim == 1:
            _classification_artifacts(out / "evaluation" / name, split.y, probabilities(output, n_classes),
                                      data.class_names)
        if outputs is not None:
            outputs[name] = output
    atomic_write_json(out / "metrics.json", json_ready(metrics))
    for name, values in metrics.items():
        summary = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"[dlpipe] {name}: {summary}", file=sys.stderr, flush=True)
        if task.baseline and task.baseline[0] in values and task.baseline[1] in values:
            metric, baseline, what = task.baseline
            verdict = "beats" if values[metric] < values[baseline] else "does NOT beat"
            print(f"[dlpipe] {name}: the model {verdict} {what} "
                  f"({metric} {values[metric]:.4f} vs {baseline} {values[baseline]:.4f})", file=sys.stderr, flush=True)
    return metrics


def _classification_artifacts(folder: Path, y: np.ndarray, proba: np.ndarray, class_names: list[str]) -> None:
    from dlpipe.metrics.classification import confusion, normalized, per_class

    counts = confusion(y, proba)
    atomic_write_json(folder / "confusion_matrix.json", {
        "classes": list(class_names),
        "counts": counts.tolist(),
        "normalized": normalized(counts).tolist(),
        "note": "rows: true class, columns: predicted class; normalized divides each row by its total",
    })
    atomic_write_json(folder / "per_class.json", per_class(counts, class_names))


def multi_label_score(name: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Multi-label targets (N × K indicators) against K sigmoid outputs, a class predicted
    when its probability is ≥ 0.5. accuracy: exact match of all K; precision, recall, F1:
    scikit-learn's multi-label averages; roc_auc: macro over classes (NaN when a class is
    constant in y); log_loss: binary log loss averaged over the classes."""
    from sklearn import metrics as sk

    if "multi_label" not in registry.entry("metric:classification", name).targets:
        # `dlpipe validate` refuses such a spec (check_metrics); this guards direct callers.
        raise ValueError(f"{name} does not score multi-label targets")
    y = y.astype(int)
    predicted = (proba >= 0.5).astype(int)
    if name == "accuracy":
        return float(sk.accuracy_score(y, predicted))
    if name == "roc_auc":
        if any(len(np.unique(column)) < 2 for column in y.T):
            return float("nan")
        return float(sk.roc_auc_score(y, proba, average="macro"))
    if name == "log_loss":
        return float(np.mean([sk.log_loss(y[:, k], proba[:, k], labels=[0, 1]) for k in range(y.shape[1])]))
    kind, _, average = name.rpartition("_")
    function = {"precision": sk.precision_score, "recall": sk.recall_score, "f1": sk.f1_score}[kind]
    return float(function(y, predicted, average=average, zero_division=0))
