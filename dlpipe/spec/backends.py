"""`backend:` checks: what a spec asks of its Keras backend, and what the environment holds.

`check_backend` is a pure function of the spec (it runs with the other checks in
spec/checks.py): on a backend other than TensorFlow (jax, torch), the pieces that are
TensorFlow inside the model or the input pipeline are refused, all in one line at `backend` —
string features (StringLookup and TextVectorization run TensorFlow string ops inside the
model), tf.distribute strategies, attributions (TensorFlow gradients); on torch also
`training.jit_compile: true` (torch.compile, never seen to finish here). Streaming and augmentation are not among them: on
another backend a streamed split trains from numpy batches (data/streaming.py: numpy_batches),
and augmentation changes them in NumPy (data/augment_numpy.py).

`check_environment` looks at which packages are installed (without importing them) through
`validation_cache.Observations`, so a remembered `dlpipe validate` result is replayed only
while the same packages are there: the backend's own package, and TensorFlow where a step
needs it on any backend (SavedModel, TFLite and ONNX export, TFRecord sources, TensorBoard
logs). Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator

Found = Iterator[tuple[tuple, str]]

STRING_FEATURES = ("categorical", "ordinal", "text")
"""Feature types whose encoding inside the model runs TensorFlow string ops."""

TENSORFLOW_EXPORTS = ("saved_model", "tflite", "onnx")
"""Export formats written through TensorFlow (ONNX converts the SavedModel with tf2onnx)."""

INSTALL = {"jax": "pip install 'dlpipe[jax]'", "torch": "pip install 'dlpipe[torch]'", "tensorflow": "pip install tensorflow"}


def check_backend(spec) -> Found:
    """One line, at `backend`, naming every piece of the spec that runs on TensorFlow only
    (so a template that needs TensorFlow says so once, however many features need it)."""
    backend = spec.backend
    if backend == "tensorflow":
        return
    needs = []
    strings = [f"data.features[{i}] ({feature.type})" for i, feature in enumerate(spec.data.features)
               if feature.type in STRING_FEATURES]
    if strings:
        needs.append(f"{_joined(strings)} map{'s' if len(strings) == 1 else ''} strings to ids with TensorFlow "
                     f"string ops inside the model")
    if spec.training.strategy in ("mirrored", "multi_worker"):
        needs.append(f"training.strategy {spec.training.strategy} is a tf.distribute strategy")
    if getattr(spec.evaluation, "explain", None) is not None:
        needs.append("evaluation.explain takes gradients with TensorFlow")
    if needs:
        yield (("backend",), f"backend {backend} runs numerical, image, sequence and token features; this spec "
               f"needs backend: tensorflow: {'; '.join(needs)}")
    if backend == "torch" and spec.training.jit_compile is True:
        yield (("training", "jit_compile"), "backend torch trains eagerly: jit_compile: true would compile each step "
               "with torch.compile, which no dlpipe run has finished (on a 2-core CPU a 2-epoch tabular run was still "
               "compiling after 5 minutes); set jit_compile to auto or false, or use backend: jax")


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def check_environment(spec, seen) -> Found:
    """The packages the spec's run needs, looked up (not imported) through `seen`
    (a validation_cache.Observations)."""
    backend = spec.backend
    if not seen.module(backend):
        default = " (the default)" if backend == "tensorflow" else ""
        other = "; or set backend: jax" if backend == "tensorflow" and seen.module("jax") else ""
        yield (("backend",), f"backend {backend}{default} needs the {backend} package, which is not installed "
               f"({INSTALL[backend]}){other}")
        return
    if backend == "tensorflow" or seen.module("tensorflow"):
        return
    missing = "needs the tensorflow package, which is not installed (pip install tensorflow)"
    for i, name in enumerate(spec.export.formats):
        if name in TENSORFLOW_EXPORTS:
            yield (("export", "formats", i), f"{name} export {missing}; backend {backend} exports keras without it")
    if spec.data.source.type == "tfrecord":
        yield (("data", "source", "type"), f"TFRecord files are read with TensorFlow: this {missing}")
    if spec.training.tensorboard is True:
        yield (("training", "tensorboard"), f"TensorBoard logs are written with TensorFlow's summary ops: this "
               f"{missing} (set it to auto or false)")
