"""Every registered classification metric against scikit-learn, called the plain way, on
random cases: binary (sigmoid column or two softmax columns) and multiclass, with classes
absent from the labels or from the predictions, ties and tiny splits; and on multi-label
cases, each metric whose registry entry says it scores them (the others refuse them).

A registered metric named after scikit-learn's `<name>_score` needs no line here: it is
compared with that function called on the predicted classes, scikit-learn's defaults kept
(for two classes, precision, recall and f1 of class 1)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from dlpipe import registry
from dlpipe.metrics.classification import confusion, normalized, per_class
from dlpipe.metrics.evaluate import multi_label_score, scores

N_CASES = 240
# scikit-learn spends milliseconds validating each call: every 7th case runs in the fast
# suite (all kinds of case are among them), all 240 with the slow ones.
CASES = [pytest.param(seed, marks=() if seed % 7 == 0 else pytest.mark.slow) for seed in range(N_CASES)]


def case(seed: int):
    """(labels, model output as Keras gives it, number of classes, what is special)."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([2, 2, 3, 4, 5, 7, 10]))
    n = int(rng.integers(2, 120))
    kind = ["plain", "absent_label", "never_predicted", "ties", "confident"][seed % 5]
    y = rng.integers(0, k, n)
    logits = rng.normal(0, rng.uniform(0.3, 3), (n, k)) + 2.0 * np.eye(k)[y] * rng.uniform(0, 2)
    if kind == "absent_label" and k > 2:
        y[y == k - 1] = 0  # the last class never occurs in the labels
    if kind == "never_predicted":
        logits[:, int(rng.integers(0, k))] -= 50  # one class is never the arg-max
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    if kind == "ties":
        proba = np.round(proba * 4) / 4 + 1e-9  # many equal values, rows still sum to ~1
        proba /= proba.sum(axis=1, keepdims=True)
    if kind == "confident":
        proba = np.clip(proba ** 4, 1e-12, None)
        proba /= proba.sum(axis=1, keepdims=True)
    output = proba.astype(np.float32)
    if k == 2 and seed % 2:  # a sigmoid head: one column, p(class 1)
        output = output[:, 1:]
    return y, output, k, kind


def reference(y, output, k) -> dict[str, float]:
    """scikit-learn, from the raw output: the prediction is p > 0.5 for a sigmoid column
    (Keras' BinaryAccuracy), the first most probable class otherwise."""
    labels = np.arange(k)
    output = np.asarray(output, dtype=np.float64)
    sigmoid = output.shape[1] == 1
    predicted = (output[:, 0] > 0.5).astype(int) if sigmoid else output.argmax(axis=1)
    positive = output[:, 0] if sigmoid else output[:, 1] if k == 2 else None

    def prf(fn, average):
        return fn(y, predicted, labels=labels, average=average, zero_division=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc = sk.roc_auc_score(y, positive) if k == 2 else sk.roc_auc_score(y, output, multi_class="ovr", labels=labels)
        top = {f"top_{t}_accuracy": sk.top_k_accuracy_score(y, positive if k == 2 else output, k=t, labels=labels)
               for t in (3, 5)}
        loss = sk.log_loss(y, positive if sigmoid else output, labels=labels)
        named = {
            "accuracy": sk.accuracy_score(y, predicted),
            **{f"{name}_{average}": prf(fn, average)
               for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score))
               for average in ("macro", "micro", "weighted")},
            "roc_auc": auc,
            "log_loss": loss,
            **top,
        }
        for name in metric_names(k):
            if name not in named:
                named[name] = getattr(sk, f"{name}_score")(y, predicted)
    return named


def metric_names(k: int) -> list[str]:
    """The registered classification metrics that score k classes (binary ones: k == 2)."""
    kind = "metric:classification"
    return [name for name in registry.names(kind) if k == 2 or not registry.entry(kind, name).binary]


def test_every_registered_metric_has_a_reference():
    seen = set()
    for seed in range(40):
        y, output, k, _ = case(seed)
        assert set(reference(y, output, k)) == set(metric_names(k))
        seen.add(k == 2)
    assert seen == {True, False} and metric_names(2) == list(registry.names("metric:classification"))


def test_binary_metrics_refuse_more_than_two_classes():
    y, output, k, _ = next(c for c in map(case, range(N_CASES)) if c[2] > 2)
    binary = set(registry.names("metric:classification")) - set(metric_names(k))
    assert k > 2 and binary >= {"precision", "recall", "f1"}
    for name in binary:
        with pytest.raises(ValueError, match=f"{name} scores the positive class of two classes; the output has {k}"):
            scores("classification", [name], y, output, k)


def test_undefined_roc_auc_is_nan_like_scikit_learn():
    """A class absent from the labels: one-vs-rest AUC is undefined for it; both say NaN."""
    y, output, k, kind = case(6)
    assert kind == "absent_label" and k > 2 and len(np.unique(y)) < k
    assert math.isnan(reference(y, output, k)["roc_auc"])
    assert math.isnan(scores("classification", ["roc_auc"], y, output, k)["roc_auc"])


@pytest.mark.parametrize("seed", CASES)
def test_equals_scikit_learn(seed):
    y, output, k, _ = case(seed)
    expected = reference(y, output, k)
    ours = scores("classification", metric_names(k), y, output, k)
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(ours[name]), name
        else:
            assert ours[name] == pytest.approx(value, abs=1e-9, rel=1e-9), name


def test_cases_cover_the_hard_parts():
    cases = [case(seed) for seed in range(N_CASES)]
    multiclass = [(y, o, k) for y, o, k, _ in cases if k > 2]
    assert sum(len(np.unique(y)) < k for y, _, k in multiclass) >= 40  # a class absent from the labels
    assert sum(len(np.unique(o.argmax(axis=1))) < k for _, o, k in multiclass) >= 40  # absent from predictions
    assert sum(o.shape[1] == 1 for _, o, _, _ in cases) >= 30  # sigmoid heads


@pytest.mark.parametrize("seed", range(0, N_CASES, 6))
def test_confusion_and_per_class_equal_scikit_learn(seed):
    y, output, k, _ = case(seed)
    proba = np.asarray(output, dtype=np.float64)
    if proba.shape[1] == 1:
        proba = np.concatenate([1 - proba, proba], axis=1)
    predicted = proba.argmax(axis=1)
    counts = confusion(y, proba)
    np.testing.assert_array_equal(counts, sk.confusion_matrix(y, predicted, labels=np.arange(k)))
    np.testing.assert_allclose(normalized(counts), np.nan_to_num(
        sk.confusion_matrix(y, predicted, labels=np.arange(k), normalize="true")), atol=1e-12)
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        y, predicted, labels=np.arange(k), zero_division=0)
    rows = per_class(counts, [f"c{i}" for i in range(k)])
    assert [r["class"] for r in rows] == [f"c{i}" for i in range(k)]
    np.testing.assert_allclose([r["precision"] for r in rows], precision, atol=1e-12)
    np.testing.assert_allclose([r["recall"] for r in rows], recall, atol=1e-12)
    np.testing.assert_allclose([r["f1"] for r in rows], f1, atol=1e-12)
    assert [r["support"] for r in rows] == support.tolist()


def test_hand_computed_case():
    """3 classes, class 2 never predicted and never true: macro averages include its zeros."""
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0]])
    got = scores("classification", ["accuracy", "precision_macro", "recall_macro", "f1_micro"], y, proba, 3)
    assert got == pytest.approx({"accuracy": 0.5, "precision_macro": 1 / 3, "recall_macro": 1 / 3, "f1_micro": 0.5})
    assert confusion(y, proba).tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert normalized(confusion(y, proba)).tolist() == [[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 0]]


# Multi-label targets: N × K indicators against K sigmoid outputs ---------------------------


def multi_label_case(seed: int):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 80)), int(rng.integers(2, 6))
    y = (rng.random((n, k)) < rng.uniform(0.1, 0.9, k)).astype(np.int64)
    if seed % 3 == 0:
        y[:, 0] = 1  # a class every example has: its ROC AUC is undefined
    proba = 1 / (1 + np.exp(-(rng.normal(0, 1.5, (n, k)) + 2 * (y - 0.5) * rng.uniform(0, 2))))
    return y, proba.astype(np.float32)


def multi_label_reference(name: str, y: np.ndarray, proba: np.ndarray) -> float:
    predicted = (proba >= 0.5).astype(int)
    if name == "accuracy":  # exact match of the whole set
        return sk.accuracy_score(y, predicted)
    if name == "roc_auc":
        return float("nan") if (y.min(axis=0) == y.max(axis=0)).any() else sk.roc_auc_score(y, proba)
    if name == "log_loss":
        return np.mean([sk.log_loss(y[:, j], proba[:, j], labels=[0, 1]) for j in range(y.shape[1])])
    kind, average = name.rsplit("_", 1)
    return getattr(sk, f"{kind}_score")(y, predicted, average=average, zero_division=0)


@pytest.mark.parametrize("seed", range(12))
def test_multi_label_metrics_are_those_the_registry_says(seed):
    """The registry fact `targets` and what evaluate.py computes agree both ways."""
    y, proba = multi_label_case(seed)
    kind = "metric:classification"
    for name in registry.names(kind):
        if "multi_label" in registry.entry(kind, name).targets:
            ours = scores("classification", [name], y, proba, y.shape[1], multi_label=True)[name]
            expected = multi_label_reference(name, y, proba)
            assert (math.isnan(ours) and math.isnan(expected)) or ours == pytest.approx(expected, abs=1e-9), name
        else:
            with pytest.raises(ValueError, match=f"{name} does not score multi-label targets"):
                multi_label_score(name, y, proba)
