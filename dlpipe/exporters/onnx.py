"""ONNX (opset 17): tf2onnx converts a SavedModel of the model, onnxruntime runs the result.

Keras's own `model.export(format="onnx")` turns Normalization statistics into graph
inputs that onnxruntime cannot feed; converting the SavedModel's `serving_default`
signature (what `python -m tf2onnx.convert --saved-model DIR --opset 17` does) keeps them
constants, and keeps the raw named inputs, text included. Needs the `onnx` extra.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from dlpipe.errors import StageError
from dlpipe.exporters.base import Artifact, ExportFormat, ExportJob, as_text, atomic_dir

OPSET = 17


def write(model, directory: Path, job: ExportJob | None = None) -> list[Artifact]:
    if job is None:
        with tempfile.TemporaryDirectory(prefix="dlpipe-onnx-") as scratch:
            saved_model = Path(scratch, "saved_model")
            model.export(str(saved_model), format="tf_saved_model", verbose=False)
            proto = convert_saved_model(saved_model)
    else:
        proto = convert_saved_model(job.saved_model(model))
    with atomic_dir(directory) as tmp:
        tmp.mkdir()
        (tmp / "model.onnx").write_bytes(proto.SerializeToString())
    return [Artifact("onnx", directory / "model.onnx", {"opset": OPSET})]


def convert_saved_model(path: Path):
    """The SavedModel's serving_default signature as an ONNX ModelProto."""
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common

    # tf2onnx logs each shape it cannot infer as a warning; none is actionable here.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        str(path), None, None, tag="serve", signatures=["serving_default"],
        return_initialized_tables=True, return_tensors_to_rename=True)
    try:
        with tf.device("/cpu:0"):
            proto, _ = _convert_common(graph_def, name="dlpipe", opset=OPSET, input_names=inputs,
                                       output_names=outputs, tensors_to_rename=renames,
                                       initialized_tables=tables)
    except Exception as err:  # tf2onnx raises bare exceptions for unsupported ops
        raise StageError("export", f"onnx: tf2onnx cannot convert the model: {str(err).splitlines()[0]}") from err
    return proto


def load(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {node.name.split(":")[0]: node.name for node in session.get_inputs()}
    outputs = [node.name.split(":")[0] for node in session.get_outputs()]

    def predict(inputs: dict[str, np.ndarray]):
        """The one output, or every output by name (the signature's names, as tf2onnx keeps them)."""
        feed = {names[name]: as_text(value) if value.dtype == object else value
                for name, value in inputs.items()}
        found = session.run(None, feed)
        return found[0] if len(found) == 1 else dict(zip(outputs, found))

    return predict


FORMAT = ExportFormat("onnx", write, load)
