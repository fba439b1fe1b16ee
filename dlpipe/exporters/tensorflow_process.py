"""A SavedModel of a model trained on torch, written by TensorFlow in a child process.

Keras' torch backend writes SavedModels only through torch_xla (keras/src/backend/torch/
export.py), which dlpipe does not install. A `.keras` file carries no backend, so on torch
the export stage saves the model as a `.keras` file in scratch space and a fresh Python
process loads it on TensorFlow and exports it (`python -m dlpipe.exporters.tensorflow_process
MODEL.keras DIRECTORY`): the same SavedModel a TensorFlow run of the same weights writes.
The formats made from a SavedModel (saved_model, tflite, onnx) and their verification then
proceed as on any backend: verification loads what was written with TensorFlow's own runtime
in the run's process, as on JAX. The child costs one TensorFlow start-up (about 6 s here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from dlpipe.errors import StageError


def export_saved_model(model, directory: Path) -> None:
    """Write `model` (built on the torch backend) as a SavedModel at `directory`."""
    with tempfile.TemporaryDirectory(prefix="dlpipe-torch-export-") as scratch:
        keras_file = Path(scratch) / "model.keras"
        model.save(keras_file)
        environment = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        result = subprocess.run([sys.executable, "-m", __name__, str(keras_file), str(directory)],
                                capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise StageError("export", "TensorFlow could not write the torch model as a SavedModel: "
                         + (lines[-1] if lines else f"exit status {result.returncode}"))


def main(keras_file: str, directory: str) -> None:
    from dlpipe import backend
    from dlpipe.modelfile import load_keras_model

    backend.activate("tensorflow")
    # Written a moment ago by the run's own process from its model: trusted as that model is.
    model = load_keras_model(keras_file, allow_unsafe=True)
    model.export(directory, format="tf_saved_model", verbose=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
