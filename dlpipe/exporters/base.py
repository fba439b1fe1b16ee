"""What an export format provides: a writer and a way to run what it wrote with the format's
own runtime. What is known of it before importing it (its default tolerance, the features it
cannot take, its extra) is its registry entry's (dlpipe/registry.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Predict = Callable[[dict[str, np.ndarray]], "np.ndarray | dict[str, np.ndarray]"]
"""inputs by name → the output (an array), or the outputs by name of a model with several."""


@dataclass(frozen=True)
class Artifact:
    """One file or folder an exporter wrote, verified on its own."""

    key: str
    """Its entry in verification.json and the model card: the format's name, or
    `tflite/<mode>` for each TFLite quantization mode."""
    path: Path
    notes: dict[str, Any] = field(default_factory=dict)
    """What a user of this artifact must know (its quantization, a pre-step), for the card."""


@dataclass
class ExportJob:
    """What a writer may need beyond the model."""

    options: Any
    """The spec's `export` section (dlpipe.spec.export.Export)."""
    representative: dict[str, np.ndarray]
    """Training-split examples by input name (int8 calibration); empty where no format that
    needs them can be chosen (a detector, a generator)."""
    interface: dict[str, Any]
    """Inputs, output and class names, as in the model card (dlpipe/exporters/model_card.py)."""
    keras_file: Path | None = None
    """This very model already saved as a .keras file (the run's model.keras), or None. The
    keras format copies it rather than serializing the model again (a 30-input tabular
    model takes about 0.1 s to save)."""
    _saved: dict[tuple[int, bool], tuple[Any, Path]] = field(default_factory=dict, repr=False)

    def saved_model(self, model, static: bool = False) -> Path:
        """`model` as a SavedModel in scratch space, exported once and shared by every format
        made from it (saved_model, onnx, tflite): tracing is most of an export's time.
        `static` (JAX backend only; ignored on TensorFlow): the forward pass with the weights as
        constants and no state written back, as TFLite needs — Keras' JAX export otherwise
        writes every non-trainable variable back after each call, a dropout layer's uint32
        seed among them, which TFLite cannot hold."""
        import keras

        static = static and keras.backend.backend() == "jax"
        key = (id(model), static)
        if key not in self._saved:
            path = Path(tempfile.mkdtemp(prefix="dlpipe-export-")) / "saved_model"
            if keras.backend.backend() == "torch":  # Keras' torch export needs torch_xla: TensorFlow writes it
                from dlpipe.exporters.tensorflow_process import export_saved_model

                export_saved_model(model, path)
            else:
                model.export(str(path), format="tf_saved_model", verbose=False,
                             **({"is_static": True} if static else {}))
            self._saved[key] = (model, path)  # holding the model keeps its id unique
        return self._saved[key][1]

    def cleanup(self) -> None:
        for _, path in self._saved.values():
            shutil.rmtree(path.parent, ignore_errors=True)
        self._saved.clear()


@dataclass(frozen=True)
class ExportFormat:
    name: str
    write: Callable[[Any, Path, ExportJob], list[Artifact]]
    """write(model, directory, job) → the artifacts; the directory is replaced atomically."""
    load: Callable[[Path], Predict]
    """load(path) → predict(inputs by name) using the format's own runtime, not the model."""


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """A fresh temporary folder path beside `target` (not created); if the block succeeds it
    takes `target`'s place, replacing an earlier export there."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old.exists():
                os.replace(old, target)  # keep the earlier export rather than none
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def as_text(values: np.ndarray) -> np.ndarray:
    """A text column as a numpy array of Python str (what tf.constant and onnxruntime take)."""
    return np.asarray(values).astype(str).astype(object)
