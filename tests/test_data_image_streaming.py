"""Streaming image sources (`data.streaming` with image_folder or image_csv): the same splits,
labels and statistics as the source read whole, at most a chunk of images decoded at once,
each epoch's order a function of (seed, epoch), memory that does not grow with the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlpipe.errors import DataError
from tests._file_streams import assert_epoch_memory_flat, assert_resumes_exactly
from tests.test_data_sources import prepared, write_csv, write_images, write_spec


def folder_spec(tmp_path, streaming: str = "\nstreaming: {chunk_rows: 7}", extra: str = "", more: str = "") -> Path:
    data = ("source: {type: image_folder, path: images}\nfeatures: [{name: image, type: image}]\n"
            f"target: {{name: label}}{more}{streaming}")
    return write_spec(tmp_path, data, extra="prepare: {normalization: {image: {type: zscore}}}\n" + extra)


def test_a_streamed_image_folder_prepares_as_the_folder_read_whole(tmp_path):
    write_images(tmp_path / "images", {"cat": 12, "dog": 9, "owl": 10})
    whole = prepared(folder_spec(tmp_path, streaming=""))
    data = prepared(folder_spec(tmp_path))
    assert data.class_names == whole.class_names == ["cat", "dog", "owl"]
    for name in ("train", "validation", "test"):  # the same seeded, stratified split
        assert np.array_equal(data.splits[name].rows, whole.splits[name].rows), name
        assert np.array_equal(data.splits[name].y, whole.splits[name].y), name
    assert data.extra["splits"] == whole.extra["splits"]  # files relative to the folder
    feature, reference = data.features[0], whole.features[0]
    assert feature.shape == reference.shape == (5, 6, 3)
    np.testing.assert_allclose(feature.mean, reference.mean, rtol=1e-9)
    np.testing.assert_allclose(feature.std, reference.std, rtol=1e-7)
    # Only a sample is held; it is the split's first images, in file order.
    np.testing.assert_array_equal(data.splits["test"].x["image"], whole.splits["test"].x["image"])
    assert data.describe()["streaming"] == {"chunk_rows": 7, "chunks": 5, "peak_rows": 7}
    # Reading a split again: each training image once an epoch, at most a chunk decoded at once.
    stream = data.splits["train"].stream
    seen, labels = [], []
    for x, y in stream.batches(epoch=2, size=4):
        assert len(y) <= 4
        seen.append(x["image"])
        labels.append(y)
    train = whole.splits["train"]
    order = stream.order(2)
    np.testing.assert_array_equal(np.concatenate(seen), train.x["image"][order])
    np.testing.assert_array_equal(np.concatenate(labels), train.y[order])
    assert stream.reader.peak_rows == 7
    # The order of an epoch is a function of (seed, epoch): the same again, another epoch another.
    np.testing.assert_array_equal(stream.order(2), order)
    assert not np.array_equal(stream.order(3), order)
    assert sorted(stream.order(3).tolist()) == list(range(len(train)))


def test_a_streamed_image_csv_prepares_as_the_csv_read_whole(tmp_path):
    written = write_images(tmp_path / "pics", {"a": 8, "b": 8}, mode="RGB", seed=3)
    paths = sorted(str(Path(p).relative_to(tmp_path)) for p in written)
    write_csv(tmp_path / "index.csv", ["file", "kind"], [[p, Path(p).parent.name] for p in paths])
    spec = """
        source: {type: image_csv, path: index.csv, image_column: file, color_mode: grayscale}
        features: [{name: file, type: image}]
        target: {name: kind}
        split: {train: 0.5, validation: 0.25, test: 0.25}"""
    extra = "prepare: {normalization: {image: {type: minmax}}}\n"
    whole = prepared(write_spec(tmp_path, spec, extra=extra))
    data = prepared(write_spec(tmp_path, spec + "\n        streaming: true", extra=extra))
    record, reference = data.extra["splits"], whole.extra["splits"]
    assert record["unit"] == reference["unit"] == "row" and record["source"] == reference["source"]
    for name, rows in reference["splits"].items():  # row numbers of the CSV
        np.testing.assert_array_equal(record["splits"][name], rows)
    assert data.features[0].shape == (5, 6, 1)
    np.testing.assert_allclose(data.features[0].mean, whole.features[0].mean)
    np.testing.assert_allclose(data.features[0].std, whole.features[0].std)
    x, y = next(data.splits["test"].stream.batches())
    np.testing.assert_array_equal(x["file"], whole.splits["test"].x["file"])
    np.testing.assert_array_equal(y, whole.splits["test"].y)


def test_a_streamed_folder_names_the_bad_image(tmp_path):
    written = write_images(tmp_path / "images", {"cat": 10, "dog": 10})
    bad = sorted(written)[13]
    Path(bad).write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"^{bad}: not an image$"):
        prepared(folder_spec(tmp_path))
    write_images(tmp_path / "images", {"dog": 10}, seed=1)
    write_images(tmp_path / "other", {"dog": 1}, size=(4, 4))
    (tmp_path / "other" / "dog" / "00.png").replace(tmp_path / "images" / "dog" / "03.png")
    with pytest.raises(DataError, match=r"dog/03.png: image of 4×4 pixels, but .*cat/00.png has 6×5; "):
        prepared(folder_spec(tmp_path))


def test_streaming_image_sources_is_checked_in_the_spec(tmp_path):
    from dlpipe.spec import check_text

    write_images(tmp_path / "images", {"cat": 3, "dog": 3})
    text = folder_spec(tmp_path, extra="").read_text()
    assert check_text("s.yaml", text) == []
    augmented = text.replace("prepare: {", "prepare: {augmentation: [{type: flip, mode: horizontal}], ")
    assert check_text("s.yaml", augmented) == []
    two = text.replace("features: [{name: image, type: image}]",
                       "features: [{name: image, type: image}, {name: other, type: numerical}]")
    assert any("reads one image feature (the images) and the label, not a second feature" in str(line)
               for line in check_text("s.yaml", two))


def test_memory_of_an_epoch_does_not_grow_with_the_files(tmp_path):
    """Iterating an epoch of 40 or 400 files holds as much at its peak (a batch, not the files)."""
    from dlpipe.data.image_streaming import ImageFiles, ImageStream

    written = write_images(tmp_path / "images", {"a": 4}, size=(48, 48))
    files = sorted(written)

    def stream_of(n: int) -> ImageStream:
        reader = ImageFiles([files[i % len(files)] for i in range(n)], "rgb", chunk=16)
        reader.path = str(tmp_path / "images")
        return ImageStream(reader, np.arange(n), np.zeros(n, np.int64), "image", seed=1, shuffle_buffer=32)

    assert_epoch_memory_flat(stream_of)


@pytest.mark.slow
def test_a_streamed_image_run_resumes_exactly_and_trains(tmp_path):
    """The training input of epochs [1, 2) equals the second epoch of [0, 2), augmentation
    included (what exact resume needs); a whole run trains and writes the folder's split."""
    from dlpipe.data.augment import augmenter
    from dlpipe.runner import run_spec

    write_images(tmp_path / "images", {"cat": 14, "dog": 14}, size=(8, 8))
    extra = ("  augmentation: [{type: translation, factor: 0.2}, {type: noise, stddev: 0.05}]\n"
             "training: {epochs: 2, batch_size: 8, progress: none}\nexport: {formats: [keras]}\n")
    spec = folder_spec(tmp_path, extra="")
    spec.write_text(spec.read_text().replace("prepare: {normalization: {image: {type: zscore}}}\n",
                                             "prepare:\n  normalization: {image: {type: zscore}}\n" + extra)
                    .replace("model: {type: mlp, units: [4]}", "model: {type: cnn, blocks: [{filters: 4, convs: 1}], "
                             "global_pool: avg, head: {units: [8]}}"))
    from dlpipe.spec import load_document

    data = prepared(spec)
    loaded, _ = load_document(spec)
    assert_resumes_exactly(data.splits["train"], "image", augment=augmenter(loaded, data))
    root = run_spec(spec, out=tmp_path / "run", command=["pytest"])
    described = json.loads((root / "data.json").read_text())
    assert described["streaming"]["peak_rows"] == 7
    assert np.isfinite(json.loads((root / "metrics.json").read_text())["test"]["accuracy"])
    names = json.loads((root / "splits.json").read_text())["splits"]["test"]
    assert names and all(name.split("/")[0] in ("cat", "dog") for name in names)


@pytest.mark.slow
def test_a_streamed_folder_trains_on_jax_without_tensorflow_and_resumes_to_the_same_bits(tmp_path):
    """backend: jax, TensorFlow hidden: numpy batches decoded by PIL; killed (SIGKILL) in epoch
    2 after epoch 1's checkpoint and resumed, the weights equal an uninterrupted run's bits."""
    from tests.test_backend import dlpipe_without_tensorflow

    write_images(tmp_path / "images", {"cat": 40, "dog": 40}, size=(8, 8))
    spec = folder_spec(tmp_path, extra="training: {epochs: 2, batch_size: 8, progress: none}\n"
                                       "export: {formats: [keras]}\nbackend: jax\n")
    spec.write_text(spec.read_text().replace("model: {type: mlp, units: [4]}", "model: {type: cnn, blocks: "
                                             "[{filters: 4, convs: 1}], global_pool: avg, head: {units: [8]}}"))
    cache = {"DLPIPE_CACHE_DIR": str(tmp_path / "cache")}
    whole = dlpipe_without_tensorflow("run", str(spec), "--out", str(tmp_path / "whole"), env=cache)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = dlpipe_without_tensorflow("run", str(spec), "--out", str(tmp_path / "killed"),
                                       env={"DLPIPE_TEST_KILL_AT": "train:13", **cache})  # 8 batches an epoch
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = dlpipe_without_tensorflow("run", str(spec), "--out", str(tmp_path / "killed"), "--resume", env=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("whole", "killed"))
    assert a["backend"] == "jax" and "tensorflow" not in a["versions"]
    assert b["resumed_from_epoch"] == 1 and a["weights_sha256"] == b["weights_sha256"]
    assert json.loads((tmp_path / "whole" / "data.json").read_text())["streaming"]["peak_rows"] == 7
    assert np.isfinite(json.loads((tmp_path / "whole" / "metrics.json").read_text())["test"]["accuracy"])


@pytest.mark.slow
def test_tfrecord_files_stream_as_the_same_rows_in_a_csv(tmp_path):
    """Two TFRecord files (a glob) read `chunk_rows` records at a time: the same hashed
    splits, labels and statistics as the same rows streamed from a CSV; a bad record is named."""
    import tensorflow as tf

    from tests.test_data_sources import streaming_rows

    x, label = streaming_rows(300)
    write_csv(tmp_path / "rows.csv", ["a", "b", "c", "label"], [[*r, l] for r, l in zip(x, label)])
    for part, rows in (("0", slice(0, 170)), ("1", slice(170, 300))):
        with tf.io.TFRecordWriter(str(tmp_path / f"rows-{part}.tfrecord")) as writer:
            for r, l in zip(x[rows], label[rows]):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    **{k: tf.train.Feature(float_list=tf.train.FloatList(value=[v])) for k, v in zip("abc", r)},
                    "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[l.encode()]))})).SerializeToString())
    features = "{a: {dtype: float}, b: {dtype: float}, c: {dtype: float}, label: {dtype: string}}"
    csv = prepared(write_spec(tmp_path, "source: {type: csv, path: rows.csv}\ntarget: {name: label}\n"
                              "streaming: {chunk_rows: 64}", extra="prepare: {normalization: {numerical: {type: zscore}}}\n"))
    data = prepared(write_spec(tmp_path, f"source: {{type: tfrecord, path: 'rows-*.tfrecord', features: {features}}}\n"
                               "target: {name: label}\nstreaming: {chunk_rows: 64}",
                               extra="prepare: {normalization: {numerical: {type: zscore}}}\n"))
    assert data.describe()["streaming"] == {"chunk_rows": 64, "chunks": 6, "peak_rows": 64}  # 3 chunks a file
    for name in ("train", "validation", "test"):
        assert np.array_equal(data.splits[name].rows, csv.splits[name].rows)
        assert np.array_equal(data.splits[name].y, csv.splits[name].y)
    for ours, theirs in zip(data.features, csv.features):
        np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-6)
        np.testing.assert_allclose(ours.std, theirs.std, rtol=1e-6)
    seen = np.concatenate([xs["a"][:, 0] for xs, _ in data.splits["train"].stream.batches(epoch=1)])
    assert sorted(seen.tolist()) == sorted(x[csv.splits["train"].rows, 0].astype(np.float32).tolist())
    wrong = features.replace("c: {dtype: float}", "c: {dtype: string}")
    with pytest.raises(DataError, match=r"rows-0.tfrecord: record 1: feature 'c' does not match"):
        prepared(write_spec(tmp_path, f"source: {{type: tfrecord, path: 'rows-*.tfrecord', features: {wrong}}}\n"
                            "features: [{name: a, type: numerical}]\ntarget: {name: label}\nstreaming: true"))
