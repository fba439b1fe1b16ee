"""Every name a spec may use, mapped to the object that implements it and the facts the
rest of dlpipe needs to know about it before importing it.

An entry is `"module:attribute"` plus its kind's facts: a metric's direction and the
targets it scores, an architecture's own inputs, an export format's default tolerance,
the features it cannot take and its extra, a source's file-ness and streaming. Each fact is
a required constructor argument: an entry without one fails when this module is imported,
and tests/test_registry.py checks every value. The spec layer's tables (which metrics are
maximized, which sources stream, …) are derived from here, never kept beside.

`names(kind)` and `entry(kind, name)` import nothing, so `dlpipe validate` stays free of
TensorFlow; `load(kind, name)` imports the module only when a stage needs the object.

Adding a metric, architecture, export format, source or dataset: one new module (or one
function in an existing one) + one entry here; docs/architecture.md, "How to add…".
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from collections.abc import Mapping
from typing import Literal

from dlpipe.errors import did_you_mean

TARGETS = ("label", "per_step", "multi_label")
"""What a metric may score: one target per example (`label`: a class, a value, a forecast,
an image's boxes; or none, as an embedding's or a GAN's); one class or value per sequence
step (`per_step`, model.return_sequences); a set of classes per example (`multi_label`,
data.target.multi_label: N × K indicators against K sigmoid outputs)."""


class Entry:
    """A registered name: `target` is `"module:attribute"`, imported by `load` only.

    Entries are plain slotted classes rather than dataclasses: building five dataclasses
    would cost `dlpipe validate` about 5 ms, 2 % of checking every template."""

    __slots__ = ("target",)

    def __init__(self, target: str):
        self.target = target

    def facts(self) -> dict:
        return {name: getattr(self, name) for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.facts().items())})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.facts() == self.facts()

    __hash__ = None


class Metric(Entry):
    """direction: which way is better (`max`, `min`); `dlpipe tune` maximizes or minimizes
    its objective by it. targets: the kinds of target (TARGETS) it scores; `dlpipe validate`
    refuses it for the others. binary: it scores the positive class (index 1) of two
    classes, and is refused for more."""

    __slots__ = ("direction", "targets", "binary")

    def __init__(self, target: str, *, direction: Literal["max", "min"], targets: tuple[str, ...],
                 binary: bool = False):
        super().__init__(target)
        self.direction, self.targets, self.binary = direction, targets, binary


class Architecture(Entry):
    """reads: feature types its own layers take; every other feature joins in the head.
    single: it takes exactly one feature of those types (else at least one)."""

    __slots__ = ("reads", "single")

    def __init__(self, target: str, *, reads: tuple[str, ...], single: bool):
        super().__init__(target)
        self.reads, self.single = reads, single


class Exporter(Entry):
    """tolerance: the default bound (max_abs_diff and/or agreement) of each artifact it
    writes, by its key: the format's name, or `tflite/<mode>` per TFLite quantization mode.
    output_tolerance: defaults that replace those for a model whose output is of one kind (a
    task's `output` fact: `boxes` for a detector), by output kind and then artifact key.
    cannot_take: feature types whose processing its runtime cannot run (refused by `dlpipe
    validate`). cannot_convert: model types (`model.type`, or `type/scan` for one choice of an
    ssm's `scan`) its converter cannot turn into a working file, with the reason (refused by
    `dlpipe validate`). extra: the dlpipe extra that installs `requires` (None: dlpipe's own
    dependencies suffice). requires: modules it imports beyond dlpipe's own dependencies,
    checked before training."""

    __slots__ = ("tolerance", "output_tolerance", "cannot_take", "cannot_convert", "extra", "requires")

    def __init__(self, target: str, *, tolerance: Mapping[str, Mapping[str, float]],
                 output_tolerance: Mapping[str, Mapping[str, Mapping[str, float]]], cannot_take: tuple[str, ...],
                 extra: str | None, requires: tuple[str, ...], cannot_convert: Mapping[str, str] | None = None):
        super().__init__(target)
        self.cannot_convert = MappingProxyType(dict(cannot_convert or {}))
        self.tolerance = MappingProxyType(dict(tolerance))
        self.output_tolerance = MappingProxyType({kind: MappingProxyType(dict(bounds))
                                                  for kind, bounds in output_tolerance.items()})
        self.cannot_take, self.extra, self.requires = cannot_take, extra, requires


class Source(Entry):
    """split_files: it reads a file, so data.split.files may give one file per split.
    streams: data.streaming can read it chunk by chunk (a folder: a batch of its files at a
    time), never holding it whole."""

    __slots__ = ("split_files", "streams")

    def __init__(self, target: str, *, split_files: bool, streams: bool):
        super().__init__(target)
        self.split_files, self.streams = split_files, streams


class Application(Entry):
    """A Keras application (`keras.applications`), the pretrained network a `backbone` model
    starts from. preprocessing: what it expects of pixels valued 0..255 — `built_in` (the
    network rescales them itself), `tf` (to −1..1), `caffe` (RGB → BGR, ImageNet means
    subtracted), `torch` (to 0..1, then ImageNet means and deviations). min_size: the
    smallest height and width Keras builds it for."""

    __slots__ = ("preprocessing", "min_size")

    def __init__(self, target: str, *, preprocessing: Literal["built_in", "tf", "caffe", "torch"], min_size: int):
        super().__init__(target)
        self.preprocessing, self.min_size = preprocessing, min_size


def _application(name: str, preprocessing: str, min_size: int = 32) -> Application:
    return Application(f"keras.applications:{name}", preprocessing=preprocessing, min_size=min_size)


_APPLICATIONS = {
    **{name: _application(name, "tf") for name in ("MobileNet", "MobileNetV2")},
    **{name: _application(name, "built_in") for name in ("MobileNetV3Small", "MobileNetV3Large")},
    **{f"EfficientNetB{i}": _application(f"EfficientNetB{i}", "built_in") for i in range(8)},
    **{f"EfficientNetV2{v}": _application(f"EfficientNetV2{v}", "built_in")
       for v in ("B0", "B1", "B2", "B3", "S", "M", "L")},
    **{name: _application(name, "caffe") for name in ("ResNet50", "ResNet101", "ResNet152", "VGG16", "VGG19")},
    **{name: _application(name, "tf") for name in ("ResNet50V2", "ResNet101V2", "ResNet152V2")},
    **{name: _application(name, "torch") for name in ("DenseNet121", "DenseNet169", "DenseNet201")},
    **{f"ConvNeXt{size}": _application(f"ConvNeXt{size}", "built_in")
       for size in ("Tiny", "Small", "Base", "Large", "XLarge")},
    "Xception": _application("Xception", "tf", 71),
    "InceptionV3": _application("InceptionV3", "tf", 75),
    "InceptionResNetV2": _application("InceptionResNetV2", "tf", 75),
}


def _abs(bound: float) -> Mapping[str, float]:
    return MappingProxyType({"max_abs_diff": bound})


def _agree(fraction: float) -> Mapping[str, float]:
    return MappingProxyType({"agreement": fraction})


def _detections(bound: float) -> Mapping[str, float]:
    """A detector's export: boxes (pixels or relative units) and scores within `bound`, and
    the class of every kept detection the same."""
    return MappingProxyType({"max_abs_diff": bound, "agreement": 1.0})


_SEQUENTIAL_SCAN = ("its converter cannot turn the sequential scan's loop into builtin ops; with scan: parallel "
                    "(the same outputs, no loop) it converts")

_KERAS_OPTIMIZERS = {
    "adam": "keras.optimizers:Adam",
    "adamw": "keras.optimizers:AdamW",
    "sgd": "keras.optimizers:SGD",
    "rmsprop": "keras.optimizers:RMSprop",
    "adagrad": "keras.optimizers:Adagrad",
    "adadelta": "keras.optimizers:Adadelta",
    "adafactor": "keras.optimizers:Adafactor",
    "adamax": "keras.optimizers:Adamax",
    "nadam": "keras.optimizers:Nadam",
    "ftrl": "keras.optimizers:Ftrl",
    "lion": "keras.optimizers:Lion",
    "lamb": "keras.optimizers:Lamb",
    "muon": "keras.optimizers:Muon",
}

_KERAS_ACTIVATIONS = {
    name: f"keras.activations:{name}"
    for name in (
        "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish",
        "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus", "softsign", "exponential",
        "linear",
    )
}

_KERAS_INITIALIZERS = {
    "glorot_uniform": "keras.initializers:GlorotUniform",
    "glorot_normal": "keras.initializers:GlorotNormal",
    # "xavier" is what many papers call Glorot's scheme.
    "xavier_uniform": "keras.initializers:GlorotUniform",
    "xavier_normal": "keras.initializers:GlorotNormal",
    "he_uniform": "keras.initializers:HeUniform",
    "he_normal": "keras.initializers:HeNormal",
    "lecun_uniform": "keras.initializers:LecunUniform",
    "lecun_normal": "keras.initializers:LecunNormal",
    "orthogonal": "keras.initializers:Orthogonal",
    "random_normal": "keras.initializers:RandomNormal",
    "random_uniform": "keras.initializers:RandomUniform",
    "truncated_normal": "keras.initializers:TruncatedNormal",
    "zeros": "keras.initializers:Zeros",
    "ones": "keras.initializers:Ones",
}

_KERAS_LOSSES = {
    "binary_crossentropy": "keras.losses:BinaryCrossentropy",
    "categorical_crossentropy": "keras.losses:CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "keras.losses:SparseCategoricalCrossentropy",
    "binary_focal_crossentropy": "keras.losses:BinaryFocalCrossentropy",
    "categorical_focal_crossentropy": "keras.losses:CategoricalFocalCrossentropy",
    "mse": "keras.losses:MeanSquaredError",
    "mae": "keras.losses:MeanAbsoluteError",
    "huber": "keras.losses:Huber",
    "log_cosh": "keras.losses:LogCosh",
}

_KERAS_REGULARIZERS = {
    "l1": "keras.regularizers:L1",
    "l2": "keras.regularizers:L2",
    "l1_l2": "keras.regularizers:L1L2",
    "orthogonal": "keras.regularizers:OrthogonalRegularizer",
}

# Layers a `graph` model may name; `dlpipe validate` checks names against this table
# without importing Keras. Keys are Keras's own class names.
_KERAS_LAYERS = {
    name: f"keras.layers:{name}"
    for name in (
        # core
        "Dense", "EinsumDense", "Embedding", "Identity", "Activation", "Dropout",
        "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
        "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
        # shape
        "Flatten", "Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D",
        "ZeroPadding1D", "ZeroPadding2D", "UpSampling1D", "UpSampling2D",
        # convolution and pooling
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "SeparableConv1D",
        "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D", "MaxPooling1D", "MaxPooling2D",
        "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        # normalization
        "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
        # recurrent and attention
        "SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "MultiHeadAttention",
        "GroupQueryAttention", "Attention", "AdditiveAttention",
        # merge
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    )
}
# dlpipe's own layers a graph may name, beside Keras's (registered for .keras files in
# dlpipe/custom_objects.py).
_DLPIPE_LAYERS = {"MambaBlock": "dlpipe.architectures.ssm:MambaBlock"}

_LABELS = ("label", "per_step")
_ANY = ("label", "per_step", "multi_label")
_CLASSIFICATION = "dlpipe.metrics.classification"
_REGRESSION = "dlpipe.metrics.regression"


def _classification(attribute: str, direction: str, targets: tuple[str, ...], **facts) -> Metric:
    return Metric(f"{_CLASSIFICATION}:{attribute}", direction=direction, targets=targets, **facts)


def _regression(attribute: str, direction: str) -> Metric:
    return Metric(f"{_REGRESSION}:{attribute}", direction=direction, targets=_LABELS)


_TABLES: dict[str, dict[str, Entry]] = {
    **{kind: {name: Entry(target) for name, target in table.items()} for kind, table in (
        ("optimizer", _KERAS_OPTIMIZERS), ("activation", _KERAS_ACTIVATIONS), ("initializer", _KERAS_INITIALIZERS),
        ("regularizer", _KERAS_REGULARIZERS), ("layer", {**_KERAS_LAYERS, **_DLPIPE_LAYERS}), ("loss", _KERAS_LOSSES))},
    "dataset": {name: Entry(f"dlpipe.data.builtin:load_{name}") for name in (
        "digits", "iris", "wine", "breast_cancer", "diabetes", "order_pairs", "co2", "sunspots", "reviews",
        "mnist")},
    "source": {
        "builtin": Source("dlpipe.data.sources:load_builtin", split_files=False, streams=False),
        "csv": Source("dlpipe.data.sources:load_csv", split_files=True, streams=True),
        "npz": Source("dlpipe.data.sources:load_npz", split_files=True, streams=False),
        "npy": Source("dlpipe.data.sources:load_npy", split_files=False, streams=False),
        "jsonl": Source("dlpipe.data.sources:load_jsonl", split_files=True, streams=True),
        "parquet": Source("dlpipe.data.sources:load_parquet", split_files=True, streams=True),
        "image_folder": Source("dlpipe.data.sources:load_image_folder", split_files=False, streams=True),
        "image_csv": Source("dlpipe.data.sources:load_image_csv", split_files=True, streams=True),
        "text_folder": Source("dlpipe.data.sources:load_text_folder", split_files=False, streams=True),
        "tfrecord": Source("dlpipe.data.sources:load_tfrecord", split_files=True, streams=True),
    },
    "architecture": {
        "mlp": Architecture("dlpipe.architectures.mlp:build", reads=(), single=False),
        "cnn": Architecture("dlpipe.architectures.cnn:build", reads=("image",), single=True),
        "rnn": Architecture("dlpipe.architectures.rnn:build", reads=("sequence", "tokens", "text"), single=False),
        "transformer": Architecture("dlpipe.architectures.transformer:build", reads=("sequence", "tokens", "text"),
                                    single=False),
        "ssm": Architecture("dlpipe.architectures.ssm:build", reads=("sequence", "tokens", "text"), single=False),
        "vit": Architecture("dlpipe.architectures.vit:build", reads=("image",), single=True),
        # Dense or conv encoder by model.encoder: checked with the spec (spec/checks.py).
        "autoencoder": Architecture("dlpipe.architectures.autoencoder:build", reads=(), single=False),
        # Its nodes name the inputs they read (spec/model.py: graph_problems).
        "graph": Architecture("dlpipe.architectures.graph:build", reads=(), single=False),
        "gan": Architecture("dlpipe.architectures.gan:build", reads=("image",), single=True),
        # Task detection's own model (maps model; pipelines/detection.py adds the decoding). Its
        # image comes from the source, not from data.features.
        "centernet": Architecture("dlpipe.architectures.centernet:build_maps_model", reads=(), single=False),
        "backbone": Architecture("dlpipe.architectures.backbone:build", reads=("image",), single=True),
        # Task generation's other model (pipelines/diffusion.py builds it).
        "diffusion": Architecture("dlpipe.architectures.diffusion:build", reads=("image",), single=True),
    },
    # (labels 0..K-1, probabilities N × K) → a number; dlpipe/metrics/evaluate.py scores
    # multi-label targets itself (multi_label_score) for the metrics whose targets say so.
    "metric:classification": {
        "accuracy": _classification("accuracy", "max", _ANY),
        "precision_macro": _classification("precision_macro", "max", _ANY),
        "recall_macro": _classification("recall_macro", "max", _ANY),
        "f1_macro": _classification("f1_macro", "max", _ANY),
        "f1_micro": _classification("f1_micro", "max", _ANY),
        "f1_weighted": _classification("f1_weighted", "max", _ANY),
        "roc_auc": _classification("roc_auc", "max", _ANY),
        "log_loss": _classification("log_loss", "min", _ANY),
        "precision_micro": _classification("precision_micro", "max", _ANY),
        "precision_weighted": _classification("precision_weighted", "max", _ANY),
        "recall_micro": _classification("recall_micro", "max", _ANY),
        "recall_weighted": _classification("recall_weighted", "max", _ANY),
        "top_3_accuracy": _classification("top_3_accuracy", "max", _LABELS),
        "top_5_accuracy": _classification("top_5_accuracy", "max", _LABELS),
        "precision": _classification("precision", "max", _LABELS, binary=True),
        "recall": _classification("recall", "max", _LABELS, binary=True),
        "f1": _classification("f1", "max", _LABELS, binary=True),
        "balanced_accuracy": _classification("balanced_accuracy", "max", _LABELS),
    },
    "metric:regression": {
        "mae": _regression("mae", "min"),
        "mse": _regression("mse", "min"),
        "rmse": _regression("rmse", "min"),
        "r2": _regression("r2", "max"),
        "mape": _regression("mape", "min"),
    },
    # (y, forecast) → a number, over every step of the horizon; naive_* are given the
    # last-value forecast (dlpipe/metrics/forecasting.py).
    "metric:forecasting": {
        "mae": _regression("mae", "min"),
        "mse": _regression("mse", "min"),
        "rmse": _regression("rmse", "min"),
        "naive_mae": _regression("mae", "min"),
        "naive_rmse": _regression("rmse", "min"),
    },
    # (ground_truth, predictions) per image → a number; see dlpipe/metrics/detection.py.
    "metric:detection": {
        "map": Metric("dlpipe.metrics.detection:map_50_95", direction="max", targets=("label",)),
        "map_50": Metric("dlpipe.metrics.detection:map_50", direction="max", targets=("label",)),
        "map_75": Metric("dlpipe.metrics.detection:map_75", direction="max", targets=("label",)),
    },
    # Embeddings: reconstruction error, and how well a kNN classifier on them recovers labels.
    "metric:embedding": {
        "reconstruction_mse": Metric("dlpipe.metrics.embedding:reconstruction_mse", direction="min",
                                     targets=("label",)),
        "knn_accuracy": Metric("dlpipe.metrics.embedding:knn_accuracy", direction="max", targets=("label",)),
    },
    # fid(real_features, generated_features), inception_score(probabilities).
    "metric:generation": {
        "fid": Metric("dlpipe.metrics.generative:fid", direction="min", targets=("label",)),
        "inception_score": Metric("dlpipe.metrics.generative:inception_score", direction="max", targets=("label",)),
    },
    # Defaults measured on the breast-cancer MLP: float16 weights carry ~3 significant digits
    # (its probabilities moved by 5e-3); integer weights move probabilities by a few percent,
    # so what must survive is the class. TFLite runs no TextVectorization, and its lookup
    # pre-step (exporters/tflite.py) reproduces only lookups with an out-of-vocabulary bucket,
    # which ordinal has not; onnxruntime has no op for TextVectorization's standardization.
    # A detector (output `boxes`, in pixels): the .keras file runs the very ops again, so its
    # boxes and scores stay within 1e-5; the SavedModel's traced graph within 1e-4 (both
    # gave max abs diff 0.0 on the template's test images here); every class must agree.
    "exporter": {
        "keras": Exporter("dlpipe.exporters.keras_file:FORMAT", tolerance={"keras": _abs(1e-4)},
                          output_tolerance={"boxes": {"keras": _detections(1e-5)}},
                          cannot_take=(), extra=None, requires=()),
        "saved_model": Exporter("dlpipe.exporters.saved_model:FORMAT", tolerance={"saved_model": _abs(1e-4)},
                                output_tolerance={"boxes": {"saved_model": _detections(1e-4)}},
                                cannot_take=(), extra=None, requires=()),
        "tflite": Exporter("dlpipe.exporters.tflite:FORMAT",
                           tolerance={"tflite/float32": _abs(1e-4), "tflite/float16": _abs(1e-2),
                                      "tflite/dynamic": _agree(0.97), "tflite/int8": _agree(0.97)},
                           output_tolerance={}, cannot_take=("text", "ordinal"), extra="tflite",
                           requires=("ai_edge_litert",),
                           # Measured on the forecasting GRU: the converter stops at the
                           # recurrent loop's TensorList ("element_shape to be static"); with a
                           # fixed batch of 1 it converts, and the file then fails at run time
                           # reading the loop's variables. ONNX converts the same model exactly.
                           cannot_convert={"rnn": "TensorFlow Lite's converter cannot turn the recurrent "
                                                  "layers' loop into builtin ops",
                                           # The same TensorList; scan: parallel has no loop and converts
                                           # (max abs diff 3e-7 on order_pairs).
                                           "ssm/sequential": _SEQUENTIAL_SCAN}),
        "onnx": Exporter("dlpipe.exporters.onnx:FORMAT", tolerance={"onnx": _abs(1e-4)}, output_tolerance={},
                         cannot_take=("text",), extra="onnx", requires=("onnx", "onnxruntime", "tf2onnx"),
                         # tf2onnx: "While loop couldn't find scan output index"; parallel converts.
                         cannot_convert={"ssm/sequential": _SEQUENTIAL_SCAN}),
    },
    # Keras applications a `backbone` model may start from (model.application), by their
    # Keras names; dlpipe/architectures/backbone.py builds them headless.
    "application": _APPLICATIONS,
    # A task: its facts and its pipeline (dlpipe/tasks/base.py); `task:` in a spec names one.
    "task": {
        "classification": Entry("dlpipe.tasks.classification:TASK"),
        "regression": Entry("dlpipe.tasks.regression:TASK"),
        "forecasting": Entry("dlpipe.tasks.forecasting:TASK"),
        "detection": Entry("dlpipe.tasks.detection:TASK"),
        "embedding": Entry("dlpipe.tasks.embedding:TASK"),
        "generation": Entry("dlpipe.tasks.generation:TASK"),
        "multi_output": Entry("dlpipe.tasks.multi_output:TASK"),
    },
}

# Task multi_output scores each output with its kind's table (dlpipe/tasks/multi_output.py);
# its own table is their union, which names every metric an output may list.
_TABLES["metric:multi_output"] = {**_TABLES["metric:classification"], **_TABLES["metric:regression"]}

TABLES = MappingProxyType({kind: MappingProxyType(t) for kind, t in _TABLES.items()})


def kinds() -> tuple[str, ...]:
    return tuple(TABLES)


def names(kind: str) -> tuple[str, ...]:
    """The names of one kind, in registration order; imports nothing."""
    try:
        return tuple(TABLES[kind])
    except KeyError:
        raise KeyError(f"unknown registry kind {kind!r}; known: {', '.join(TABLES)}") from None


def entry(kind: str, name: str) -> Entry:
    """The entry of a name (its target and facts), with a did-you-mean when it is unknown;
    imports nothing."""
    table = TABLES[kind]
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}{did_you_mean(name, table)}")
    return table[name]


def target(kind: str, name: str) -> str:
    """`"module:attribute"` for a name."""
    return entry(kind, name).target


def load(kind: str, name: str):
    """Import and return the object registered under `name`."""
    module_name, _, attribute = target(kind, name).partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def metric_kinds() -> tuple[str, ...]:
    return tuple(kind for kind in TABLES if kind.startswith("metric:"))


def maximized() -> frozenset[str]:
    """Metric names where higher is better (the same name has one direction in every kind)."""
    return frozenset(name for kind in metric_kinds() for name, metric in TABLES[kind].items()
                     if metric.direction == "max")
