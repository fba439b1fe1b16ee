"""Checkpoints: everything a run needs to continue exactly where it stopped.

RUN_DIR/checkpoints/ holds, after every epoch:

    last.npz   the state after the latest epoch: what `dlpipe run --resume` continues from
    best.npz   the state after the best epoch by `training.checkpoints.monitor`
    last.json / best.json   a readable summary (epoch, logs) of each, written after it

A checkpoint is one NumPy archive, written to a temporary name and renamed into place, so
a run killed at any moment leaves the previous checkpoint whole. It holds every model
variable (weights, batch-norm statistics, the dropout RNG state), every variable of each
optimizer (a GAN has two; the step count, which the learning-rate schedule reads, and the
moments), and a JSON record: epochs completed, the history so far, and the state of the
stateful callbacks (reduce-on-plateau, early stopping). The data order needs no state: it
is a function of (seed, epoch) (dlpipe/training/inputs.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.errors import StageError
from dlpipe.rundir import atomic_path, atomic_write_json

FORMAT = 1


@dataclass
class Checkpoint:
    record: dict[str, Any]
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    extra: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return int(self.record["epoch"])

    @property
    def finished(self) -> bool:
        """Training ended (all epochs, early stopping, or a callback's stop)."""
        return bool(self.record.get("finished"))


def _optimizer_variables(model) -> list:
    """Every built optimizer's variables, in order (a GAN has two optimizers)."""
    from dlpipe.training.optimizers import optimizers

    return [v for optimizer, _ in optimizers(model) if optimizer.built for v in optimizer.variables]


def capture(model, record: dict[str, Any], extra: dict[str, list[np.ndarray]] | None = None) -> Checkpoint:
    return Checkpoint(dict(record, format=FORMAT), [np.asarray(v.numpy()) for v in model.variables],
                      [np.asarray(v.numpy()) for v in _optimizer_variables(model)], dict(extra or {}))


def write(path: Path, checkpoint: Checkpoint, summary: dict[str, Any] | None = None) -> None:
    arrays = {"record": np.array(json.dumps(checkpoint.record, sort_keys=True, allow_nan=True))}
    arrays.update({f"model/{i:05d}": a for i, a in enumerate(checkpoint.model)})
    arrays.update({f"optimizer/{i:05d}": a for i, a in enumerate(checkpoint.optimizer)})
    for name, values in checkpoint.extra.items():
        arrays.update({f"extra/{name}/{i:05d}": a for i, a in enumerate(values)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    # The summary follows the archive: a reader may see it one epoch behind, never ahead.
    # Not fsynced, like the archive it describes (a killed process loses neither: both are
    # renamed into place); an fsync per epoch cost 5-10 ms on a busy disk.
    atomic_write_json(path.with_suffix(".json"), {"file": path.name, **(summary or {}), "epoch": checkpoint.epoch,
                                                  "finished": checkpoint.finished}, durable=False)


def read(path: Path) -> Checkpoint:
    try:
        with np.load(path, allow_pickle=False) as archive:
            record = json.loads(str(archive["record"]))
            groups: dict[str, dict[str, np.ndarray]] = {}
            for key in archive.files:
                if key != "record":
                    group, _, index = key.rpartition("/")
                    groups.setdefault(group, {})[index] = archive[key]
    except (OSError, ValueError, KeyError) as err:
        raise StageError("train", f"{path}: cannot read the checkpoint: {err}") from None
    ordered = {group: [values[k] for k in sorted(values)] for group, values in groups.items()}
    extra = {g.removeprefix("extra/"): v for g, v in ordered.items() if g.startswith("extra/")}
    return Checkpoint(record, ordered.get("model", []), ordered.get("optimizer", []), extra)


def restore(model, checkpoint: Checkpoint, path: Path) -> None:
    """Load the checkpoint's variables into `model` and its (built) optimizers."""
    from dlpipe.training.optimizers import optimizers

    _assign(model.variables, checkpoint.model, path, "model")
    if checkpoint.optimizer:
        for optimizer, _ in optimizers(model):
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
        _assign(_optimizer_variables(model), checkpoint.optimizer, path, "optimizer")


def _assign(variables, values: list[np.ndarray], path: Path, what: str) -> None:
    shapes = [tuple(v.shape) for v in variables]
    saved = [tuple(a.shape) for a in values]
    if shapes != saved:
        raise StageError("train", f"{path}: the checkpoint's {what} state ({len(saved)} variables) does not "
                         f"match this model's ({len(shapes)}); was the spec changed since it was written?")
    for variable, value in zip(variables, values):
        variable.assign(value)


def copy_variables(source, target) -> None:
    """Copy model (and, where both are built alike, optimizer) variables between two models
    of the same architecture, e.g. a model and its replica under a distribution strategy."""
    for dst, src in zip(target.variables, source.variables, strict=True):
        dst.assign(src.numpy())
    if source.optimizer is not None and source.optimizer.built and target.optimizer is not None:
        if not target.optimizer.built:
            target.optimizer.build(target.trainable_variables)
        if len(target.optimizer.variables) == len(source.optimizer.variables):
            for dst, src in zip(target.optimizer.variables, source.optimizer.variables):
                dst.assign(src.numpy())
