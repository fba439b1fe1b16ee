"""Spec keys every task reads, and the honoured-key lists the supervised tasks share."""

from __future__ import annotations

EVERY_TASK = ("version", "name", "description", "task", "seed", "allow_unsafe_deserialization", "tracking")
"""Keys of the spec itself: every pipeline reads them (or they only name and describe the run).
`tracking` is read by the runner (dlpipe/tracking.py) around any pipeline, and its epoch
logger rides on the callbacks every pipeline passes to training."""

CLASS_LOSSES = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
                "binary_focal_crossentropy", "categorical_focal_crossentropy")
VALUE_LOSSES = ("mse", "mae", "huber", "log_cosh")

SUPERVISED_TRAINING = ("training.epochs", "training.batch_size", "training.optimizer", "training.schedule",
                       "training.loss", "training.sample_weight", "training.early_stopping",
                       "training.checkpoints", "training.progress", "training.tensorboard", "training.precision",
                       "training.jit_compile", "training.deterministic", "training.strategy")
"""What training/fit.py reads (the supervised, embedding and detection pipelines train through it)."""

SUPERVISED_EXPORT = ("export.formats", "export.verify", "export.tolerance", "export.samples", "export.tflite",
                     "export.latency_calls", "export.intended_use")
"""What exporters/stage.py reads."""

SUPERVISED_DATA = ("data.source", "data.features", "data.split", "data.shuffle_buffer")

ALL_COMMANDS = frozenset({"evaluate", "export", "predict", "tune", "deep", "resume", "rerun"})
"""The commands every supervised task supports; `explain` is added by the tasks it covers."""
