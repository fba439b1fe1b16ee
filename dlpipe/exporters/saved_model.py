"""TensorFlow SavedModel with a `serving_default` signature over the raw, named inputs
(normalization and category lookups inside), loaded back with `tf.saved_model.load` — no
Keras involved.

assets/dlpipe_interface.json describes the inputs, output and class names, so that the
folder alone is enough for `dlpipe predict`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from dlpipe.exporters.base import Artifact, ExportFormat, ExportJob, as_text, atomic_dir

INTERFACE = Path("assets", "dlpipe_interface.json")


def write(model, directory: Path, job: ExportJob | None = None) -> list[Artifact]:
    with atomic_dir(directory) as tmp:  # export/saved_model/ is the SavedModel itself
        if job is None:
            model.export(str(tmp), format="tf_saved_model", verbose=False)
        else:
            shutil.copytree(job.saved_model(model), tmp)
            (tmp / INTERFACE).parent.mkdir(exist_ok=True)
            (tmp / INTERFACE).write_text(json.dumps(job.interface, indent=2) + "\n", encoding="utf-8")
    return [Artifact("saved_model", directory, {"signature": "serving_default"})]


def load(path: Path):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def predict(inputs: dict[str, np.ndarray]):
        """The signature's one output, or all of them by name (a detector's boxes, scores, classes)."""
        tensors = {name: tf.constant(as_text(value) if value.dtype == object else value)
                   for name, value in inputs.items()}
        outputs = {name: value.numpy() for name, value in serve(**tensors).items()}
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    return predict


FORMAT = ExportFormat("saved_model", write, load)
