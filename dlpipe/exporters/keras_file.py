"""`.keras`: the native Keras file, loaded back with safe mode on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe.exporters.base import ExportFormat
from dlpipe.rundir import atomic_path


def write(model, directory: Path) -> Path:
    target = directory / "model.keras"
    with atomic_path(target) as tmp:
        model.save(tmp)
    return target


def load(path: Path):
    import keras

    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    return lambda inputs: np.asarray(model.predict(inputs, verbose=0))


FORMAT = ExportFormat("keras", write, load)
