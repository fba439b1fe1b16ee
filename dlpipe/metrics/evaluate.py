"""Compute a spec's metrics on each evaluated split."""

from __future__ import annotations

import numpy as np

from dlpipe import registry


def probabilities(model_output: np.ndarray, n_classes: int) -> np.ndarray:
    """Model output → N × K class probabilities (a sigmoid output becomes two columns)."""
    output = np.asarray(model_output, dtype=np.float64)
    if n_classes == 2 and output.shape[-1] == 1:
        p = output[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    return output


def scores(task: str, names: list[str], y: np.ndarray, output: np.ndarray, n_classes: int | None,
           multi_label: bool = False) -> dict:
    y, output = np.asarray(y), np.asarray(output)
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


def multi_label_score(name: str, y: np.ndarray, proba: np.ndarray) -> float:
    """Multi-label targets (N × K indicators) against K sigmoid outputs, a class predicted
    when its probability is ≥ 0.5. accuracy: exact match of all K; precision, recall, F1:
    scikit-learn's multi-label averages; roc_auc: macro over classes (NaN when a class is
    constant in y); log_loss: binary log loss averaged over the classes."""
    from sklearn import metrics as sk

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
    kind, _, average = name.partition("_")
    function = {"precision": sk.precision_score, "recall": sk.recall_score, "f1": sk.f1_score}[kind]
    return float(function(y, predicted, average=average, zero_division=0))
