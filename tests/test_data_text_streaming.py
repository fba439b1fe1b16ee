"""Streaming text (`data.streaming` with a text_folder, or a table with `text` features): the
vocabulary counted chunk by chunk equals Keras' `adapt` on the whole training split, a
folder splits as it does read whole, at most a chunk of texts is held, bad files are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlpipe.errors import DataError
from tests._file_streams import assert_epoch_memory_flat, assert_resumes_exactly
from tests.test_data_sources import prepared, write_csv, write_spec

WORDS = {"pos": ["good", "great", "fine", "nice", "lovely", "ok"],
         "neg": ["bad", "awful", "poor", "boring", "ok", "meh"]}
SHARED = ["The", "the!", "a", "A,", "Épée", "épée", "it's", "[UNK]", "and"]


def write_texts(folder: Path, counts: dict[str, int], seed: int = 0) -> list[Path]:
    """Seeded short texts, a class's words plus shared ones (case, punctuation and accents
    that standardization folds or keeps, many ties in the counts)."""
    rng = np.random.default_rng(seed)
    written = []
    for label, count in counts.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            words = rng.choice(WORDS[label] + SHARED, int(rng.integers(1, 9)))
            path = folder / label / f"{i:03d}.txt"
            path.write_text(" ".join(words), encoding="utf-8")
            written.append(path)
    return written


def folder_spec(tmp_path, feature: str = "", streaming: str = "\nstreaming: {chunk_rows: 7}", extra: str = "") -> Path:
    data = ("source: {type: text_folder, path: texts}\n"
            f"features: [{{name: text, type: text, vocabulary_size: 12, sequence_length: 8{feature}}}]\n"
            f"target: {{name: label}}{streaming}")
    return write_spec(tmp_path, data, extra=extra)


def adapted(feature_settings: dict, max_tokens: int, texts) -> tuple[list[str], list[float] | None]:
    """The oracle: a Keras TextVectorization adapted on all the texts at once."""
    import keras
    import tensorflow as tf

    mode = {"tfidf": "tf_idf", "count": "count", "multi_hot": "multi_hot"}.get(feature_settings["encoding"], "int")
    layer = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_mode=mode,
        standardize=None if feature_settings["standardize"] == "none" else feature_settings["standardize"],
        split=feature_settings["split"], ngrams=None if feature_settings["ngrams"] == 1 else feature_settings["ngrams"])
    layer.adapt(tf.constant(np.asarray(texts, dtype=object).reshape(-1).astype(str)))
    reserved = 2 if mode == "int" else 1
    idf = ([float(w) for w in np.asarray(layer._lookup_layer.idf_weights_const)[reserved:]]
           if mode == "tf_idf" else None)
    return [str(t) for t in layer.get_vocabulary()[reserved:]], idf


@pytest.mark.slow
@pytest.mark.parametrize("settings", [
    "",
    ", standardize: none, ngrams: 2",
    ", encoding: tfidf, ngrams: 2",
    ", encoding: multi_hot, standardize: strip_punctuation",
    ", split: character, standardize: lower, encoding: count",
])
def test_a_streamed_text_folder_prepares_as_the_folder_read_whole(tmp_path, settings):
    """The same files in each split (splits.json), the same labels, and a vocabulary (order,
    ties and the vocabulary_size cut; TF-IDF weights) equal to adapt on the training texts."""
    write_texts(tmp_path / "texts", {"neg": 19, "pos": 24})
    whole = prepared(folder_spec(tmp_path, settings, streaming=""))
    data = prepared(folder_spec(tmp_path, settings))
    assert data.class_names == whole.class_names == ["neg", "pos"]
    assert data.extra["splits"] == whole.extra["splits"]  # files relative to the folder
    for name in ("train", "validation", "test"):
        assert np.array_equal(data.splits[name].rows, whole.splits[name].rows), name
        assert np.array_equal(data.splits[name].y, whole.splits[name].y), name
    feature, reference = data.features[0], whole.features[0]
    assert feature.text == reference.text
    vocabulary, idf = adapted(reference.text, 12, whole.splits["train"].x["text"])
    assert feature.vocabulary == vocabulary and len(vocabulary) == (11 if reference.text["encoding"] != "sequence"
                                                                     else 10)
    assert getattr(feature, "idf", None) == idf
    assert data.describe()["streaming"] == {"chunk_rows": 7, "chunks": 7, "peak_rows": 7}
    # The sample held is the split's first texts; reading a split again gives its texts.
    np.testing.assert_array_equal(data.splits["test"].x["text"], whole.splits["test"].x["text"])
    stream = data.splits["train"].stream
    texts, labels = zip(*((x["text"], y) for x, y in stream.batches(epoch=3, size=5)))
    order = stream.order(3)
    np.testing.assert_array_equal(np.concatenate(texts), whole.splits["train"].x["text"][order])
    np.testing.assert_array_equal(np.concatenate(labels), whole.splits["train"].y[order])
    assert stream.reader.peak_rows == 7


@pytest.mark.slow
def test_text_columns_of_a_table_stream_with_the_adapted_vocabulary(tmp_path):
    """A CSV with a text, a categorical and a numerical feature, read 16 rows at a time: the
    text's vocabulary and TF-IDF weights equal adapt on the training rows (read by pandas);
    the same rows in a TFRecord file stream to the same vocabulary."""
    import pandas as pd

    rng = np.random.default_rng(4)
    rows = []
    for i in range(90):
        label = "pos" if i % 3 else "neg"
        text = " ".join(rng.choice(WORDS[label] + SHARED, int(rng.integers(1, 7)))).replace(",", "")
        rows.append([text, rng.choice(["x", "y"]), round(float(rng.normal()), 4), label])
    write_csv(tmp_path / "rows.csv", ["review", "kind", "score", "label"], rows)
    spec = write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        features:
          - {name: review, type: text, encoding: tfidf, ngrams: 2, vocabulary_size: 15}
          - {name: kind, type: categorical}
          - {name: score, type: numerical}
        target: {name: label}
        streaming: {chunk_rows: 16}""")
    data = prepared(spec)
    train = data.splits["train"]
    texts = pd.read_csv(tmp_path / "rows.csv")["review"].to_numpy(dtype=object)[train.rows]
    vocabulary, idf = adapted(data.features[0].text, 15, texts)
    assert data.features[0].vocabulary == vocabulary and len(vocabulary) == 14
    assert data.features[0].idf == idf
    assert data.features[1].vocabulary == ["x", "y"]
    assert data.describe()["streaming"] == {"chunk_rows": 16, "chunks": 6, "peak_rows": 16}
    pairs = [(text, int(label)) for x, y in train.stream.batches(epoch=1) for text, label in zip(x["review"][:, 0], y)]
    classes = {name: i for i, name in enumerate(data.class_names)}
    frame = pd.read_csv(tmp_path / "rows.csv").iloc[train.rows]
    assert sorted(pairs) == sorted(zip(frame["review"], frame["label"].map(classes)))  # each text with its label
    # The same rows as TFRecord (text as a bytes feature): the same split, vocabulary and weights.
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(tmp_path / "rows.tfrecord")) as writer:
        for text, kind, score, label in rows:
            strings = {"review": text, "kind": kind, "label": label}
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                **{k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) for k, v in strings.items()},
                "score": tf.train.Feature(float_list=tf.train.FloatList(value=[score]))})).SerializeToString())
    record = prepared(write_spec(tmp_path, spec.read_text().split("data:\n")[1].split("model:")[0].replace(
        "{type: csv, path: rows.csv}", "{type: tfrecord, path: rows.tfrecord, features: {review: {dtype: string}, "
        "kind: {dtype: string}, score: {dtype: float}, label: {dtype: string}}}")))
    assert np.array_equal(record.splits["train"].rows, train.rows)
    assert record.features[0].vocabulary == vocabulary and record.features[0].idf == idf


def test_a_streamed_folder_names_a_file_that_is_not_utf8_and_an_empty_folder(tmp_path):
    written = write_texts(tmp_path / "texts", {"neg": 12, "pos": 12})
    bad = sorted(written)[15]
    bad.write_bytes(b"caf\xe9 au lait")
    with pytest.raises(DataError, match=rf"^{bad}: not UTF-8 text \(invalid continuation byte at byte 3\)$"):
        prepared(folder_spec(tmp_path))
    (tmp_path / "empty" / "pos").mkdir(parents=True)
    spec = folder_spec(tmp_path)
    spec.write_text(spec.read_text().replace("path: texts", "path: empty"))
    with pytest.raises(DataError, match=r"empty: no .txt files found in subfolders \(one subfolder per class"):
        prepared(spec)


def test_streaming_text_is_checked_in_the_spec():
    from dlpipe.spec import check_text

    def problems(data: str, extra: str = "") -> list[str]:
        text = f"version: 1\nname: t\ntask: classification\ndata:\n{data}\nmodel: {{type: mlp, units: [4]}}\n{extra}"
        return [str(p) for p in check_text("s.yaml", text)]

    folder = ("  source: {type: text_folder, path: texts}\n  features: [{name: text, type: text}]\n"
              "  target: {name: label}\n  streaming: true")
    assert problems(folder) == []
    table = ("  source: {type: jsonl, path: rows.jsonl}\n  features: [{name: review, type: text, encoding: tfidf},"
             " {name: n, type: numerical}]\n  target: {name: label}\n  streaming: true")
    assert problems(table) == []
    two = folder.replace("[{name: text, type: text}]", "[{name: text, type: text}, {name: n, type: numerical}]")
    assert problems(two) == ["s.yaml:6:56: data.features[1].type: streaming a text_folder source reads one text "
                             "feature (the texts) and the label, not a second feature"]
    categorical = folder.replace("type: text}", "type: categorical}")
    assert problems(categorical) == ["s.yaml:6:33: data.features[0].type: streaming a text_folder source reads one "
                                     "text feature (the texts) and the label, not categorical"]
    imputed = problems(table, "prepare: {imputation: {text: {type: constant, value: ''}}}\n")
    assert imputed == ["s.yaml:10:23: prepare.imputation: imputation is not available with data.streaming"]
    on_jax = problems(folder, "backend: jax\n")
    assert len(on_jax) == 1 and "data.features[0] (text) maps strings to ids with TensorFlow" in on_jax[0]


def test_memory_of_an_epoch_does_not_grow_with_the_files(tmp_path):
    """Iterating an epoch of 40 or 400 text files holds as much at its peak (a batch)."""
    from dlpipe.data.text_streaming import TextFiles, TextStream

    files = [str(p) for p in write_texts(tmp_path / "texts", {"pos": 4})]
    for path in files:
        Path(path).write_text("word " * 2000, encoding="utf-8")

    def stream_of(n: int) -> TextStream:
        reader = TextFiles([files[i % len(files)] for i in range(n)], chunk=16, path=str(tmp_path))
        return TextStream(reader, np.arange(n), np.zeros(n, np.int64), "text", seed=1, shuffle_buffer=32)

    assert_epoch_memory_flat(stream_of)


@pytest.mark.slow
def test_a_streamed_text_folder_trains_resumes_exactly_and_exports(tmp_path):
    """The training input of epochs [1, 2) equals the second epoch of [0, 2) (exact resume);
    a whole run streams (peak_rows), exports keras and saved_model, and the model's vocabulary
    is the in-memory adapt's."""
    import tensorflow as tf

    from dlpipe.modelfile import load_keras_model
    from dlpipe.runner import run_spec

    write_texts(tmp_path / "texts", {"neg": 30, "pos": 30})
    spec = folder_spec(tmp_path, ", embedding_dim: 8", extra="training: {epochs: 2, batch_size: 8, progress: none}\n"
                                                             "export: {formats: [keras, saved_model]}\n")
    spec.write_text(spec.read_text().replace("streaming: {chunk_rows: 7}", "streaming: {chunk_rows: 7}\n"
                                             "  shuffle_buffer: 10"))
    data = prepared(spec)
    assert_resumes_exactly(data.splits["train"], "text")

    root = run_spec(spec, out=tmp_path / "run", command=["pytest"])
    assert json.loads((root / "data.json").read_text())["streaming"]["peak_rows"] == 7
    assert np.isfinite(json.loads((root / "metrics.json").read_text())["test"]["accuracy"])
    verification = json.loads((root / "export" / "verification.json").read_text())
    assert verification["keras"]["passed"] and verification["saved_model"]["passed"]
    names = json.loads((root / "splits.json").read_text())["splits"]
    whole_data = prepared(folder_spec(tmp_path, ", embedding_dim: 8", streaming=""))
    assert names == whole_data.extra["splits"]["splits"]
    model = load_keras_model(root / "model.keras")
    layer = next(layer for layer in model.layers if layer.name == "text_vectorize")
    vocabulary, _ = adapted(whole_data.features[0].text, 12, whole_data.splits["train"].x["text"])
    assert layer.get_vocabulary()[2:] == vocabulary
    outputs = model({"text": tf.constant([["good great fine"], ["bad awful poor"]])})
    assert outputs.shape[0] == 2
