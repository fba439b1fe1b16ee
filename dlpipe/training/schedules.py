"""Learning-rate schedules as plain functions of the position in training.

The position `t` counts epochs from the start of training, with fractions within an epoch:
the k-th step (0-based) of epoch e runs at t = e + k / steps_per_epoch. A schedule gives a
factor in (0, ∞) that multiplies the optimizer's `learning_rate`. Being a pure function of
`t`, the rate of a resumed run is exactly the rate of an uninterrupted one.

Reduce-on-plateau is the exception: it reacts to a metric, so it keeps state (`Plateau`),
which checkpoints save. Nothing here imports TensorFlow: the schedules are tested on their
own, and `dlpipe.training.callbacks.LearningRateControl` applies them to an optimizer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def factor(schedule, t: float, epochs: int) -> float:
    """The multiple of learning_rate at position `t` (epochs) of a run of `epochs` epochs.

    `schedule` is a spec model (dlpipe.spec.training) or None for a constant rate. A
    reduce-on-plateau schedule contributes only its warmup here; `Plateau` does the rest.
    """
    if schedule is None:
        return 1.0
    warmup = schedule.warmup_epochs
    if warmup > 0 and t < warmup:
        return schedule.warmup_start + (1.0 - schedule.warmup_start) * t / warmup
    s = max(0.0, t - warmup)  # the schedule's own clock starts after the warmup
    # Positions are sums of fractions: nudge them so that step k of epoch e counts as e + k/n.
    tick = s + 1e-9
    kind = schedule.type
    if kind in ("constant", "reduce_on_plateau"):
        return 1.0
    if kind == "step":
        return schedule.factor ** math.floor(tick / schedule.every)
    if kind == "piecewise":
        value = 1.0
        for boundary, f in zip(schedule.boundaries, schedule.factors):
            if tick >= boundary:
                value = f
        return value
    if kind == "exponential":
        return schedule.rate ** (math.floor(tick) if schedule.staircase else s)
    if kind == "cosine":
        return _cosine(schedule, s, max(epochs - warmup, 1e-9))
    raise ValueError(f"unknown schedule type {kind!r}")  # the spec layer prevents this


def _cosine(schedule, s: float, remaining: float) -> float:
    length = schedule.decay_epochs or remaining
    peak = 1.0
    if schedule.restarts is not None:
        # SGDR: cycle i lasts length × period_multiplier^i and peaks at peak_multiplier^i.
        while s >= length - 1e-9:
            s -= length
            length *= schedule.restarts.period_multiplier
            peak *= schedule.restarts.peak_multiplier
    elif s >= length:
        return schedule.min_factor
    cosine = 0.5 * peak * (1.0 + math.cos(math.pi * s / length))
    return schedule.min_factor + (1.0 - schedule.min_factor) * cosine


@dataclass
class Plateau:
    """Reduce-on-plateau's state, updated once per epoch with the monitored value."""

    multiplier: float = 1.0
    best: float | None = None
    wait: int = 0
    cooldown_left: int = 0

    def update(self, schedule, value: float) -> bool:
        """Take one epoch's `value`; True when the rate was just reduced."""
        if not math.isfinite(value):
            return False
        maximize = schedule.mode == "max" or (schedule.mode == "auto" and higher_is_better(schedule.monitor))
        improved = self.best is None or (value > self.best + schedule.min_delta if maximize
                                         else value < self.best - schedule.min_delta)
        if improved:
            self.best = value
            self.wait = 0
        if self.cooldown_left > 0:
            # Epochs right after a reduction do not count towards the next one.
            self.cooldown_left -= 1
            self.wait = 0
            return False
        if improved:
            return False
        self.wait += 1
        if self.wait >= schedule.patience:
            reduced = max(self.multiplier * schedule.factor, schedule.min_factor)
            self.wait = 0
            self.cooldown_left = schedule.cooldown
            if reduced < self.multiplier:
                self.multiplier = reduced
                return True
        return False

    def state(self) -> dict:
        return asdict(self)


def higher_is_better(monitor: str) -> bool:
    name = monitor.removeprefix("val_")
    return name in ("accuracy", "auc", "precision", "recall") or name.startswith(("acc", "f1"))
