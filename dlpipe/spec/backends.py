"""`backend:` checks: what a spec asks of its Keras backend, and what the environment holds.

`check_backend` is a pure function of the spec (it runs with the other checks in
spec/checks.py): on a backend other than TensorFlow, the pieces that are TensorFlow inside
the model or the input pipeline are refused in one line each — string features (StringLookup
and TextVectorization run TensorFlow string ops inside the model), augmentation (tf.data
ops), tf.distribute strategies, attributions (TensorFlow
gradients).

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

INSTALL = {"jax": "pip install 'dlpipe[jax]'", "torch": "pip install torch", "tensorflow": "pip install tensorflow"}


def check_backend(spec) -> Found:
    backend = spec.backend
    if backend == "tensorflow":
        return
    needs = f"needs backend: tensorflow (backend {backend} runs numerical, image, sequence and token features)"
    for i, feature in enumerate(spec.data.features):
        if feature.type in STRING_FEATURES:
            yield (("data", "features", i, "type"), f"{feature.type} features map strings to ids with TensorFlow "
                   f"string ops inside the model; this {needs}")
    if spec.prepare.augmentation:
        yield (("prepare", "augmentation"), f"augmentation runs as TensorFlow ops in tf.data; it {needs}")
    if spec.training.strategy in ("mirrored", "multi_worker"):
        yield (("training", "strategy"), f"{spec.training.strategy} is a tf.distribute strategy; it {needs}")
    if getattr(spec, "compression", None) is not None:
        yield (("compression",), f"pruning and quantization-aware training are run and checked on TensorFlow only; "
               f"they need backend: tensorflow")
    if getattr(spec, "distillation", None) is not None:
        yield (("distillation",), f"distillation is run and checked on TensorFlow only (its teacher runs inside "
               f"tf.data with augmentation); it needs backend: tensorflow")
    if getattr(spec.evaluation, "explain", None) is not None:
        yield (("evaluation", "explain"), f"attributions take gradients with TensorFlow; they need backend: "
               f"tensorflow")


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
