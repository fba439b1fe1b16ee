"""Model inputs: one named input per feature, raw values in, normalization inside.

Normalization statistics and category vocabularies were fitted on the training split
(dlpipe/data/prepare.py); here they become constant layers, so `model.keras` and every
export take raw data: numbers, pixels, category names as text.
"""

from __future__ import annotations

import keras
import numpy as np


def build_inputs(features) -> tuple[dict[str, keras.KerasTensor], dict[str, keras.KerasTensor]]:
    """(inputs by input name, normalized tensors by input name)."""
    inputs, encoded = {}, {}
    for feature in features:
        if feature.type == "categorical":
            inputs[feature.input_name], encoded[feature.input_name] = categorical_input(feature)
            continue
        tensor = keras.Input(shape=feature.shape, name=feature.input_name, dtype="float32")
        inputs[feature.input_name] = tensor
        if feature.normalization == "none" or feature.mean is None:
            encoded[feature.input_name] = tensor
        elif feature.normalization == "rescale":
            scale = 1.0 / feature.std
            encoded[feature.input_name] = keras.layers.Rescaling(
                scale=_scalar_or_list(scale), offset=_scalar_or_list(-feature.mean * scale),
                name=f"{feature.input_name}_rescale")(tensor)
        else:
            encoded[feature.input_name] = keras.layers.Normalization(
                axis=-1, mean=feature.mean.astype(np.float32), variance=np.square(feature.std).astype(np.float32),
                name=f"{feature.input_name}_{feature.normalization}")(tensor)
    return inputs, encoded


def categorical_input(feature) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Text in → index (0 = out of vocabulary) → one-hot vector or embedding.

    The lookup is the only layer that sees the string input; exporters rely on that to
    move it out of models whose runtime cannot run it (dlpipe/exporters/tflite.py)."""
    tensor = keras.Input(shape=(1,), name=feature.input_name, dtype="string")
    index = keras.layers.StringLookup(vocabulary=list(feature.vocabulary), num_oov_indices=1,
                                      name=f"{feature.input_name}_lookup")(tensor)
    size = len(feature.vocabulary) + 1
    if feature.encoding == "embedding":
        vectors = keras.layers.Embedding(size, feature.embedding_dim, name=f"{feature.input_name}_embedding")(index)
        return tensor, keras.layers.Flatten(name=f"{feature.input_name}_flatten")(vectors)
    return tensor, keras.layers.CategoryEncoding(size, output_mode="one_hot", name=f"{feature.input_name}_one_hot")(index)


def _scalar_or_list(values: np.ndarray):
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(values[0]) if np.all(values == values[0]) else values.astype(np.float32).tolist()


def flat_concat(tensors: list[keras.KerasTensor]) -> keras.KerasTensor:
    """Flatten every feature and concatenate them into one vector per example."""
    flat = [t if len(t.shape) == 2 else keras.layers.Flatten()(t) for t in tensors]
    return flat[0] if len(flat) == 1 else keras.layers.Concatenate(name="features")(flat)
