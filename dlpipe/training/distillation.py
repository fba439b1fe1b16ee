"""Knowledge distillation's loss, on targets that carry the teacher's outputs.

The student keeps its own output (class probabilities or values), so it is saved, evaluated
and exported as any model. What changes is its training target: each example's labels
followed by the teacher's outputs for that example, one row (`pack`). The loss splits that
row again by the width of the prediction (the teacher's outputs are as wide as the
student's, which dlpipe/distillation.py checks):

    loss = (1 - w) · hard(labels, student) + w · soft(teacher, student)

    softmax   soft = T² · KL(softmax(log p_teacher / T) ‖ softmax(log p_student / T)):
              log p equals the logits up to a constant per example, which the softmax
              removes, so the tempered distributions come from the probabilities themselves
    sigmoid   the same per unit, each a two-class distribution (logit = log p − log(1 − p)),
              averaged over the units (binary and multi-label classifiers)
    values    soft = mean squared difference to the teacher's values (regression)

T² keeps the soft gradients' size as T changes (Hinton, Vinyals and Dean, 2015). The
training metric reads the labels alone (`HardTargets`), so `accuracy` and `mae` in history.csv
mean what they mean without distillation; `loss` and `val_loss` are the distillation loss.
"""

from __future__ import annotations

import keras
import numpy as np

EPSILON = 1e-7
KINDS = ("softmax", "sigmoid", "values")


def pack(labels: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """One float32 row per example: its labels (class indices or values), then the teacher's
    outputs. Class indices are exact in float32 (below 2**24)."""
    labels = np.asarray(labels)
    return np.concatenate([labels.reshape(len(labels), -1).astype(np.float32),
                           np.asarray(teacher, np.float32).reshape(len(labels), -1)], axis=1)


def _log(p):
    return keras.ops.log(keras.ops.clip(p, EPSILON, 1.0 - EPSILON))


def soft_loss(kind: str, teacher, student, temperature: float):
    """Per example: how far the student's output is from the teacher's (see the module doc)."""
    ops = keras.ops
    if kind == "values":
        return ops.mean(ops.square(student - teacher), axis=-1)
    if kind == "softmax":
        target = ops.softmax(_log(teacher) / temperature, axis=-1)
        log_student = ops.log_softmax(_log(student) / temperature, axis=-1)
        log_target = ops.log_softmax(_log(teacher) / temperature, axis=-1)
        return ops.sum(target * (log_target - log_student), axis=-1) * temperature ** 2
    # sigmoid: each unit a Bernoulli; tempered through its logit
    t = ops.sigmoid((_log(teacher) - _log(1.0 - teacher)) / temperature)
    s = ops.sigmoid((_log(student) - _log(1.0 - student)) / temperature)
    t, s = ops.clip(t, EPSILON, 1.0 - EPSILON), ops.clip(s, EPSILON, 1.0 - EPSILON)
    kl = t * (ops.log(t) - ops.log(s)) + (1.0 - t) * (ops.log(1.0 - t) - ops.log(1.0 - s))
    return ops.mean(kl, axis=-1) * temperature ** 2


def _split(y_true, y_pred):
    """(labels, teacher outputs) of packed targets; the teacher's part is as wide as y_pred."""
    width = y_pred.shape[-1]
    return y_true[..., :-width], y_true[..., -width:]


@keras.saving.register_keras_serializable(package="dlpipe")
class Distillation(keras.losses.Loss):
    """(1 - soft_weight) · `hard` on the labels + soft_weight · the soft loss on the teacher's
    outputs, from packed targets (`pack`)."""

    def __init__(self, hard, kind: str, temperature: float, soft_weight: float,
                 reduction="sum_over_batch_size", name="distillation", dtype=None):
        hard = keras.losses.deserialize(hard) if isinstance(hard, dict) else hard
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        self.hard, self.kind = hard, kind
        self.temperature, self.soft_weight = float(temperature), float(soft_weight)

    def call(self, y_true, y_pred):
        labels, teacher = _split(keras.ops.cast(y_true, y_pred.dtype), y_pred)
        hard = self.hard.call(labels, y_pred)
        soft = soft_loss(self.kind, teacher, y_pred, self.temperature)
        return (1.0 - self.soft_weight) * hard + self.soft_weight * soft

    def get_config(self):
        return {**super().get_config(), "hard": keras.losses.serialize(self.hard), "kind": self.kind,
                "temperature": self.temperature, "soft_weight": self.soft_weight}


_METRIC_FUNCTIONS = {"accuracy": None, "mae": keras.metrics.mean_absolute_error,
                     "mse": keras.metrics.mean_squared_error}


@keras.saving.register_keras_serializable(package="dlpipe")
class HardTargets(keras.metrics.MeanMetricWrapper):
    """A per-example training metric (accuracy, binary or sparse; mae; mse) on the labels
    part of packed targets, under its usual name."""

    def __init__(self, metric: str, binary: bool = False, name=None, dtype=None):
        if metric not in _METRIC_FUNCTIONS:
            raise ValueError(f"metric: expected one of {', '.join(_METRIC_FUNCTIONS)}, got {metric!r}")
        inner = _METRIC_FUNCTIONS[metric] or (keras.metrics.binary_accuracy if binary
                                              else keras.metrics.sparse_categorical_accuracy)

        def on_labels(y_true, y_pred):
            labels, _ = _split(y_true, y_pred)
            return inner(labels, y_pred)

        super().__init__(fn=on_labels, name=name or metric, dtype=dtype)
        self.metric, self.binary = metric, bool(binary)

    def get_config(self):
        return {"metric": self.metric, "binary": self.binary, "name": self.name, "dtype": self.dtype}
