"""Classification metrics on integer labels and class probabilities (N × K).

Each is scikit-learn's, called with the full label set so that a class missing from the
labels or the predictions is still counted (macro averages then include its zero).
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as sk


def _predicted(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.arange(proba.shape[1])


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(sk.accuracy_score(y, _predicted(proba)))


def _prf(kind, average):
    def metric(y: np.ndarray, proba: np.ndarray) -> float:
        return float(kind(y, _predicted(proba), labels=_labels(proba), average=average, zero_division=0))

    return metric


precision_macro = _prf(sk.precision_score, "macro")
recall_macro = _prf(sk.recall_score, "macro")
f1_macro = _prf(sk.f1_score, "macro")
f1_micro = _prf(sk.f1_score, "micro")
f1_weighted = _prf(sk.f1_score, "weighted")


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AUC of the positive class. Multiclass: one-vs-rest, macro averaged.
    NaN when a class the average needs is absent from the labels (AUC is undefined)."""
    present = np.unique(y)
    if proba.shape[1] == 2:
        return float(sk.roc_auc_score(y, proba[:, 1])) if len(present) == 2 else float("nan")
    if len(present) != proba.shape[1]:
        return float("nan")
    return float(sk.roc_auc_score(y, proba, multi_class="ovr", labels=_labels(proba)))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(sk.log_loss(y, proba, labels=_labels(proba)))
