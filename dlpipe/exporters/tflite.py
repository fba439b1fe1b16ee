"""TensorFlow Lite files, one per quantization mode, run with the LiteRT interpreter
(`ai_edge_litert`; `tf.lite.Interpreter` is deprecated). Needs the `tflite` extra.

    float32   the model as trained
    float16   weights stored as float16
    dynamic   weights stored as int8, computed in float
    int8      weights and activations int8 (TFLITE_BUILTINS_INT8 only), activation ranges
              calibrated on training-split examples; inputs and outputs stay float32

Text inputs: TFLite converts a StringLookup but the file fails at run time when its first
call has batch size 1 (RESHAPE: "num_input_elements != num_output_elements") and works
for other batch sizes, which a verification on one batch would not catch. So the lookup is moved out of the file as a documented
pre-step: the .tflite takes each categorical input as int64 indices, and lookup.json
lists, per input, the vocabulary whose positions are those indices (anything not listed
is index 0, the out-of-vocabulary bucket). `lookup_indices` is that pre-step; the
verification runs it, so the pre-step is checked together with the file. A text input
that reaches anything but one such lookup is refused with the layer's name.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from dlpipe import progress
from dlpipe.errors import StageError
from dlpipe.exporters.base import Artifact, ExportFormat, ExportJob, atomic_dir

LOOKUP_FILE = "lookup.json"


def write(model, directory: Path, job: ExportJob) -> list[Artifact]:
    inference, vocabularies = without_string_lookups(model)
    modes = list(job.options.tflite.quantization)
    saved_model = job.saved_model(inference, static=True)
    files = {}
    for number, mode in enumerate(modes, 1):
        progress.note(f"converting {mode} ({number} of {len(modes)})")  # the export step's line
        files[mode] = convert(saved_model, mode, _calibration(job.representative, vocabularies))
    with atomic_dir(directory) as tmp:
        tmp.mkdir()
        for mode, content in files.items():
            (tmp / f"model_{mode}.tflite").write_bytes(content)
        if vocabularies:
            (tmp / LOOKUP_FILE).write_text(json.dumps(vocabularies, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    notes = {}
    if vocabularies:
        notes["pre_step"] = (f"inputs {', '.join(vocabularies)} take int64 indices: the position of the "
                             f"text in {LOOKUP_FILE}[input], 0 when it is not listed")
    return [Artifact(f"tflite/{mode}", directory / f"model_{mode}.tflite", {"quantization": mode, **notes})
            for mode in modes]


def without_string_lookups(model):
    """(a model that takes lookup indices instead of text, {input: vocabulary}); the model
    itself when no input is text. Raises StageError naming the layer it cannot move out."""
    import keras

    inputs = {tensor.name: tensor for tensor in model.inputs}
    text = [name for name, tensor in inputs.items() if tensor.dtype == "string"]
    if not text:
        return model, {}
    lookups = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.StringLookup) and getattr(layer.input, "name", None) in text:
            config = layer.get_config()
            if config["output_mode"] != "int" or config["invert"] or config["num_oov_indices"] != 1 \
                    or config["mask_token"] is not None:
                raise _refuse(f"StringLookup layer {layer.name!r} is not a plain text → index lookup "
                              "with one out-of-vocabulary bucket, which is all the pre-step reproduces")
            if layer.input.name in lookups:
                raise _refuse(f"input {layer.input.name!r} feeds two StringLookup layers "
                              f"({lookups[layer.input.name].name!r}, {layer.name!r})")
            lookups[layer.input.name] = layer
    for name in text:
        if name not in lookups:
            raise _refuse(f"text input {name!r} does not go through a StringLookup layer")
    try:
        with warnings.catch_warnings():
            # Keys name the inputs the lookups replace, not the lookups' output tensors: intended.
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
            inner = keras.Model({name: lookups[name].output if name in lookups else tensor
                                 for name, tensor in inputs.items()}, model.outputs[0])
    except ValueError:
        names = ", ".join(repr(layer.name) for layer in lookups.values())
        raise _refuse(f"a text input reaches layers other than its StringLookup ({names})") from None
    indices = {name: keras.Input(shape=tuple(lookups[name].output.shape[1:]), dtype="int64", name=name)
               if name in lookups else keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=name)
               for name, tensor in inputs.items()}
    vocabularies = {name: [str(token) for token in layer.get_vocabulary()] for name, layer in lookups.items()}
    return keras.Model(indices, inner(indices), name=f"{model.name}_indices"), vocabularies


def _refuse(reason: str) -> StageError:
    return StageError("export", f"tflite: {reason}; TFLite cannot run text lookups reliably, so dlpipe "
                      "does not write a file that may fail when run. Leave tflite out of export.formats")


def lookup_indices(values: np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """The pre-step: text → its position in `vocabulary` (lookup.json), 0 when not listed."""
    positions = {token: i for i, token in enumerate(vocabulary)}
    flat = [positions.get(str(value), 0) for value in np.asarray(values).ravel()]
    return np.asarray(flat, dtype=np.int64).reshape(np.shape(values))


def _calibration(representative: dict[str, np.ndarray], vocabularies: dict[str, list[str]]):
    def examples():
        count = len(next(iter(representative.values())))
        for i in range(count):
            yield {name: lookup_indices(values[i:i + 1], vocabularies[name]) if name in vocabularies
                   else values[i:i + 1].astype(np.float32) for name, values in representative.items()}

    return examples


def convert(saved_model: Path, mode: str, representative) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    # Builtin ops only: a file that needs Flex (TensorFlow) ops would not run on a plain
    # LiteRT runtime.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with warnings.catch_warnings():
            # int8 calibration runs the deprecated tf.lite.Interpreter inside TensorFlow.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return converter.convert()
    except Exception as err:  # ConverterError and friends: unsupported ops, mostly
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StageError("export", f"tflite/{mode}: the TFLite converter failed: {first}") from err


def load(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    lookup_file = Path(path).parent / LOOKUP_FILE
    vocabularies = json.loads(lookup_file.read_text(encoding="utf-8")) if lookup_file.is_file() else {}

    dtypes = {name: details["dtype"] for name, details in runner.get_input_details().items()}

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {}
        for name, values in inputs.items():
            if name in vocabularies:
                feed[name] = lookup_indices(values, vocabularies[name])
            elif dtypes[name] in (np.bytes_, np.object_, np.str_):  # a file that kept its text input
                feed[name] = np.asarray(values).astype(str).astype(np.bytes_)
            else:
                feed[name] = np.ascontiguousarray(values, dtype=dtypes[name])
        found = {name: np.array(value) for name, value in runner(**feed).items()}
        return next(iter(found.values())) if len(found) == 1 else found  # several outputs: by name

    return predict


FORMAT = ExportFormat("tflite", write, load)
