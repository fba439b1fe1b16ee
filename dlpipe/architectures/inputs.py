"""Model inputs: one named input per feature, raw values in, normalization inside.

Normalization statistics and category vocabularies were fitted on the training split
(dlpipe/data/prepare.py); here they become constant layers, so `model.keras` and every
export take raw data: numbers, pixels, category names as text.

An architecture `take`s the features it reads from `Encoded` (a cnn its image, an rnn its
sequences); the features left over join the architecture's output in the head (concat,
then the head's dense layers): that is how several inputs meet.
"""

from __future__ import annotations

import keras
import numpy as np

from dlpipe.architectures import BuildProblem


class Encoded:
    """Normalized input tensors by input name, with what is known of each feature."""

    def __init__(self, tensors: dict[str, keras.KerasTensor], features: dict,
                 raw: dict[str, keras.KerasTensor] | None = None):
        self.tensors = tensors
        self.features = features
        self.raw = raw or {}
        """The model's inputs by input name, before normalization (a pretrained backbone
        normalizes images its own way)."""
        self.taken: set[str] = set()

    def take(self, *types: str) -> dict[str, keras.KerasTensor]:
        """The tensors of features of these types (all when none given), marked as read."""
        chosen = {name: t for name, t in self.tensors.items()
                  if name not in self.taken and (not types or self.features[name].type in types)}
        self.taken.update(chosen)
        return chosen

    def rest(self) -> dict[str, keras.KerasTensor]:
        return {name: t for name, t in self.tensors.items() if name not in self.taken}

    def __len__(self) -> int:
        return len(self.tensors)


def build_inputs(features) -> tuple[dict[str, keras.KerasTensor], Encoded]:
    """(inputs by input name, normalized tensors by input name)."""
    inputs, encoded = {}, {}
    for feature in features:
        if feature.type == "categorical":
            inputs[feature.input_name], encoded[feature.input_name] = categorical_input(feature)
            continue
        if feature.type == "ordinal":
            inputs[feature.input_name], encoded[feature.input_name] = ordinal_input(feature)
            continue
        if feature.type == "text":
            inputs[feature.input_name], encoded[feature.input_name] = text_input(feature)
            continue
        tensor = keras.Input(shape=feature.shape, name=feature.input_name,
                             dtype=getattr(feature, "dtype", "float32"))
        inputs[feature.input_name] = tensor
        if getattr(feature, "fill", None) is not None:
            from dlpipe.architectures.layers import Impute

            tensor = Impute(feature.fill, name=f"{feature.input_name}_impute")(tensor)
        if getattr(feature, "relative", False):
            from dlpipe.architectures.layers import SubtractLast

            tensor = SubtractLast(name=f"{feature.input_name}_relative")(tensor)
            if feature.std is not None:  # the mean drops out: scale only
                tensor = keras.layers.Rescaling(scale=_scalar_or_list(1.0 / feature.std),
                                                name=f"{feature.input_name}_scale")(tensor)
            encoded[feature.input_name] = tensor
        elif feature.normalization == "none" or feature.mean is None:
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
    for feature in features:
        if feature.type == "image":
            encoded[feature.input_name] = _image_size(feature, encoded[feature.input_name])
    return inputs, Encoded(encoded, {f.input_name: f for f in features}, raw=inputs)


def _image_size(feature, tensor) -> keras.KerasTensor:
    """The spec's channels and size, inside the model (after normalization), so exports
    take images as stored."""
    channels, size = getattr(feature, "channels", None), getattr(feature, "size", None)
    if channels is not None and channels != tensor.shape[-1]:
        from dlpipe.architectures.layers import ChannelConvert

        tensor = ChannelConvert(channels, name=f"{feature.input_name}_channels")(tensor)
    if size is not None and tuple(size) != tuple(tensor.shape[1:3]):
        # training=False: called without it, Keras' Resizing puts the traced graph of every
        # export (SavedModel, ONNX, TFLite) in training mode, and a BatchNormalization after
        # it then normalizes with the batch's statistics (max abs diff ~0.5 against Keras).
        tensor = keras.layers.Resizing(int(size[0]), int(size[1]), interpolation="bilinear",
                                       name=f"{feature.input_name}_resize")(tensor, training=False)
    return tensor


def categorical_input(feature) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Text in → index (0 = out of vocabulary) → one-hot vector or embedding.

    The lookup is the only layer that sees the string input; exporters rely on that to
    move it out of models whose runtime cannot run it (dlpipe/exporters/tflite.py)."""
    tensor = keras.Input(shape=(1,), name=feature.input_name, dtype="string")
    fill = _text_fill(feature)
    # With an imputation the missing value (the empty string) gets the last slot, which
    # then becomes the imputed category's (index 0 is the out-of-vocabulary bucket).
    vocabulary = list(feature.vocabulary) + ([MISSING_TEXT] if fill is not None else [])
    index = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1,
                                      name=f"{feature.input_name}_lookup")(tensor)
    if fill is not None:
        from dlpipe.architectures.layers import ReplaceIndex

        index = ReplaceIndex(len(vocabulary), feature.vocabulary.index(fill) + 1,
                             name=f"{feature.input_name}_impute")(index)
    size = len(feature.vocabulary) + 1
    if feature.encoding == "embedding":
        pretrained = getattr(feature, "pretrained", None)
        if pretrained is not None:  # row 0 is the out-of-vocabulary bucket
            layer, _ = pretrained_embedding(feature, [None, *feature.vocabulary], f"{feature.input_name}_embedding")
            vectors = layer(index)
            layer.set_weights([layer.pretrained_matrix])
        else:
            vectors = keras.layers.Embedding(size, feature.embedding_dim, name=f"{feature.input_name}_embedding")(index)
        return tensor, keras.layers.Flatten(name=f"{feature.input_name}_flatten")(vectors)
    return tensor, keras.layers.CategoryEncoding(size, output_mode="one_hot", name=f"{feature.input_name}_one_hot")(index)


def ordinal_input(feature) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Text in → its position in the order (a value outside it fails, as in the data
    stage) → scaled to 0..1, so the first layer sees one ordered number."""
    tensor = keras.Input(shape=(1,), name=feature.input_name, dtype="string")
    fill = _text_fill(feature)
    vocabulary = list(feature.order) + ([MISSING_TEXT] if fill is not None else [])
    index = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=0,
                                      name=f"{feature.input_name}_order")(tensor)
    if fill is not None:  # the missing value's slot (last) becomes the imputed value's place
        from dlpipe.architectures.layers import ReplaceIndex

        index = ReplaceIndex(len(feature.order), feature.order.index(fill), name=f"{feature.input_name}_impute")(index)
    scaled = keras.layers.Rescaling(1.0 / (len(feature.order) - 1), name=f"{feature.input_name}_scale")(index)
    return tensor, scaled


TEXT_RESERVED = ("", "[UNK]")
"""TextVectorization's ids 0 (padding) and 1 (out of vocabulary)."""


BAG_MODES = {"tfidf": "tf_idf", "count": "count", "multi_hot": "multi_hot"}
"""A text feature's bag-of-n-grams `encoding` → TextVectorization's output_mode."""


def is_bag(feature) -> bool:
    """A text feature encoded as one vector of n-gram weights (not a sequence of ids)."""
    return feature.type == "text" and (getattr(feature, "text", None) or {}).get("encoding", "sequence") in BAG_MODES


def adapt_text(feature, texts: np.ndarray) -> None:
    """The feature's vocabulary from the training split's texts (most frequent first); for
    TF-IDF also each entry's inverse document frequency (`feature.idf`)."""
    texts = np.asarray(texts, dtype=object).reshape(-1).astype(str)
    fill = _text_fill(feature)
    if fill is not None:  # the texts the model will see: missing ones imputed
        texts = np.where(texts == MISSING_TEXT, fill, texts)
    counts = TextCounts(feature)
    counts.add(texts)
    counts.finish()


class TextCounts:
    """A text feature's vocabulary counted a chunk of texts at a time (a streamed source:
    data/streaming.py, data/text_streaming.py), equal to `adapt` on all of them at once.

    The counting is the TextVectorization's own (`update_state`: its standardize, split and
    n-grams, a count per token and, for TF-IDF, per document; `finalize_state`: sorted by
    count, ties by the token, cut at `vocabulary_size`), which is what `adapt` runs on its
    one batch. What is held is one count per distinct token (and n-gram), as adapt holds."""

    def __init__(self, feature):
        self.feature = feature
        self.layer = None  # made at the first texts: a bad file found before them costs no TensorFlow import
        self.texts = 0

    def _layer(self):
        if self.layer is None:
            self.layer = _vectorizer(self.feature, vocabulary=None, max_tokens=self.feature.vocabulary_size)
            self.layer.reset_state()
        return self.layer

    def add(self, texts) -> None:
        """Count some texts (any number, in any chunks)."""
        texts = np.asarray(texts, dtype=object).reshape(-1, 1).astype(str)
        if len(texts):
            import tensorflow as tf  # adapt runs on tf.data, whatever the backend of the model

            self._layer().update_state(tf.constant(texts))
            self.texts += len(texts)

    def finish(self) -> None:
        """Sets `feature.vocabulary` (and `feature.idf` for TF-IDF) from the texts counted."""
        layer = self._layer()
        layer.finalize_state()
        # A sequence reserves ids 0 (padding) and 1 (out of vocabulary); a bag only the latter.
        reserved = 1 if is_bag(self.feature) else len(TEXT_RESERVED)
        self.feature.vocabulary = [str(token) for token in layer.get_vocabulary()[reserved:]]
        if self.feature.text.get("encoding") == "tfidf":
            self.feature.idf = [float(w) for w in np.asarray(layer._lookup_layer.idf_weights_const)[reserved:]]


def _vectorizer(feature, vocabulary, max_tokens=None, name=None):
    text = feature.text
    mode = BAG_MODES.get(text.get("encoding", "sequence"), "int")
    idf = getattr(feature, "idf", None) if mode == "tf_idf" and vocabulary is not None else None
    return keras.layers.TextVectorization(
        max_tokens=max_tokens, standardize=None if text["standardize"] == "none" else text["standardize"],
        split=text["split"], ngrams=None if text["ngrams"] == 1 else text["ngrams"],
        output_mode=mode, output_sequence_length=text["sequence_length"] if mode == "int" else None,
        vocabulary=vocabulary, idf_weights=idf, name=name)


def text_input(feature) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Raw text in → token ids (sequence_length of them, 0-padded) by a TextVectorization
    holding the training split's vocabulary, which architectures embed; or, for a bag
    encoding, one vector of n-gram weights (out of vocabulary first), used as it is."""
    tensor = keras.Input(shape=(1,), name=feature.input_name, dtype="string")
    vectorizer = _vectorizer(feature, list(feature.vocabulary), name=f"{feature.input_name}_vectorize")
    ids = vectorizer(tensor)
    if is_bag(feature) and len(ids.shape) == 3:  # (batch, 1, entries) for a (batch, 1) input
        ids = keras.layers.Reshape((ids.shape[-1],), name=f"{feature.input_name}_bag")(ids)
    fill = _text_fill(feature)
    if fill is not None and not is_bag(feature):  # a text without a token (missing: "") takes the imputed text's ids
        from dlpipe.architectures.layers import FillEmptyTokens

        import tensorflow as tf  # text features run on TensorFlow only

        fill_ids = keras.ops.convert_to_numpy(vectorizer(tf.constant([[fill]])))[0]
        ids = FillEmptyTokens(fill_ids, name=f"{feature.input_name}_impute")(ids)
    return tensor, ids


def _text_fill(feature) -> str | None:
    """The imputed value of a categorical, ordinal or text feature, if it has one."""
    fill = getattr(feature, "fill", None)
    return None if fill is None else str(np.ravel(fill)[0])


def pretrained_embedding(feature, words: list, name: str, mask_zero: bool = False):
    """An Embedding whose rows start as the file's vectors (`layer.pretrained_matrix`, to be
    set once the layer is built), frozen unless `trainable`; (layer, known-words mask)."""
    from dlpipe.data.embeddings import embedding_matrix

    matrix, known = embedding_matrix(words, feature.pretrained, seed=len(words))
    if feature.embedding_dim is not None and feature.embedding_dim != matrix.shape[1]:
        raise BuildProblem(("data", "features"), f"feature {feature.name!r}: embedding_dim {feature.embedding_dim} "
                           f"but the vectors of {feature.pretrained['path']} have {matrix.shape[1]} numbers")
    if mask_zero:
        matrix[0] = 0.0
    layer = keras.layers.Embedding(len(words), matrix.shape[1], mask_zero=mask_zero,
                                   trainable=bool(feature.pretrained["trainable"]), name=name)
    layer.pretrained_matrix = matrix
    return layer, known


def _scalar_or_list(values: np.ndarray):
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(values[0]) if np.all(values == values[0]) else values.astype(np.float32).tolist()


def flat_concat(tensors: list[keras.KerasTensor]) -> keras.KerasTensor:
    """Flatten every feature and concatenate them into one vector per example."""
    flat = [t if len(t.shape) == 2 else keras.layers.Flatten()(t) for t in tensors]
    return flat[0] if len(flat) == 1 else keras.layers.Concatenate(name="features")(flat)


def flat_features(encoded: Encoded, tensors: dict[str, keras.KerasTensor], embedding_dim: int,
                  name: str = "features") -> keras.KerasTensor | None:
    """One vector per example from several features: numbers, images and numeric
    sequences flattened; token ids embedded and averaged over positions (a bag of
    embeddings, blind to order). None when there are no tensors."""
    flat = []
    for input_name, tensor in tensors.items():
        if is_bag(encoded.features[input_name]):
            flat.append(tensor)  # already one vector per example
            continue
        if encoded.features[input_name].type in ("tokens", "text"):
            tensor = token_embedding(encoded, input_name, tensor, embedding_dim)
            tensor = keras.layers.GlobalAveragePooling1D(name=f"{input_name}_bag")(tensor)
        elif len(tensor.shape) > 2:
            tensor = keras.layers.Flatten(name=f"{input_name}_flat")(tensor)
        flat.append(tensor)
    if len(flat) > 1:
        return keras.layers.Concatenate(name=name)(flat)
    return flat[0] if flat else None


def token_embedding(encoded: Encoded, input_name: str, tensor, width: int) -> keras.KerasTensor:
    """Token ids → vectors. Text: the feature's own width (or the architecture's), padding
    (id 0) masked so that recurrent layers and averages skip it; pretrained rows when given."""
    feature = encoded.features[input_name]
    if feature.type != "text":
        return keras.layers.Embedding(feature.vocabulary_size, width, name=f"{input_name}_embedding")(tensor)
    words = [None, None, *feature.vocabulary]  # padding, out of vocabulary, then the tokens
    if getattr(feature, "pretrained", None) is not None:
        layer, _ = pretrained_embedding(feature, words, f"{input_name}_embedding", mask_zero=True)
        vectors = layer(tensor)
        layer.set_weights([layer.pretrained_matrix])
        return vectors
    return keras.layers.Embedding(len(words), feature.embedding_dim or width, mask_zero=True,
                                  name=f"{input_name}_embedding")(tensor)


def sequence_inputs(encoded: Encoded, embedding_dim: int) -> keras.KerasTensor:
    """The sequence and token features (all of them, taken), as one batch × steps × channels
    tensor: token ids embedded, then every sequence joined along the channels."""
    parts = []
    bags = [name for name in encoded.tensors if name not in encoded.taken and is_bag(encoded.features[name])]
    if bags:
        raise BuildProblem(("data", "features"), f"text feature {encoded.features[bags[0]].name!r} is a bag of "
                           "n-grams (one vector per example); an rnn, transformer or ssm reads sequences: use "
                           "encoding: sequence, or model type mlp")
    for input_name, tensor in encoded.take("sequence", "tokens", "text").items():
        if encoded.features[input_name].type in ("tokens", "text"):
            tensor = token_embedding(encoded, input_name, tensor, embedding_dim)
        parts.append(tensor)
    lengths = {int(t.shape[1]) for t in parts}
    if len(lengths) > 1:
        raise BuildProblem(("data", "features"), "sequence features are joined step by step and need one "
                           f"length; they have {', '.join(map(str, sorted(lengths)))} steps")
    if not parts:
        raise BuildProblem(("model", "type"), "this architecture reads sequence, tokens or text features; there are none")
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="sequences")(parts)


def one_image(encoded: Encoded, architecture: str) -> keras.KerasTensor:
    images = encoded.take("image")
    if len(images) != 1:
        raise BuildProblem(("model", "type"), f"a {architecture} reads exactly one image feature; "
                           f"the data has {len(images)}")
    return next(iter(images.values()))


def initializer(name: str):
    """A new initializer object per layer: Keras repeats an unseeded instance's values."""
    from dlpipe import registry

    return registry.load("initializer", name)()


def l1_l2(l1: float, l2: float):
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


MISSING_TEXT = ""
"""A missing categorical, ordinal or text value as the model takes it (dlpipe/data/values.py)."""
