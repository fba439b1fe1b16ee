"""`dlpipe predict`: raw CSV / JSONL / images in, class names and probabilities out."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import _runs
from dlpipe.cli import main
from dlpipe.errors import DataError, DlpipeError
from dlpipe.prediction import Writer, locate_model, read_examples, records

INTERFACE = {
    "task": "classification",
    "class_names": ["no", "yes"],
    "output": {"units": 1, "activation": "sigmoid"},
    "inputs": [
        {"name": "tenure months", "input": "tenure_months", "type": "numerical", "shape": [1]},
        {"name": "plan", "input": "plan", "type": "categorical", "shape": [1]},
    ],
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


# No TensorFlow below, until the slow tests.

def test_csv_rows_become_inputs_by_column_or_input_name(tmp_path):
    path = write(tmp_path / "rows.csv", "plan,tenure_months,extra\npro,3,x\n7,12.5,y\nbasic,1,z\n")
    examples = read_examples(path, INTERFACE)
    assert examples.count == 3 and examples.labels is None
    batch = examples.batch(0, 2)
    np.testing.assert_array_equal(batch["tenure_months"], np.array([[3.0], [12.5]], dtype=np.float32))
    assert batch["tenure_months"].dtype == np.float32
    assert batch["plan"].dtype == object and batch["plan"].tolist() == [["pro"], ["7"]]


def test_jsonl_lines_become_inputs(tmp_path):
    path = write(tmp_path / "rows.jsonl", '{"tenure months": 4, "plan": "plus"}\n\n{"tenure months": [5], "plan": 3}\n')
    batch = read_examples(path, INTERFACE).batch(0, 2)
    assert batch["tenure_months"].tolist() == [[4.0], [5.0]] and batch["plan"].tolist() == [["plus"], ["3"]]


@pytest.mark.parametrize("name, text, message", [
    ("rows.csv", "plan\npro\n", "rows.csv: no column 'tenure months'; the model takes: tenure months, plan"),
    ("rows.csv", "plan,tenure_months\npro,1\nplus,abc\n",
     "rows.csv: row 3, column 'tenure months': expected a number, got 'abc'"),
    ("rows.csv", "plan,tenure_months\npro,1\n,2\n", "rows.csv: row 3, column 'plan': a missing value"),
    ("rows.jsonl", '{"plan": "pro", "tenure_months": 1}\n[1]\n', "rows.jsonl: row 2: expected a JSON object, got list"),
    ("rows.jsonl", '{"plan": "pro", "tenure_months": [1, 2]}\n',
     "rows.jsonl: line 1, column 'tenure months': expected 1 value(s) (shape (1,)), got 2"),
    ("rows.txt", "x\n", "rows.txt: unknown input kind; use .csv, .jsonl, an image (.png, .jpg, .jpeg, .bmp, .gif) "
     "or a folder of images"),
])
def test_bad_input_is_a_located_data_error(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(DataError) as failed:
        read_examples(path, INTERFACE).batch(0, 10)
    assert str(failed.value) == f"{tmp_path}/{message}"


def test_images_need_a_model_with_one_image_input(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not decoded before the check")
    with pytest.raises(DataError) as failed:
        read_examples(tmp_path, INTERFACE)
    assert str(failed.value) == (f"{tmp_path}: image files need a model with one image input; this one takes "
                                 "tenure months (numerical), plan (categorical)")


def test_records_turn_a_sigmoid_into_two_class_probabilities():
    rows = records(INTERFACE, np.array([[0.25], [0.9]], dtype=np.float32), ["a.png", "b.png"], "file")
    assert rows == [{"file": "a.png", "prediction": "no", "probabilities": {"no": 0.75, "yes": 0.25}},
                    {"file": "b.png", "prediction": "yes",
                     "probabilities": {"no": pytest.approx(0.1), "yes": pytest.approx(0.9)}}]
    softmax = {**INTERFACE, "class_names": ["a", "b", "c"], "output": {"units": 3, "activation": "softmax"}}
    assert records(softmax, np.array([[0.1, 0.7, 0.2]]), None, "file")[0]["prediction"] == "b"
    regression = {**INTERFACE, "task": "regression", "class_names": None}
    assert records(regression, np.array([[2.5]]), None, "file") == [{"prediction": 2.5}]


def test_csv_writer_has_a_column_per_class():
    handle = io.StringIO()
    writer = Writer(handle, "csv", INTERFACE, labelled=False, label_name="file")
    writer.write(records(INTERFACE, np.array([[0.25]]), None, "file"))
    assert handle.getvalue() == "prediction,probability_no,probability_yes\nno,0.75,0.25\n"


def test_model_and_output_errors(tmp_path):
    with pytest.raises(DlpipeError) as failed:
        locate_model(tmp_path)
    assert str(failed.value) == (f"{tmp_path}: not a run directory, an export directory, a SavedModel or a .keras, "
                                 ".onnx or .tflite file")
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(DlpipeError) as failed:
        locate_model(tmp_path)
    assert str(failed.value) == (f"{tmp_path}: no model card (model_card.json) beside the model; write one with "
                                 "`dlpipe export RUN_DIR`")
    rows = write(tmp_path / "rows.csv", "plan\npro\n")
    result = invoke(tmp_path, rows, "--out", tmp_path / "out.txt")
    assert result.exit_code == 1
    assert result.output == f"error: --out {tmp_path / 'out.txt'}: the suffix chooses the format; use .csv or .jsonl\n"


def test_out_naming_the_input_by_any_path_is_refused_and_the_input_kept(tmp_path, monkeypatch):
    rows = write(tmp_path / "rows.csv", "plan\npro\n")
    (tmp_path / "link.csv").symlink_to(rows)
    os.link(rows, tmp_path / "hard.csv")
    monkeypatch.chdir(tmp_path)
    for out in [rows, Path("rows.csv"), Path("./sub/../rows.csv"), tmp_path / "link.csv", tmp_path / "hard.csv"]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        result = invoke(tmp_path, rows, "--out", out)
        assert (result.exit_code, result.output) == (
            1, f"error: --out {out}: is the input {rows}; predictions never overwrite their input, choose another file\n")
    assert rows.read_text() == "plan\npro\n"
    model = write(tmp_path / "model.csv", "x\n")  # a model path is an input too (here not a model)
    result = invoke(model, rows, "--out", model)
    assert result.output == (f"error: --out {model}: is the model {model}; predictions never overwrite their "
                             "input, choose another file\n")


# Real runs --------------------------------------------------------------------------------

def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def five_rows(tmp_path_factory):
    """Five raw rows of the breast-cancer data, with the dataset's own column names."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    rows = [0, 1, 19, 20, 100]
    path = tmp_path_factory.mktemp("rows") / "patients.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*bunch.feature_names, "target"])
        for row in rows:
            writer.writerow([repr(float(v)) for v in bunch.data[row]] + [int(bunch.target[row])])
    return path, bunch.data[rows].astype(np.float32)


@pytest.mark.slow
def test_five_csv_rows_through_the_saved_model_match_model_keras(five_rows, tmp_path):
    import keras

    root = _runs.tabular()
    path, raw = five_rows
    through_saved_model = invoke(root / "export" / "saved_model", path, "--out", tmp_path / "saved_model.csv")
    through_keras = invoke(root / "model.keras", path, "--out", tmp_path / "keras.csv")
    assert through_saved_model.exit_code == 0 and through_keras.exit_code == 0, through_saved_model.output
    served, trained = read_csv(tmp_path / "saved_model.csv"), read_csv(tmp_path / "keras.csv")
    assert list(served[0]) == ["prediction", "probability_malignant", "probability_benign"]
    assert [row["prediction"] for row in served] == [row["prediction"] for row in trained]
    probabilities = lambda rows: np.array([[float(row["probability_malignant"]), float(row["probability_benign"])]
                                           for row in rows])
    assert np.abs(probabilities(served) - probabilities(trained)).max() <= 1e-5
    # The oracle: model.keras itself, on the same numbers, without dlpipe's reading code.
    model = keras.saving.load_model(root / "model.keras")
    card = json.loads((root / "export" / "model_card.json").read_text())
    inputs = {entry["input"]: raw[:, [i]] for i, entry in enumerate(card["inputs"])}
    benign = model.predict(inputs, verbose=0)[:, 0]
    assert np.abs(probabilities(served)[:, 1] - benign).max() <= 1e-5
    assert [row["prediction"] for row in served] == ["benign" if p >= 0.5 else "malignant" for p in benign]
    assert [row["prediction"] for row in served] == ["malignant", "malignant", "benign", "benign", "malignant"]


@pytest.mark.slow
def test_run_directory_to_stdout_and_jsonl(five_rows, tmp_path):
    root = _runs.tabular()
    path, _ = five_rows
    result = invoke(root, path)
    assert result.exit_code == 0
    stdout = [line for line in result.stdout.splitlines() if line]
    assert stdout[0] == "prediction,probability_malignant,probability_benign" and len(stdout) == 6
    assert invoke(root / "export", path, "--out", tmp_path / "p.jsonl").exit_code == 0
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [sorted(line) for line in lines] == [["prediction", "probabilities"]] * 5
    assert [line["prediction"] for line in lines] == [row.split(",")[0] for row in stdout[1:]]
    assert all(abs(sum(line["probabilities"].values()) - 1) < 1e-6 for line in lines)


@pytest.mark.slow
def test_a_folder_of_png_digits(tmp_path):
    """PNG files as a person would have them (0..255, some 32×32 RGB): converted back to the
    8×8 0..16 scans the model learned from, they get the classes model.keras gives the scans."""
    import keras
    import tensorflow as tf
    from sklearn.datasets import load_digits

    images = load_digits().images[:40]
    folder = tmp_path / "digits"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()  # a symbolic link to a folder is followed
    (folder / "big").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for i, scan in enumerate(images):
        pixels = np.round(scan * 255 / 16).astype(np.uint8)[..., np.newaxis]
        if i % 2:  # 4× larger, three channels: resized and turned grey again
            pixels = np.repeat(np.kron(pixels, np.ones((4, 4, 1), np.uint8)), 3, axis=-1)
        target = folder / ("big" if i % 2 else ".") / f"{i:02d}.png"
        target.write_bytes(tf.io.encode_png(pixels).numpy())
    result = invoke(_runs.digits() / "export", folder, "--out", tmp_path / "digits.csv", "--batch-size", "16")
    assert result.exit_code == 0, result.output
    assert "[dlpipe] predict: 16/40 examples" in result.stderr and "[dlpipe] predict: 40/40 examples" in result.stderr
    rows = read_csv(tmp_path / "digits.csv")
    order = [int(Path(row["file"]).stem) for row in rows]
    assert [row["file"] for row in rows][:2] == ["00.png", "02.png"] and sorted(order) == list(range(40))
    predicted = np.array([[float(row[f"probability_{k}"]) for k in range(10)] for row in rows])
    model = keras.saving.load_model(_runs.digits() / "model.keras")
    expected = model.predict({"image": images[order][..., np.newaxis].astype(np.float32)}, verbose=0)
    assert np.mean(predicted.argmax(axis=1) == expected.argmax(axis=1)) >= 0.95
    assert np.abs(predicted - expected).max() <= 0.05  # 8-bit pixels vs 17 levels: small rounding


@pytest.mark.slow
def test_a_saved_model_on_its_own_takes_text_and_unknown_categories(tmp_path):
    root = _runs.churn()
    alone = tmp_path / "churn_model"
    shutil.copytree(root / "export" / "saved_model", alone)
    rows = write(tmp_path / "customers.csv", "tenure_months,plan,region\n10,basic,north\n60,pro,south\n"
                 "20,enterprise,mars\n30,plus,south\n")
    assert invoke(alone, rows, "--out", tmp_path / "alone.csv").exit_code == 0
    assert invoke(root, rows, "--out", tmp_path / "run.csv").exit_code == 0
    served, trained = read_csv(tmp_path / "alone.csv"), read_csv(tmp_path / "run.csv")
    assert [row["prediction"] for row in served] == [row["prediction"] for row in trained]
    assert max(abs(float(a["probability_yes"]) - float(b["probability_yes"])) for a, b in zip(served, trained)) <= 1e-5
    # The rule: a new basic customer churns, a long-standing pro one stays.
    assert [row["prediction"] for row in served][:2] == ["yes", "no"]


def _encoded(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    from PIL import Image

    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if fmt == "P":
        image, fmt = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.mark.slow
def test_images_decode_and_resize_without_tensorflow_as_with_it():
    """On a backend other than TensorFlow, image files are decoded by Pillow and resized by
    NumPy: the same model inputs as TensorFlow's decode_image and resize (area when shrinking,
    bilinear when enlarging), for grey, RGB, RGBA, 16-bit and palette PNGs, a BMP (within 1e-4 of
    the 0..16 range) and a smooth JPEG (within 4 levels in 255: TensorFlow's and Pillow's JPEG
    decoders use different IDCT and chroma upsampling settings)."""
    import tensorflow  # noqa: F401  decode_image takes TensorFlow's path when it is imported
    from PIL import Image

    from dlpipe.prediction import _decode_with_pillow, decode_image

    rng = np.random.default_rng(0)
    images = {
        "grey": _encoded(rng.integers(0, 256, (20, 30), dtype=np.uint8), "PNG"),
        "rgb": _encoded(rng.integers(0, 256, (40, 25, 3), dtype=np.uint8), "PNG"),
        "rgba": _encoded(rng.integers(0, 256, (17, 23, 4), dtype=np.uint8), "PNG"),
        "16-bit": _encoded(rng.integers(0, 65536, (12, 9), dtype=np.uint16), "PNG"),
        "palette": _encoded(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8), "P"),
        "jpeg": _encoded(np.asarray(Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(
            (31, 33), Image.Resampling.BICUBIC)), "JPEG"),  # a photo's smoothness, not noise
        "bmp": _encoded(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), "BMP"),
    }
    shapes = [(8, 8, 1), (16, 16, 3), (50, 60, 3), (10, 70, 1), (7, 5, 3)]
    for name, data in images.items():
        for shape in shapes:
            entry = {"shape": list(shape), "value_range": [0.0, 16.0]}
            expected = decode_image(data, entry, name)
            got = _decode_with_pillow(data, entry, name)
            assert got.shape == expected.shape == shape and got.dtype == np.float32, (name, shape)
            # The two JPEG decoders' IDCT and chroma upsampling settings differ.
            tolerance = 4 * 16.0 / 255 if name == "jpeg" else 1e-4
            np.testing.assert_allclose(got, expected, atol=tolerance, err_msg=f"{name} {shape}")
    with pytest.raises(DataError, match="^nothing.png: cannot decode as an image$"):
        _decode_with_pillow(b"not an image", {"shape": [8, 8, 1]}, "nothing.png")
