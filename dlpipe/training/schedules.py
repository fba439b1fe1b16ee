"""Learning-rate schedules as Keras `LearningRateSchedule`s: the optimizer holds the rate.

`learning_rate(base, schedule, epochs, steps_per_epoch)` turns the spec's `training.schedule`,
written in epochs, into what an optimizer is given: a float, or a schedule of the optimizer's
step counter. The k-th step (0-based) of epoch e is step e × steps_per_epoch + k, so epoch
lengths become step counts once steps_per_epoch is known, at train time. The counter is the
optimizer's `iterations`, one of its variables: a checkpoint restores it, and a resumed run
continues the rate exactly where the interrupted one stopped. Nothing else sets the rate,
except reduce-on-plateau between epochs.

Keras's own schedules where they mean what the spec says: `ExponentialDecay` (types step and
exponential), `CosineDecay` and `CosineDecayRestarts` (cosine). Ours where Keras has none,
written with keras.ops so that they run on every backend: `Warmup` (a linear ramp in front of
any schedule; Keras has one inside CosineDecay only), `Piecewise` (the rate changes *at* each
boundary; Keras's PiecewiseConstantDecay changes one step later), `PlateauRate`, the
constant that reduce-on-plateau lowers, and `FineTuneRate` (a backbone's fine-tuning factor
from the first unfrozen epoch on). They are registered as `dlpipe>…`, so a compiled
model.keras holding them loads in a fresh process once this module is imported
(dlpipe/modelfile.py does).

Reduce-on-plateau reacts to a metric, so it keeps state (`Plateau`, saved in checkpoints);
dlpipe.training.callbacks.ReduceOnPlateau updates it after each epoch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
from keras import ops

Schedule = keras.optimizers.schedules.LearningRateSchedule


def learning_rate(base: float, schedule, epochs: int, steps_per_epoch: int) -> float | Schedule:
    """The optimizer's learning rate for `training.schedule` (a spec model, or None for a
    constant `base`), over `epochs` epochs of `steps_per_epoch` optimizer steps."""
    if schedule is None:
        return base
    n = steps_per_epoch
    warmup = schedule.warmup_epochs
    after = _after_warmup(base, schedule, max(epochs - warmup, 1e-9), n)
    if warmup > 0:
        return Warmup(base, warmup * n, schedule.warmup_start, after)
    return after


def _after_warmup(base: float, schedule, remaining: float, n: int) -> float | Schedule:
    """The schedule whose step 0 is the first step after the warmup."""
    kind = schedule.type
    if kind == "constant":
        return base
    if kind == "reduce_on_plateau":
        return PlateauRate(base)
    if kind == "step":
        return keras.optimizers.schedules.ExponentialDecay(base, schedule.every * n, schedule.factor, staircase=True)
    if kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(base, n, schedule.rate, staircase=schedule.staircase)
    if kind == "piecewise":
        return Piecewise([b * n for b in schedule.boundaries], [base, *(base * f for f in schedule.factors)])
    if kind == "cosine":
        length = (schedule.decay_epochs or remaining) * n
        if schedule.restarts is None:
            return keras.optimizers.schedules.CosineDecay(base, length, alpha=schedule.min_factor)
        return keras.optimizers.schedules.CosineDecayRestarts(
            base, length, t_mul=schedule.restarts.period_multiplier, m_mul=schedule.restarts.peak_multiplier,
            alpha=schedule.min_factor)
    raise ValueError(f"unknown schedule type {kind!r}")  # the spec layer prevents this


def plateau_rates(rate) -> list[PlateauRate]:
    """The PlateauRate inside an optimizer's rate, if any (as a list, for callers with several)."""
    if isinstance(rate, Warmup):
        rate = rate.after
    return [rate] if isinstance(rate, PlateauRate) else []


def _value(rate, step):
    return rate(step) if isinstance(rate, Schedule) else ops.convert_to_tensor(rate, "float32")


def _serialize(rate):
    return keras.optimizers.schedules.serialize(rate) if isinstance(rate, Schedule) else rate


def _deserialize(rate):
    return keras.optimizers.schedules.deserialize(rate) if isinstance(rate, dict) else rate


@keras.saving.register_keras_serializable(package="dlpipe")
class Warmup(Schedule):
    """From `start` × base up to base, linearly over `steps` steps (fractions allowed); then
    `after` (a schedule or a constant), counted from the end of the warmup."""

    def __init__(self, base: float, steps: float, start: float, after):
        self.base, self.steps, self.start, self.after = float(base), float(steps), float(start), after

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.base * (self.start + (1.0 - self.start) * step / self.steps)
        later = _value(self.after, ops.maximum(step - self.steps, 0.0))
        return ops.where(step < self.steps, warm, later)

    def get_config(self):
        return {"base": self.base, "steps": self.steps, "start": self.start, "after": _serialize(self.after)}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "after": _deserialize(config["after"])})


@keras.saving.register_keras_serializable(package="dlpipe")
class Piecewise(Schedule):
    """values[0] before boundaries[0], values[i + 1] from boundaries[i] on (steps)."""

    def __init__(self, boundaries: list[float], values: list[float]):
        self.boundaries, self.values = [float(b) for b in boundaries], [float(v) for v in values]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        passed = ops.sum(ops.cast(ops.greater_equal(step, ops.convert_to_tensor(self.boundaries, "float32")),
                                  "int32"))
        return ops.take(ops.convert_to_tensor(self.values, "float32"), passed)

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


@keras.saving.register_keras_serializable(package="dlpipe")
class PlateauRate(Schedule):
    """base × `scale`, a variable that reduce-on-plateau lowers between epochs (and a resume
    sets back from the checkpoint's plateau state)."""

    def __init__(self, base: float, scale: float = 1.0):
        self.base = float(base)
        self.scale = keras.Variable(scale, dtype="float32", trainable=False, name="plateau_scale")

    def __call__(self, step):
        return self.base * ops.convert_to_tensor(self.scale)

    def get_config(self):
        return {"base": self.base, "scale": float(ops.convert_to_numpy(self.scale))}


@keras.saving.register_keras_serializable(package="dlpipe")
class FineTuneRate(Schedule):
    """`before` (a schedule or a constant) until step `boundary`, then `factor` times it: the
    learning-rate factor of a backbone's fine-tuning epochs (dlpipe/training/finetune.py).
    A function of the step counter, so a resumed run continues it exactly."""

    def __init__(self, before, boundary: float, factor: float):
        self.before, self.boundary, self.factor = before, float(boundary), float(factor)

    def __call__(self, step):
        rate = _value(self.before, step)
        return ops.where(ops.cast(step, "float32") >= self.boundary, rate * self.factor, rate)

    def get_config(self):
        return {"before": _serialize(self.before), "boundary": self.boundary, "factor": self.factor}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "before": _deserialize(config["before"])})


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
