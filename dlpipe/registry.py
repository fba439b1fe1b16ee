"""Every name a spec may use, mapped to the object that implements it.

A table maps a name to `"module:attribute"`. `names(kind)` answers without importing
anything, so the spec layer can check names while `dlpipe validate` stays free of
TensorFlow; `load(kind, name)` imports the module only when a stage needs the object.
A test resolves every entry, so a table cannot drift from the code it names.

Adding an architecture, metric, exporter or dataset: one new module + one line here.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

from dlpipe.errors import did_you_mean

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

_TABLES: dict[str, dict[str, str]] = {
    "optimizer": _KERAS_OPTIMIZERS,
    "activation": _KERAS_ACTIVATIONS,
    "initializer": _KERAS_INITIALIZERS,
    "regularizer": _KERAS_REGULARIZERS,
    "layer": _KERAS_LAYERS,
    "loss": _KERAS_LOSSES,
    "dataset": {
        "digits": "dlpipe.data.builtin:load_digits",
        "iris": "dlpipe.data.builtin:load_iris",
        "wine": "dlpipe.data.builtin:load_wine",
        "breast_cancer": "dlpipe.data.builtin:load_breast_cancer",
        "diabetes": "dlpipe.data.builtin:load_diabetes",
        "order_pairs": "dlpipe.data.builtin:load_order_pairs",
        "co2": "dlpipe.data.builtin:load_co2",
        "sunspots": "dlpipe.data.builtin:load_sunspots",
        "reviews": "dlpipe.data.builtin:load_reviews",
        "mnist": "dlpipe.data.builtin:load_mnist",
    },
    "source": {
        "builtin": "dlpipe.data.sources:load_builtin",
        "csv": "dlpipe.data.sources:load_csv",
        "npz": "dlpipe.data.sources:load_npz",
        "npy": "dlpipe.data.sources:load_npy",
        "jsonl": "dlpipe.data.sources:load_jsonl",
        "parquet": "dlpipe.data.sources:load_parquet",
        "image_folder": "dlpipe.data.sources:load_image_folder",
        "image_csv": "dlpipe.data.sources:load_image_csv",
        "text_folder": "dlpipe.data.sources:load_text_folder",
        "tfrecord": "dlpipe.data.sources:load_tfrecord",
    },
    "architecture": {
        "mlp": "dlpipe.architectures.mlp:build",
        "cnn": "dlpipe.architectures.cnn:build",
        "rnn": "dlpipe.architectures.rnn:build",
        "transformer": "dlpipe.architectures.transformer:build",
        "vit": "dlpipe.architectures.vit:build",
        "autoencoder": "dlpipe.architectures.autoencoder:build",
        "graph": "dlpipe.architectures.graph:build",
        "gan": "dlpipe.architectures.gan:build",
        # Task detection's own model (maps model; pipelines/detection.py adds the decoding).
        "centernet": "dlpipe.architectures.centernet:build_maps_model",
    },
    "metric:classification": {
        "accuracy": "dlpipe.metrics.classification:accuracy",
        "precision_macro": "dlpipe.metrics.classification:precision_macro",
        "recall_macro": "dlpipe.metrics.classification:recall_macro",
        "f1_macro": "dlpipe.metrics.classification:f1_macro",
        "f1_micro": "dlpipe.metrics.classification:f1_micro",
        "f1_weighted": "dlpipe.metrics.classification:f1_weighted",
        "roc_auc": "dlpipe.metrics.classification:roc_auc",
        "log_loss": "dlpipe.metrics.classification:log_loss",
        "precision_micro": "dlpipe.metrics.classification:precision_micro",
        "precision_weighted": "dlpipe.metrics.classification:precision_weighted",
        "recall_micro": "dlpipe.metrics.classification:recall_micro",
        "recall_weighted": "dlpipe.metrics.classification:recall_weighted",
        "top_3_accuracy": "dlpipe.metrics.classification:top_3_accuracy",
        "top_5_accuracy": "dlpipe.metrics.classification:top_5_accuracy",
    },
    "metric:regression": {
        "mae": "dlpipe.metrics.regression:mae",
        "mse": "dlpipe.metrics.regression:mse",
        "rmse": "dlpipe.metrics.regression:rmse",
        "r2": "dlpipe.metrics.regression:r2",
        "mape": "dlpipe.metrics.regression:mape",
    },
    # (y, forecast) → a number, over every step of the horizon; naive_* are given the
    # last-value forecast (dlpipe/metrics/forecasting.py).
    "metric:forecasting": {
        "mae": "dlpipe.metrics.regression:mae",
        "mse": "dlpipe.metrics.regression:mse",
        "rmse": "dlpipe.metrics.regression:rmse",
        "naive_mae": "dlpipe.metrics.regression:mae",
        "naive_rmse": "dlpipe.metrics.regression:rmse",
    },
    # (ground_truth, predictions) per image → a number; see dlpipe/metrics/detection.py.
    "metric:detection": {
        "map": "dlpipe.metrics.detection:map_50_95",
        "map_50": "dlpipe.metrics.detection:map_50",
        "map_75": "dlpipe.metrics.detection:map_75",
    },
    # fid(real_features, generated_features), inception_score(probabilities).
    # Embeddings: reconstruction error, and how well a kNN classifier on them recovers labels.
    "metric:embedding": {
        "reconstruction_mse": "dlpipe.metrics.embedding:reconstruction_mse",
        "knn_accuracy": "dlpipe.metrics.embedding:knn_accuracy",
    },
    "metric:generation": {
        "fid": "dlpipe.metrics.generative:fid",
        "inception_score": "dlpipe.metrics.generative:inception_score",
    },
    "exporter": {
        "keras": "dlpipe.exporters.keras_file:FORMAT",
        "saved_model": "dlpipe.exporters.saved_model:FORMAT",
        "tflite": "dlpipe.exporters.tflite:FORMAT",
        "onnx": "dlpipe.exporters.onnx:FORMAT",
    },
    # A task: its facts and its pipeline (dlpipe/tasks/base.py); `task:` in a spec names one.
    "task": {
        "classification": "dlpipe.tasks.classification:TASK",
        "regression": "dlpipe.tasks.regression:TASK",
        "forecasting": "dlpipe.tasks.forecasting:TASK",
        "detection": "dlpipe.tasks.detection:TASK",
        "embedding": "dlpipe.tasks.embedding:TASK",
        "generation": "dlpipe.tasks.generation:TASK",
    },
}

TABLES = MappingProxyType({kind: MappingProxyType(t) for kind, t in _TABLES.items()})


def kinds() -> tuple[str, ...]:
    return tuple(TABLES)


def names(kind: str) -> tuple[str, ...]:
    """The names of one kind, in registration order; imports nothing."""
    try:
        return tuple(TABLES[kind])
    except KeyError:
        raise KeyError(f"unknown registry kind {kind!r}; known: {', '.join(TABLES)}") from None


def target(kind: str, name: str) -> str:
    """`"module:attribute"` for a name, with a did-you-mean when the name is unknown."""
    table = TABLES[kind]
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}{did_you_mean(name, table)}")
    return table[name]


def load(kind: str, name: str):
    """Import and return the object registered under `name`."""
    module_name, _, attribute = target(kind, name).partition(":")
    return getattr(importlib.import_module(module_name), attribute)
