"""Classification metrics on integer labels and class probabilities (N × K).

Each flat metric is scikit-learn's, called with the full label set 0..K-1 so that a class
missing from the labels or the predictions is still counted (macro averages then include
its zero); `precision`, `recall` and `f1` score the positive class (index 1) of a two-class
target and are refused for more classes (registry fact `binary`). A prediction is the arg-max class; for two classes that is `p(class 1) > 0.5`,
the threshold Keras' BinaryAccuracy uses during training.

`confusion` and `per_class` are artifacts, not numbers for metrics.json: the evaluation
stage writes them as JSON and draws them.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning


def predicted(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.arange(proba.shape[1])


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(sk.accuracy_score(y, predicted(proba)))


def _prf(kind, average):
    def metric(y: np.ndarray, proba: np.ndarray) -> float:
        return float(kind(y, predicted(proba), labels=_labels(proba), average=average, zero_division=0))

    metric.__name__ = f"{kind.__name__.removesuffix('_score')}_{average}"
    return metric


precision_macro = _prf(sk.precision_score, "macro")
precision_micro = _prf(sk.precision_score, "micro")
precision_weighted = _prf(sk.precision_score, "weighted")
recall_macro = _prf(sk.recall_score, "macro")
recall_micro = _prf(sk.recall_score, "micro")
recall_weighted = _prf(sk.recall_score, "weighted")
f1_macro = _prf(sk.f1_score, "macro")
f1_micro = _prf(sk.f1_score, "micro")
f1_weighted = _prf(sk.f1_score, "weighted")


def _positive(kind):
    def metric(y: np.ndarray, proba: np.ndarray) -> float:
        """Of the positive class (index 1) of two classes, as scikit-learn's default
        (`average="binary"`); 0 where there is nothing to divide by."""
        if proba.shape[1] != 2:
            raise ValueError(f"{metric.__name__} scores the positive class of two classes; "
                             f"the output has {proba.shape[1]}")
        return float(kind(y, predicted(proba), pos_label=1, average="binary", zero_division=0))

    metric.__name__ = kind.__name__.removesuffix("_score")
    return metric


precision = _positive(sk.precision_score)
recall = _positive(sk.recall_score)
f1 = _positive(sk.f1_score)


def balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """The mean of each class's recall, over the classes present in the labels (scikit-learn's);
    chance level is 1/K however unbalanced the classes are."""
    with warnings.catch_warnings():
        # A predicted class absent from the labels: scikit-learn warns and leaves it out.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        return float(sk.balanced_accuracy_score(y, predicted(proba)))


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: AUC of class 1's probability. Multiclass: one-vs-rest, macro averaged.
    NaN when a class the average needs is absent from the labels (AUC is undefined)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if proba.shape[1] == 2:
            return float(sk.roc_auc_score(y, proba[:, 1]))
        return float(sk.roc_auc_score(y, proba, multi_class="ovr", labels=_labels(proba)))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    with warnings.catch_warnings():
        # A float32 softmax sums to 1 within ~1e-7, not within the 1.5e-8 scikit-learn
        # checks for float64; the probabilities are used as they are, not renormalized.
        warnings.filterwarnings("ignore", "The y_prob values do not sum to one", UserWarning)
        return float(sk.log_loss(y, proba, labels=_labels(proba)))


def _top_k(k: int):
    def metric(y: np.ndarray, proba: np.ndarray) -> float:
        """The fraction of examples whose class is among the k most probable."""
        with warnings.catch_warnings():
            # k >= K: every example is a hit; scikit-learn warns, the answer (1.0) is right.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            # scikit-learn takes one score column for two classes.
            scores = proba[:, 1] if proba.shape[1] == 2 else proba
            return float(sk.top_k_accuracy_score(y, scores, k=k, labels=_labels(proba)))

    metric.__name__ = f"top_{k}_accuracy"
    return metric


top_3_accuracy = _top_k(3)
top_5_accuracy = _top_k(5)


# Artifacts ----------------------------------------------------------------------------


def confusion(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """K × K counts: row = true class, column = predicted class."""
    k = proba.shape[1]
    counts = np.bincount(np.asarray(y, dtype=np.int64) * k + predicted(proba), minlength=k * k)
    return counts.reshape(k, k)


def normalized(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall of each class on the diagonal); a class
    absent from the labels keeps a row of zeros."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


def per_class(counts: np.ndarray, class_names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support of each class from a confusion matrix; 0 where
    a ratio has nothing to divide by (scikit-learn's zero_division=0)."""
    true_positive = np.diag(counts).astype(np.float64)
    predicted_count = counts.sum(axis=0)
    support = counts.sum(axis=1)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros(len(a)), where=b > 0)

    precision = ratio(true_positive, predicted_count)
    recall = ratio(true_positive, support)
    f1 = ratio(2 * true_positive, predicted_count + support)
    return [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]
