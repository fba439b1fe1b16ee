"""The callbacks of a dlpipe training run, for `fit` and for the multi-worker loop alike.

Each one whose behaviour depends on the past (reduce-on-plateau, early stopping, the
history) can hand out its state and take it back, so that a checkpoint
restores a run exactly where it stopped.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import keras
import numpy as np

from dlpipe.training import schedules


def _float(value) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class LearningRateLog(keras.callbacks.Callback):
    """Logs, as `learning_rate`, the rate the optimizer ran each epoch's first step at (its
    schedule, at the step counter when the epoch began)."""

    def __init__(self):
        super().__init__()
        self._rate = None

    def on_epoch_begin(self, epoch, logs=None):
        self._rate = _float(self.model.optimizer.learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._rate is not None:
            logs["learning_rate"] = self._rate


class TorchBatchSeed(keras.callbacks.Callback):
    """torch: seeds torch's global generator before each training step from (seed, epoch,
    step). Keras' torch backend draws an unseeded layer's randomness (a Dropout without `seed`)
    from that generator, which no checkpoint holds, and torch's DataLoader takes a draw from it
    whenever Keras starts iterating the input (once per run for a generator: in epoch 1 of a
    run, in the first resumed epoch of a resumed one). Seeded per step, a run resumed after
    epoch k draws what the uninterrupted run drew (JAX and TensorFlow keep it in the layers'
    seed state, which checkpoints hold)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed, self.epoch = seed, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        import torch

        torch.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, batch]).generate_state(1)[0]))


class ReduceOnPlateau(keras.callbacks.Callback):
    """Lowers the optimizers' `PlateauRate`s when `schedule.monitor` has not improved for
    `schedule.patience` epochs (counted once the warmup is over): the one learning-rate
    change not made by a schedule inside the optimizer, since it reacts to a metric."""

    def __init__(self, schedule, rates: list[schedules.PlateauRate]):
        super().__init__()
        self.schedule, self.rates = schedule, rates
        self.plateau = schedules.Plateau()

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.schedule.warmup_epochs:
            return
        value = (logs or {}).get(self.schedule.monitor)
        if value is not None and self.plateau.update(self.schedule, float(value)):
            self._apply()
            rate = self.rates[0].base * self.plateau.multiplier
            print(f"[dlpipe] epoch {epoch + 1}: {self.schedule.monitor} has not improved for "
                  f"{self.schedule.patience} epoch(s); learning rate × {self.schedule.factor:g} → "
                  f"{rate:.3g}", file=sys.stderr, flush=True)

    def _apply(self) -> None:
        for rate in self.rates:
            rate.scale.assign(self.plateau.multiplier)

    def get_state(self) -> dict:
        return {"plateau": self.plateau.state()}

    def set_state(self, state: dict) -> None:
        if state.get("plateau"):
            self.plateau = schedules.Plateau(**state["plateau"])
            self._apply()


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or infinite and remembers where."""

    def __init__(self):
        super().__init__()
        self.tripped: tuple[int, int, float] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.tripped is not None:
            return
        # `loss`, or each network's loss of a model that trains several (a GAN's d_loss, g_loss).
        for name, value in (logs or {}).items():
            if name == "loss" or name.endswith("_loss"):
                value = float(value)
                if not math.isfinite(value):
                    self.tripped = (self._epoch, batch, value)
                    self.model.stop_training = True
                    return


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping, whose counters and best weights survive a resume."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored: tuple[dict, list[np.ndarray] | None] | None = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._restored is not None:
            state, self.best_weights = self._restored
            self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
            self.best, self.best_epoch = state["best"], state["best_epoch"]

    def get_state(self) -> tuple[dict, list[np.ndarray] | None]:
        best = None if self.best is None else float(np.asarray(self.best))
        return ({"wait": int(self.wait), "stopped_epoch": int(self.stopped_epoch), "best": best,
                 "best_epoch": int(self.best_epoch)}, self.best_weights)

    def set_state(self, state: dict, best_weights: list[np.ndarray] | None) -> None:
        self._restored = (state, best_weights)


class HistoryRecorder(keras.callbacks.Callback):
    """Every epoch's logs as floats, including the epochs before a resume. Every list has a
    value per epoch: NaN where an epoch did not log the name (a FID computed every few epochs)."""

    def __init__(self, history: dict[str, list[float]] | None = None):
        super().__init__()
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        done = max((len(values) for values in self.history.values()), default=0)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, [math.nan] * done).append(float(value))
        for values in self.history.values():
            values.extend([math.nan] * (done + 1 - len(values)))


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard writer, logging the rate each epoch started with (as history.csv
    does) rather than the rate of its last step."""

    def _collect_learning_rate(self, logs):
        return logs if "learning_rate" in logs else super()._collect_learning_rate(logs)

    def on_train_batch_end(self, batch, logs=None):
        # Keras 3 writes every step's logs as `batch_*` scalars whatever `update_freq` says:
        # about 1 ms a step here, for curves the run does not report. Epoch scalars stay.
        pass


def writes_tensorboard(training) -> bool:
    """`training.tensorboard`: `auto` writes logs on the TensorFlow backend only (Keras writes
    them with TensorFlow's summary ops: on JAX that would import TensorFlow, about 5 s)."""
    if training.tensorboard == "auto":
        return keras.backend.backend() == "tensorflow"
    return bool(training.tensorboard)


def tensorboard(log_dir) -> keras.callbacks.Callback | None:
    """A TensorBoard callback writing to `log_dir`, or None (with a notice) without the package."""
    if importlib.util.find_spec("tensorboard") is None:
        print("[dlpipe] notice: TensorBoard logs skipped: the tensorboard package is not installed "
              "(pip install 'dlpipe[tensorboard]', or set training.tensorboard: false)", file=sys.stderr, flush=True)
        return None
    if keras.backend.backend() != "tensorflow":  # training.tensorboard: true on JAX: the one step that needs TF
        from dlpipe.backend_import import import_tensorflow

        import_tensorflow()
    # Event files are append-only streams, read while they grow: they are the one thing in a
    # run directory not written by atomic rename.
    return TensorBoard(log_dir=str(log_dir), write_graph=False, profile_batch=0)


class Checkpointer(keras.callbacks.Callback):
    """Writes checkpoints/last.npz after every epoch, best.npz when `monitor` improved, and
    last.npz once more when training ends (after early stopping restored the best weights)."""

    def __init__(self, directory, *, monitor: str, mode: str, epochs: int, recorder: HistoryRecorder,
                 guard: NanGuard, stateful: dict):
        super().__init__()
        self.directory, self.monitor, self.epochs = directory, monitor, epochs
        self.maximize = mode == "max" or (mode == "auto" and schedules.higher_is_better(monitor))
        self.recorder, self.guard, self.stateful = recorder, guard, stateful
        self.best: dict | None = None
        self.saved_epoch = 0
        """Epochs completed in the checkpoint last.npz holds now."""

    def restore(self, record: dict) -> None:
        self.best = record.get("best")
        self.saved_epoch = int(record["epoch"])

    def _record(self, epoch: int, finished: bool) -> tuple[dict, dict]:
        record = {"epoch": epoch, "epochs": self.epochs, "finished": finished, "history": self.recorder.history,
                  "best": self.best, "callbacks": {}}
        extra = {}
        for name, callback in self.stateful.items():
            state = callback.get_state()
            if isinstance(state, tuple):  # (record, arrays): early stopping's best weights
                state, arrays = state
                if arrays is not None:
                    extra[name] = arrays
            record["callbacks"][name] = state
        return record, extra

    def _write(self, names: tuple[str, ...], epoch: int, finished: bool, logs: dict) -> None:
        from dlpipe.training import checkpoints

        record, extra = self._record(epoch, finished)
        checkpoint = checkpoints.capture(self.model, record, extra)  # once, however many files
        for name in names:
            checkpoints.write(self.directory / f"{name}.npz", checkpoint,
                              {"logs": {k: float(v) for k, v in logs.items()}})

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.guard.tripped is not None or not math.isfinite(float(logs.get("loss", 0.0))):
            return
        value = logs.get(self.monitor)
        improved = value is not None and math.isfinite(float(value)) and (
            self.best is None or (float(value) > self.best["value"] if self.maximize else float(value) < self.best["value"]))
        if improved:
            self.best = {"monitor": self.monitor, "value": float(value), "epoch": epoch + 1}
        self._write(("last", "best") if improved else ("last",), epoch + 1, False, logs)
        self.saved_epoch = epoch + 1

    def on_train_end(self, logs=None):
        if self.guard.tripped is None:
            epochs_done = max((len(values) for values in self.recorder.history.values()), default=0)
            self._write(("last",), epochs_done, True, logs or {})
