"""The Keras callback that feeds a trial's per-epoch value to Optuna's pruner."""

from __future__ import annotations

import math

import keras
import optuna


class ReportEpochs(keras.callbacks.Callback):
    """After each epoch: report `sign × logs[key]` as the trial's value at that step, and
    stop the trial (optuna.TrialPruned) when the pruner says so."""

    def __init__(self, trial: optuna.Trial, key: str, sign: float):
        super().__init__()
        self.trial, self.key, self.sign = trial, key, sign

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.key)
        if value is None or not math.isfinite(float(value)):
            return  # a NaN loss ends the run anyway (TerminateOnNaN)
        self.trial.report(self.sign * float(value), step=epoch + 1)
        if self.trial.should_prune():
            epochs = self.params.get("epochs", "?")
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch + 1} of {epochs}: {self.key} {float(value):.4g}")
