"""The evaluation stage: predict each split, compute the spec's metrics, keep the evidence.

One function, `evaluate`, serves both `dlpipe run` (pipelines/supervised.py) and
`dlpipe evaluate` (dlpipe/evaluation.py). It writes, under its output folder:

    metrics.json                          {split: {metric: number}}
    evaluation/<split>/confusion_matrix.json, per_class.json     (classification)
    plots/confusion_matrix.png, roc_curve.png, pr_curve.png, misclassified.png
    plots/residuals.png                   (regression)

Plots describe the last evaluated split (the test split in a run).
"""

from __future__ import annotations

import math

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlpipe import registry
from dlpipe.data.pipeline import predict
from dlpipe.rundir import atomic_write_json

MISCLASSIFIED_SHOWN = 16


def probabilities(model_output: np.ndarray, n_classes: int) -> np.ndarray:
    """Model output → N × K class probabilities (a sigmoid output becomes two columns)."""
    output = np.asarray(model_output, dtype=np.float64)
    if n_classes == 2 and output.shape[-1] == 1:
        p = output[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    return output


def scores(task: str, names: list[str], y: np.ndarray, output: np.ndarray, n_classes: int | None,
           multi_label: bool = False, naive: np.ndarray | None = None) -> dict:
    y, output = np.asarray(y), np.asarray(output)
    if task == "forecasting":
        # Every step of the horizon counts alike; naive_* score the last-value forecast.
        y = y.reshape(len(y), -1)
        forecasts = {"model": output.reshape(y.shape), "naive": None if naive is None else naive.reshape(y.shape)}
        return {name: registry.load("metric:forecasting", name)(
                    y, forecasts["naive" if name.startswith("naive_") else "model"]) for name in names}
    if multi_label:
        return {name: multi_label_score(name, y, output) for name in names}
    if task == "classification" and y.ndim == 2:  # a class per step: every step is one decision
        y, output = y.reshape(-1), output.reshape(y.size, -1)
    if task == "regression":
        # Several numbers per example (or per step): sklearn averages over the outputs.
        output = output.reshape(y.shape)
        if y.ndim > 2:
            y, output = y.reshape(len(y), -1), output.reshape(len(y), -1)
        prediction = output if y.ndim == 2 else output.reshape(-1)
    else:
        prediction = probabilities(output, n_classes)
    return {name: registry.load(f"metric:{task}", name)(y, prediction) for name in names}


def json_ready(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """JSON has no NaN or infinity: a metric undefined on a split (ROC AUC when one class is
    absent, a diverged loss) is written as null."""
    return {split: {name: value if math.isfinite(value) else None for name, value in values.items()}
            for split, values in metrics.items()}


def evaluate(model, spec, data, out: Path, splits: Sequence[str]) -> dict[str, dict[str, float]]:
    """Metrics of `model` on each named split of `data` (a PreparedData); writes
    metrics.json, the per-split artifacts and the plots under `out`."""
    n_classes = len(data.class_names) if data.class_names else None
    metrics, last = {}, None
    for name in splits:
        split = data.splits[name]
        if not len(split):
            continue
        stream = getattr(split, "stream", None)  # data.streaming: features read again, chunk by chunk
        output = predict(model, split.x) if stream is None else stream.predict(model)
        multi_label = spec.data.target.multi_label
        metrics[name] = scores(spec.task, spec.evaluation.metrics, split.y, output, n_classes,
                               multi_label=multi_label, naive=split.naive)
        if spec.task == "classification" and not multi_label and split.y.ndim == 1:
            _classification_artifacts(out / "evaluation" / name, split.y, probabilities(output, n_classes),
                                      data.class_names)
        last = (name, split, output)
    atomic_write_json(out / "metrics.json", json_ready(metrics))
    if last is not None and not spec.data.target.multi_label and last[1].y.ndim == 1 and spec.task != "forecasting":
        _plots(out / "plots", spec.task, data, *last)
    for name, values in metrics.items():
        summary = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"[dlpipe] {name}: {summary}", file=sys.stderr, flush=True)
        if spec.task == "forecasting" and "mae" in values and "naive_mae" in values:
            verdict = "beats" if values["mae"] < values["naive_mae"] else "does NOT beat"
            print(f"[dlpipe] {name}: the model {verdict} the last-value forecast "
                  f"(mae {values['mae']:.4f} vs naive_mae {values['naive_mae']:.4f})", file=sys.stderr, flush=True)
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


def _plots(folder: Path, task: str, data, split_name: str, split, output: np.ndarray) -> None:
    from dlpipe.report import plots

    if task == "regression":
        plots.residuals(split.y, output, folder / "residuals.png", split_name)
        return
    from dlpipe.metrics.classification import confusion, normalized, predicted

    names = data.class_names
    proba = probabilities(output, len(names))
    counts = confusion(split.y, proba)
    plots.confusion_matrix(counts, normalized(counts), names, folder / "confusion_matrix.png", split_name)
    if len(names) == 2:
        plots.roc_curve(split.y, proba[:, 1], folder / "roc_curve.png", split_name, names[1])
        plots.pr_curve(split.y, proba[:, 1], folder / "pr_curve.png", split_name, names[1])
    images = [f for f in data.features if f.type == "image"]
    guess = predicted(proba)
    wrong = np.flatnonzero(guess != split.y)
    if images and len(wrong):
        # The most confident mistakes first: they say most about what the model learned.
        wrong = wrong[np.argsort(-proba[wrong, guess[wrong]], kind="stable")][:MISCLASSIFIED_SHOWN]
        captions = [f"{names[split.y[i]]} → {names[guess[i]]} ({proba[i, guess[i]]:.2f})" for i in wrong]
        plots.image_grid(split.x[images[0].input_name][wrong], captions, folder / "misclassified.png",
                         f"Misclassified ({split_name}, {len(np.flatnonzero(guess != split.y))} of {len(split)}): "
                         "true → predicted (probability)")


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
