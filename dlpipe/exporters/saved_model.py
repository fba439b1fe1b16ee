"""TensorFlow SavedModel with a `serving_default` signature over the raw, named inputs
(normalization inside), loaded back with `tf.saved_model.load` — no Keras involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe.exporters.base import ExportFormat
from dlpipe.rundir import atomic_path


def write(model, directory: Path) -> Path:
    target = directory  # export/saved_model/ is the SavedModel itself
    with atomic_path(target) as tmp:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
    return target


def load(path: Path):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        outputs = serve(**{name: tf.constant(value) for name, value in inputs.items()})
        (output,) = outputs.values()
        return output.numpy()

    return predict


FORMAT = ExportFormat("saved_model", write, load)
