"""Which tf.distribute strategy a run uses, and who in a cluster writes the run directory.

    none          one device, Keras `fit`
    mirrored      one process, every local GPU (or every logical CPU device): Keras `fit`
    multi_worker  one process per worker, described by TF_CONFIG: dlpipe's own loop
                  (dlpipe/training/multi_worker.py), because Keras 3 `fit` fails under
                  MultiWorkerMirroredStrategy

`training.batch_size` is the global batch: each of the N replicas computes 1/N of it.

Reading TF_CONFIG needs no TensorFlow, so the runner can tell the chief from the other
workers before any stage runs: only the chief writes the run directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dlpipe.errors import DlpipeError

STRATEGIES = ("none", "mirrored", "multi_worker")


@dataclass(frozen=True)
class Cluster:
    """This process's place in a TF_CONFIG cluster (a lone process when there is none)."""

    tasks: int = 1
    """Processes that train together (chief and workers)."""
    task_type: str = "worker"
    index: int = 0
    has_chief: bool = False

    @property
    def chief(self) -> bool:
        """The task that writes: `chief` if the cluster has one, else worker 0."""
        return self.task_type == "chief" or (not self.has_chief and self.task_type == "worker" and self.index == 0)

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.index}"


def cluster() -> Cluster:
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return Cluster()
    try:
        config = json.loads(raw)
        spec = config.get("cluster", {})
        task = config.get("task", {})
        tasks = sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))
        return Cluster(tasks=max(tasks, 1), task_type=str(task.get("type", "worker")),
                       index=int(task.get("index", 0)), has_chief=bool(spec.get("chief")))
    except (ValueError, AttributeError, TypeError) as err:
        raise DlpipeError(f"TF_CONFIG: not a valid cluster description ({err}); expected JSON like "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None


def resolve(name: str, gpus: int | None = None) -> str:
    """The strategy `training.strategy: name` means here (`auto` resolved)."""
    if name != "auto":
        return name
    from dlpipe.backend import current

    if current() not in (None, "tensorflow"):  # tf.distribute is TensorFlow's: one device elsewhere
        return "none"
    if cluster().tasks > 1:
        return "multi_worker"
    if gpus is None:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
    return "mirrored" if gpus > 1 else "none"


def writes_run_directory(name: str) -> bool:
    """False for the non-chief workers of a multi-worker run (they only train)."""
    here = cluster()
    multi = name == "multi_worker" or (name == "auto" and here.tasks > 1)
    return not multi or here.chief


_created: dict[str, object] = {}


def strategy(kind: str):
    """The process's strategy of `kind` (None for `none`), created once: a process can
    join a cluster only once, and before TensorFlow starts its runtime."""
    if kind == "none":
        return None
    if kind not in _created:
        import tensorflow as tf

        if kind == "multi_worker":
            _created[kind] = tf.distribute.MultiWorkerMirroredStrategy()
        elif kind == "mirrored":
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            _created[kind] = tf.distribute.MirroredStrategy(devices=devices)
        else:
            raise ValueError(f"unknown strategy {kind!r}")
    return _created[kind]


def replicate(model, strategy, compile_replica):
    """A copy of `model` whose variables live under `strategy`, compiled by
    `compile_replica(copy)` and holding the same values (dropout RNG state included)."""
    from dlpipe.training.checkpoints import copy_variables

    with strategy.scope():
        # From the config: keras.models.clone_model would also compile the copy from the
        # model's compile config, which cannot rebuild a task's own loss (the detector's is
        # a closure over its weights); compile_replica compiles it as the model was.
        replica = model.__class__.from_config(model.get_config())
        compile_replica(replica)
        # Optimizer variables must be made under the strategy too (a resume assigns them
        # before training would have built them).
        replica.optimizer.build(replica.trainable_variables)
    copy_variables(model, replica)
    return replica
