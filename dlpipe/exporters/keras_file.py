"""`.keras`: the native Keras file, loaded back with safe mode on."""

from __future__ import annotations

import shutil
from pathlib import Path

from dlpipe.exporters.base import Artifact, ExportFormat, ExportJob
from dlpipe.rundir import atomic_path


def write(model, directory: Path, job: ExportJob | None = None) -> list[Artifact]:
    target = directory / "model.keras"
    saved = job.keras_file if job is not None else None
    with atomic_path(target) as tmp:
        if saved is not None and Path(saved).is_file():
            shutil.copyfile(saved, tmp)  # verified below like a fresh save: loaded back and compared
        else:
            model.save(tmp)
    return [Artifact("keras", target)]


def load(path: Path, *, allow_unsafe: bool = False):
    from dlpipe.data.pipeline import predict
    from dlpipe.modelfile import load_keras_model

    model = load_keras_model(path, allow_unsafe=allow_unsafe, opt_in="--allow-unsafe-deserialization")
    return lambda inputs: predict(model, inputs, compiled=True)  # jitted on JAX (data/pipeline.py)


FORMAT = ExportFormat("keras", write, load)
