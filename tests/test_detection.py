"""Task detection: the shapes and COCO sources, the detector's targets, and one tiny run of
the whole pipeline (shared by the slow tests) checked against pycocotools and its exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.data.detection import centernet_targets, generate_shapes, read_coco
from dlpipe.spec import load_spec
from dlpipe.spec.detection import CocoSource, ShapesSource
from test_backend import AFTER_TRAINING

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "data.source.images=96", "--set", "data.source.image_size=32", "--set", "data.source.min_size=6",
        "--set", "data.source.max_size=14", "--set", "model.filters=[8,16,16]", "--set", "model.head_filters=16",
        "--set", "training.epochs=3", "--set", "training.schedule=null",
        # Every peak kept: the mAP comparison and the exports then see 20 ranked boxes per image.
        "--set", "model.decode.score_threshold=0.0"]


def shapes(**kwargs) -> ShapesSource:
    return ShapesSource(type="shapes", **{"images": 20, "image_size": 48, **kwargs})


def test_same_seed_draws_the_same_images_and_boxes():
    first, second, other = (generate_shapes(shapes(), seed) for seed in (7, 7, 8))
    assert np.array_equal(first[0], second[0])
    assert all(np.array_equal(a, b) for a, b in zip(first[1], second[1]))
    assert all(np.array_equal(a, b) for a, b in zip(first[2], second[2]))
    assert not np.array_equal(first[0], other[0])
    assert [len(b) for b in first[1]] != [len(b) for b in other[1]] or any(
        not np.array_equal(a, b) for a, b in zip(first[1], other[1]))


@pytest.mark.parametrize("kind", ["rectangle", "circle", "triangle"])
def test_boxes_are_the_drawn_pixels_extent(kind):
    """Without noise, the pixels that differ from the background span exactly the box."""
    images, boxes, labels = generate_shapes(shapes(classes=[kind], min_objects=1, max_objects=1, noise=0.0,
                                                   min_size=5, max_size=20), seed=3)
    for image, (box,), (label,) in zip(images, boxes, labels):
        x1, y1, x2, y2 = box.astype(int)
        inside = np.zeros(image.shape[:2], bool)
        inside[y1:y2, x1:x2] = True
        background = image[~inside][0]
        changed = (image != background).any(axis=-1)
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert label == 0
        assert box.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_spec_bounds_are_kept():
    source = shapes(images=60, min_objects=2, max_objects=4, min_size=6, max_size=9, max_overlap=0.0)
    _, boxes, labels = generate_shapes(source, seed=1)
    counts = [len(b) for b in boxes]
    assert min(counts) >= 1 and max(counts) == 4 and set(np.concatenate(labels)) == {0, 1, 2}
    sides = np.concatenate([b[:, 2:] - b[:, :2] for b in boxes])
    assert sides.min() >= 4 and sides.max() <= 9  # a circle or triangle may be a pixel narrower than its draw
    for b in boxes:  # max_overlap 0: no two boxes of an image intersect
        for i in range(len(b)):
            for j in range(i):
                assert min(b[i, 2], b[j, 2]) <= max(b[i, 0], b[j, 0]) or min(b[i, 3], b[j, 3]) <= max(b[i, 1], b[j, 1])


def test_targets_decode_back_to_the_boxes():
    boxes = [np.array([[4.0, 8.0, 20.0, 18.0], [30.0, 30.0, 41.0, 47.0]])]
    target = centernet_targets(boxes, [np.array([1, 0])], 48, 4, 2)
    assert target.shape == (1, 12, 12, 7)
    rows, cols, classes = np.nonzero(target[0, :, :, :2] == 1.0)
    assert sorted(zip(classes, rows, cols)) == [(0, 9, 8), (1, 3, 3)]
    for (x1, y1, x2, y2), (row, col) in zip(boxes[0], [(3, 3), (9, 8)]):
        w, h, dx, dy, mark = target[0, row, col, 2:]
        assert mark == 1 and target[0, :, :, 6].sum() == 2
        np.testing.assert_allclose([(col + dx - w / 2) * 4, (row + dy - h / 2) * 4, (col + dx + w / 2) * 4,
                                    (row + dy + h / 2) * 4], [x1, y1, x2, y2], atol=1e-5)


def test_coco_source_scales_boxes_to_the_resized_image(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(tmp_path / "images" / "wide.png")
    document = {"images": [{"id": 5, "file_name": "wide.png", "width": 100, "height": 50}],
                "annotations": [{"image_id": 5, "category_id": 9, "bbox": [0.1, 0.2, 0.5, 0.6]},
                                {"image_id": 5, "category_id": 3, "bbox": [0.0, 0.0, 1.0, 1.0]}],
                "categories": [{"id": 9, "name": "boat"}, {"id": 3, "name": "buoy"}]}
    (tmp_path / "boxes.json").write_text(json.dumps(document))
    source = CocoSource(type="coco", annotations="boxes.json", images="images", box_format="xyxy",
                        box_units="relative", image_size=20)
    images, boxes, labels, names, files = read_coco(source, tmp_path)
    assert images.shape == (1, 20, 20, 3) and names == ["buoy", "boat"] and files == ["wide.png"]
    np.testing.assert_allclose(boxes[0], [[2, 4, 10, 12], [0, 0, 20, 20]])
    assert labels[0].tolist() == [1, 0]


COCO_ERRORS = [  # the annotations line (line 3), the value the error points at, the message
    ('"annotations": [{"image_id": 1, "category_id": 4, "bbox": [1, 1, 2, 2]}]', "4",
     "annotations[0].category_id: category id 4 is not in 'categories'"),
    ('"annotations": [{"image_id": 9, "category_id": 1, "bbox": [1, 1, 2, 2]}]', "9",
     "annotations[0].image_id: image id 9 is not in 'images'"),
    ('"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 2]}]', "[1, 1, 0, 2]",
     "annotations[0].bbox: [1, 1, 0, 2] has no area as xywh (data.source.box_format)"),
    ('"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, "2", 2]}]', '[1, 1, "2", 2]',
     "annotations[0].bbox: expected 4 finite numbers, got [1, 1, '2', 2]"),
    ('"annotations": [{"image_id": 1, "category_id": 1}]', '{"image_id"', "annotations[0]: missing 'bbox'"),
]


@pytest.mark.parametrize("annotations, at, message", COCO_ERRORS)
def test_coco_errors_point_at_the_entry(tmp_path, annotations, at, message):
    from PIL import Image

    from dlpipe.errors import DataError

    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "a.png")
    text = ('{"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],\n'
            '"categories": [{"id": 1, "name": "dot"}],\n' + annotations + "}\n")
    (tmp_path / "boxes.json").write_text(text)
    with pytest.raises(DataError) as caught:
        read_coco(CocoSource(type="coco", annotations="boxes.json", images=".", image_size=16), tmp_path)
    assert str(caught.value) == f"{tmp_path / 'boxes.json'}:3:{annotations.index(at) + 1}: {message}"


def test_coco_image_of_another_size_than_its_entry(tmp_path):
    from PIL import Image

    from dlpipe.errors import DataError

    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "boxes.json").write_text('{"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}], '
                                         '"categories": [{"id": 1, "name": "dot"}], "annotations": []}')
    with pytest.raises(DataError, match=r"boxes.json:1:13: images\[0\]: a.png is 10 × 12 pixels, the entry says "
                                        r"10 × 10$"):
        read_coco(CocoSource(type="coco", annotations="boxes.json", images=".", image_size=16), tmp_path)


def test_template_is_valid_and_round_trips():
    spec = load_spec(ROOT / "specs" / "object-detection.yaml")
    assert spec.task == "detection" and spec.pipeline == "detection"
    assert type(spec).model_validate(spec.model_dump()) == spec
    assert (ROOT / "specs" / "object-detection.yaml").read_text().startswith(
        "# dlpipe run specs/object-detection.yaml\n")


# --- one tiny run of the whole pipeline -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from dlpipe.cli import main

    out = tmp_path_factory.mktemp("detection") / "run"
    result = CliRunner().invoke(main, ["run", str(ROOT / "specs" / "object-detection.yaml"), *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _test_split(run: Path):
    from dlpipe.data.detection import prepare_detection

    spec = load_spec(run / "spec.yaml")
    return spec, prepare_detection(spec, ROOT, located=None).splits["test"]


@pytest.mark.slow
def test_run_writes_the_contract_files(tiny_run):
    for name in ["spec.yaml", "run.json", "data.json", "metrics.json", "history.csv", "model.keras",
                 "export/verification.json", "export/keras/model.keras", "export/saved_model/saved_model.pb",
                 "evaluation/test/average_precision.json", "plots/detections.png", "report.html"]:
        assert (tiny_run / name).is_file(), name
    record = json.loads((tiny_run / "run.json").read_text())
    assert record["status"] == "completed" and record["data_fingerprint"].startswith("sha256:")
    assert set(record["stages"]) == {"data", "setup", "build", "train", "evaluate", "export", "report"}
    splits = json.loads((tiny_run / "splits.json").read_text())  # each image of each split, by name
    sizes = json.loads((tiny_run / "data.json").read_text())["split_sizes"]
    assert {name: len(images) for name, images in splits["splits"].items()} == sizes
    named = [image for images in splits["splits"].values() for image in images]
    assert len(set(named)) == len(named) and all(image.startswith("shape-") for image in named)
    header, *rows = (tiny_run / "history.csv").read_text().splitlines()
    assert "loss" in header.split(",") and "val_loss" in header.split(",") and len(rows) == 3
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"} and set(metrics["test"]) == {"map_50", "map", "map_75"}
    assert 0 <= metrics["test"]["map"] <= metrics["test"]["map_50"] <= 1
    page = (tiny_run / "report.html").read_text()
    assert "plots/detections.png" in page and "data:image/png;base64," in page


@pytest.mark.slow
def test_map_equals_cocoeval_on_the_runs_detections(tiny_run):
    from test_metrics_detection import coco_stats

    from dlpipe.metrics.detection import mean_average_precision

    _, test = _test_split(tiny_run)
    detections = json.loads((tiny_run / "evaluation/test/detections.json").read_text())
    assert [d["row"] for d in detections] == test.rows.tolist()
    assert sum(len(d["scores"]) for d in detections) == 20 * len(test)  # threshold 0: every peak kept

    def xywh(boxes):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)

    truths = [{"boxes": xywh(b), "labels": c} for b, c in zip(test.boxes, test.labels)]
    predictions = [{"boxes": xywh(d["boxes"]), "labels": np.array(d["classes"]), "scores": np.array(d["scores"])}
                   for d in detections]
    stats, _ = coco_stats(truths, predictions, 3)
    ours = mean_average_precision(test.ground_truth(), [{**p, "boxes": d["boxes"]} for p, d in zip(predictions, detections)])
    metrics = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert abs(ours.map - stats[0]) < 1e-6 and abs(ours.map_50 - stats[1]) < 1e-6 and abs(ours.map_75 - stats[2]) < 1e-6
    assert [metrics["map"], metrics["map_50"], metrics["map_75"]] == [ours.map, ours.map_50, ours.map_75]


@pytest.mark.slow
def test_exports_reload_and_return_the_same_detections(tiny_run):
    import tensorflow as tf

    from dlpipe.modelfile import load_keras_model

    verification = json.loads((tiny_run / "export/verification.json").read_text())
    assert set(verification) == {"keras", "saved_model"}
    assert all(r["passed"] and r["max_abs_diff"] <= 1e-4 and r["agreement"] == 1.0 for r in verification.values())
    # The registry's defaults for a detector's boxes (exporter entries' output_tolerance).
    assert verification["keras"]["tolerance"] == {"max_abs_diff": 1e-5, "agreement": 1.0}
    assert verification["saved_model"]["tolerance"] == {"max_abs_diff": 1e-4, "agreement": 1.0}

    _, test = _test_split(tiny_run)
    images = test.images.astype(np.float32)
    assert all(r["samples"] == len(images) and r["batch_sizes"] == [len(images), 1] for r in verification.values())
    trained = load_keras_model(tiny_run / "model.keras")
    exported = load_keras_model(tiny_run / "export/keras/model.keras")
    serve = tf.saved_model.load(str(tiny_run / "export/saved_model")).signatures["serving_default"]
    expected = {k: np.asarray(v) for k, v in trained(images).items()}
    assert expected["boxes"].shape == (len(images), 20, 4) and expected["classes"].dtype == np.int32
    assert (expected["boxes"][..., 2:] >= expected["boxes"][..., :2]).all() and expected["boxes"].max() <= 32
    for got in ({k: np.asarray(v) for k, v in exported(images).items()},
                {k: v.numpy() for k, v in serve(image=tf.constant(images)).items()}):
        assert set(got) == {"boxes", "scores", "classes"}
        np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1e-4)
        np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-6)
        assert np.array_equal(got["classes"], expected["classes"])


@pytest.mark.slow
def test_a_rerun_with_another_export_reuses_training_and_evaluation(tiny_run, tmp_path):
    import shutil

    from dlpipe.cli import main

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    result = CliRunner().invoke(main, ["run", str(ROOT / "specs" / "object-detection.yaml"), *TINY,
                                       "--set", "export.formats=[keras]", "--out", str(copy)])
    assert result.exit_code == 0, result.output
    stages = json.loads((copy / "run.json").read_text())["stages"]
    assert [stages[name]["reused"] for name in ("data", "train", "evaluate", "export")] == [False, True, True, False]
    assert (copy / "metrics.json").read_bytes() == (tiny_run / "metrics.json").read_bytes()
    assert set(json.loads((copy / "export/verification.json").read_text())) == {"keras"}
    assert not (copy / "export/saved_model").exists()


@pytest.mark.slow
def test_the_trained_detector_runs_on_the_jax_backend(tiny_run, tmp_path):
    """keras.layers / keras.ops only: model.keras, trained on TensorFlow, loads and decodes
    the same detections on JAX."""
    import importlib.util
    import os
    import subprocess
    import sys

    from dlpipe.modelfile import load_keras_model

    if importlib.util.find_spec("jax") is None:  # in the test extra: CI fails rather than skips
        from _system import require

        require(False, "jax is not installed", "pip install 'dlpipe[jax]'")
    _, test = _test_split(tiny_run)
    images = test.images[:8].astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    code = ("import sys, numpy as np, keras\n"
            "from dlpipe.modelfile import load_keras_model\n"
            "model = load_keras_model(sys.argv[1])\n"
            "out = model(np.load(sys.argv[2]))\n"
            "np.savez(sys.argv[3], **{k: np.asarray(v) for k, v in out.items()}, params=model.count_params())\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code, str(tiny_run / "model.keras"), str(tmp_path / "images.npy"),
                    str(tmp_path / "jax.npz")], env=env, check=True, timeout=300)
    on_jax = np.load(tmp_path / "jax.npz")
    model = load_keras_model(tiny_run / "model.keras")
    on_tf = {k: np.asarray(v) for k, v in model(images).items()}
    assert int(on_jax["params"]) == model.count_params()
    np.testing.assert_allclose(on_jax["scores"], on_tf["scores"], atol=1e-4)
    confident = on_tf["scores"] > 0.05  # near-ties below this may swap places between backends
    np.testing.assert_allclose(on_jax["boxes"][confident], on_tf["boxes"][confident], atol=1e-3)
    assert np.array_equal(on_jax["classes"][confident], on_tf["classes"][confident])


@pytest.mark.slow
@pytest.mark.parametrize("box_format, box_units", [("xyxy", "pixels"), ("xywh", "pixels"), ("xyxy", "relative")])
def test_decoding_finds_peaks_and_writes_the_spec_box_format(box_format, box_units):
    """Hand-made maps (4 × 4 cells of stride 8 on a 32 px image, 2 classes): two peaks, a
    lower neighbour of one (suppressed by the 3 × 3 window) and a weak cell (below the
    threshold)."""
    from dlpipe.architectures.centernet import DecodeDetections

    maps = np.zeros((1, 4, 4, 2 + 4), np.float32)
    maps[0, 1, 2, 0] = 0.9     # class 0 peak at row 1, col 2
    maps[0, 1, 3, 0] = 0.6     # its neighbour: not a peak
    maps[0, 3, 0, 1] = 0.7     # class 1 peak at row 3, col 0
    maps[0, 0, 0, 1] = 0.02    # a peak below the threshold
    maps[0, 1, 2, 2:] = [2.0, 1.0, 0.5, 0.25]   # width, height (cells), offset x, y
    maps[0, 3, 0, 2:] = [1.5, 3.0, 0.0, 0.75]
    decode = DecodeDetections(2, 8, 32, peak_window=3, max_detections=4, score_threshold=0.05,
                              box_format=box_format, box_units=box_units)
    out = {k: np.asarray(v) for k, v in decode(maps).items()}
    # centre (2.5, 1.25) cells → (20, 10) px, 16 × 8 px; centre (0, 3.75) → (0, 30), 12 × 24 clipped
    expected = np.array([[12.0, 6.0, 28.0, 14.0], [0.0, 18.0, 6.0, 32.0]])
    if box_format == "xywh":
        expected[:, 2:] -= expected[:, :2]
    if box_units == "relative":
        expected /= 32
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.7, 0.0, 0.0], atol=1e-7)
    assert out["classes"][0].tolist() == [0, 1, -1, -1]
    np.testing.assert_allclose(out["boxes"][0, :2], expected, atol=1e-5)
    assert (out["boxes"][0, 2:] == 0).all()


@pytest.mark.slow
def test_predict_on_image_files_returns_the_runs_detections(tiny_run, tmp_path):
    """PNG files of test images through `dlpipe predict` (run dir → model.keras; the
    SavedModel) give the detections the evaluation stage recorded for those images."""
    from PIL import Image

    from dlpipe.cli import main

    _, test = _test_split(tiny_run)
    (tmp_path / "images").mkdir()
    for i, image in enumerate(test.images[:4]):
        Image.fromarray(image).save(tmp_path / "images" / f"img{i}.png")
    recorded = json.loads((tiny_run / "evaluation/test/detections.json").read_text())[:4]
    result = CliRunner().invoke(main, ["predict", str(tiny_run), str(tmp_path / "images"),
                                       "--out", str(tmp_path / "found.jsonl")])
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in (tmp_path / "found.jsonl").read_text().splitlines()]
    assert [f["file"] for f in found] == [f"img{i}.png" for i in range(4)]
    names = ["rectangle", "circle", "triangle"]
    for mine, theirs in zip(found, recorded):
        np.testing.assert_allclose(mine["scores"], theirs["scores"], atol=1e-6)
        np.testing.assert_allclose(mine["boxes"], theirs["boxes"], atol=1e-4)
        assert mine["classes"] == [names[c] for c in theirs["classes"]]
    result = CliRunner().invoke(main, ["predict", str(tiny_run / "export" / "saved_model"),
                                       str(tmp_path / "images"), "--out", str(tmp_path / "found.csv")])
    assert result.exit_code == 0, result.output
    header, *rows = (tmp_path / "found.csv").read_text().splitlines()
    assert header == "file,class,score,x1,y1,x2,y2" and len(rows) == sum(len(r["scores"]) for r in recorded)
    first = rows[0].split(",")
    assert first[:2] == ["img0.png", names[recorded[0]["classes"][0]]]
    np.testing.assert_allclose([float(v) for v in first[2:]], [recorded[0]["scores"][0], *recorded[0]["boxes"][0]],
                               atol=1e-4)


@pytest.mark.slow
def test_validate_deep_builds_the_detector_the_run_trained(tiny_run):
    from dlpipe.cli import main

    result = CliRunner().invoke(main, ["validate", "--deep", str(ROOT / "specs" / "object-detection.yaml"), *TINY])
    assert result.exit_code == 0, result.output
    parameters = json.loads((tiny_run / "run.json").read_text())["parameters"]
    assert f"parameters: {parameters} " in result.output
    assert re.search(r"decode +DecodeDetections +\(batch, 20, 4\), \(batch, 20\), \(batch, 20\) ", result.output)


# dlpipe export and dlpipe evaluate on a detection run; the one export loop's verdicts --------


@pytest.mark.slow
def test_export_command_reexports_the_detector_with_the_spec_tolerance_and_samples(tiny_run, tmp_path):
    import shutil

    from dlpipe.cli import main

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    shutil.rmtree(copy / "export" / "saved_model")  # proves it comes back
    result = CliRunner().invoke(main, ["export", str(copy), "--set", "export.samples=5",
                                       "--set", "export.tolerance={keras: {max_abs_diff: 1.0e-6}}"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("keras            verified     keras/model.keras  max abs diff ")
    assert lines[1].startswith("saved_model      verified     saved_model  max abs diff ")
    verification = json.loads((copy / "export/verification.json").read_text())
    assert verification["keras"]["tolerance"] == {"max_abs_diff": 1e-6}  # the spec's entry replaces the default
    assert verification["saved_model"]["tolerance"] == {"max_abs_diff": 1e-4, "agreement": 1.0}
    assert all(r["samples"] == 5 and r["passed"] and r["agreement"] == 1.0 for r in verification.values())
    assert (copy / "export/saved_model/saved_model.pb").is_file()
    card = json.loads((copy / "export/model_card.json").read_text())
    assert card["exports"] == verification and card["class_names"] == ["rectangle", "circle", "triangle"]
    assert card["metrics"] == json.loads((tiny_run / "metrics.json").read_text())
    assert (copy / "model.keras").read_bytes() == (tiny_run / "model.keras").read_bytes()


@pytest.mark.slow
def test_an_export_that_differs_fails_or_warns_as_export_verify_says(tiny_run, tmp_path, capsys):
    """The keras format copies the run's model file; given another detector's file (an
    untrained one of the same architecture), the reload differs and the loop says so."""
    from dlpipe.architectures.centernet import build_detector, build_maps_model
    from dlpipe.data.detection import prepare_detection
    from dlpipe.errors import StageError
    from dlpipe.exporters.detection import export_detector
    from dlpipe.modelfile import load_keras_model

    spec = load_spec(tiny_run / "spec.yaml", ["export.formats=[keras]"])
    data = prepare_detection(spec, ROOT, None)
    trained = load_keras_model(tiny_run / "model.keras")
    other = build_detector(spec, build_maps_model(spec, data.image_shape, 3), 3)
    other.save(tmp_path / "other.keras")
    with pytest.raises(StageError) as failed:
        export_detector(trained, spec, data, tmp_path / "error", keras_file=tmp_path / "other.keras")
    assert re.fullmatch(r"export: keras: max abs diff \S+ exceeds 1e-05(; class agreement \S+ is below 1)? "
                        rf"\(see {re.escape(str(tmp_path / 'error' / 'verification.json'))}\)", str(failed.value))
    assert json.loads((tmp_path / "error/verification.json").read_text())["keras"]["passed"] is False

    warn = spec.model_copy(update={"export": spec.export.model_copy(update={"verify": "warn"})})
    results = export_detector(trained, warn, data, tmp_path / "warn", keras_file=tmp_path / "other.keras")
    assert results["keras"]["passed"] is False and results["keras"]["max_abs_diff"] > 1e-5
    assert "[dlpipe] warning: export keras: max abs diff " in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_command_reproduces_the_runs_map(tiny_run, tmp_path):
    import shutil

    from dlpipe.cli import main

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    result = CliRunner().invoke(main, ["evaluate", str(copy)])
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.parent == copy / "evaluations"
    assert json.loads((folder / "metrics.json").read_text()) == json.loads((tiny_run / "metrics.json").read_text())
    assert (folder / "evaluation/test/detections.json").read_bytes() == \
        (tiny_run / "evaluation/test/detections.json").read_bytes()
    assert (folder / "plots/detections.png").is_file() and (folder / "report.html").is_file()
    assert (copy / "metrics.json").read_bytes() == (tiny_run / "metrics.json").read_bytes()
    result = CliRunner().invoke(main, ["evaluate", str(copy), "--data", str(tmp_path / "rows.csv")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (f"error: --data {tmp_path / 'rows.csv'}: task detection re-evaluates on the "
                                     "run's own splits (its images and boxes come from data.source); leave out --data")


JAX_RUN = AFTER_TRAINING + """
import json, numpy as np
from dlpipe.prediction import Predictor
rows = [{{"image": image.tolist()}} for image in np.load({images!r})]  # what dlpipe serve answers with
with open({served!r}, "w") as handle:
    json.dump(Predictor.open({run!r}).predict(rows), handle)
assert "tensorflow" not in sys.modules
"""


@pytest.mark.slow
def test_a_jax_run_without_tensorflow_decodes_what_tensorflow_decodes_from_its_weights(tmp_path):
    """The tiny run on backend jax, in a process where TensorFlow cannot be imported: trained,
    evaluated, exported to .keras, then `dlpipe evaluate` and `dlpipe predict` on it. Its
    model.keras, loaded here on TensorFlow, decodes the detections the JAX run recorded, and
    their mAP is the JAX run's; predict (image files) and the records `dlpipe serve` answers
    with (Predictor, nested lists) give them too."""
    from PIL import Image
    from test_backend import without_tensorflow

    from dlpipe.data.detection import prepare_detection
    from dlpipe.metrics.detection import kept_detections, mean_average_precision
    from dlpipe.modelfile import load_keras_model

    sets = [*TINY, "--set", "backend=jax", "--set", "export.formats=[keras]", "--set", "training.progress=none"]
    spec = load_spec(ROOT / "specs" / "object-detection.yaml", [s for s in sets if s != "--set"])
    test = prepare_detection(spec, ROOT, located=None).splits["test"]
    (tmp_path / "images").mkdir()
    for i, image in enumerate(test.images[:4]):
        Image.fromarray(image).save(tmp_path / "images" / f"img{i}.png")
    run = tmp_path / "run"
    commands = [["run", str(ROOT / "specs" / "object-detection.yaml"), *sets, "--out", str(run)],
                ["evaluate", str(run)],
                ["predict", str(run), str(tmp_path / "images"), "--out", str(tmp_path / "found.jsonl")]]
    np.save(tmp_path / "images.npy", test.images[:4])
    code = JAX_RUN.format(commands=commands, images=str(tmp_path / "images.npy"), run=str(run),
                          served=str(tmp_path / "served.json"))
    result = without_tensorflow(code, env={"DLPIPE_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["backend"] == "jax" and "tensorflow" not in record["versions"]
    assert json.loads((run / "export/verification.json").read_text())["keras"]["passed"] is True
    header, *rows = (run / "history.csv").read_text().splitlines()
    losses = [float(row.split(",")[header.split(",").index("loss")]) for row in rows]
    assert len(losses) == 3 and losses[-1] < losses[0], losses  # it learns

    recorded = json.loads((run / "evaluation/test/detections.json").read_text())
    assert [d["row"] for d in recorded] == test.rows.tolist()
    detector = load_keras_model(run / "model.keras")  # on TensorFlow, this process
    out = {k: np.asarray(v) for k, v in detector(test.images.astype(np.float32)).items()}
    mine = kept_detections(out, spec.model.decode, 32)
    confident = out["scores"] > 0.05  # near-ties below this may swap places between backends
    assert confident.sum() >= len(test)
    np.testing.assert_allclose(out["scores"], [d["scores"] for d in recorded], atol=1e-4)
    np.testing.assert_allclose(out["boxes"][confident], np.array([d["boxes"] for d in recorded])[confident],
                               atol=1e-3)
    assert np.array_equal(out["classes"][confident], np.array([d["classes"] for d in recorded])[confident])
    metrics = json.loads((run / "metrics.json").read_text())
    ours = mean_average_precision(test.ground_truth(), mine)
    assert abs(ours.map_50 - metrics["test"]["map_50"]) < 0.01 and abs(ours.map - metrics["test"]["map"]) < 0.01

    evaluated = sorted((run / "evaluations").iterdir())[-1]  # dlpipe evaluate on JAX: the run's mAP again
    assert json.loads((evaluated / "metrics.json").read_text()) == metrics
    names = ["rectangle", "circle", "triangle"]
    found = [json.loads(line) for line in (tmp_path / "found.jsonl").read_text().splitlines()]
    assert [f["file"] for f in found] == [f"img{i}.png" for i in range(4)]
    served = json.loads((tmp_path / "served.json").read_text())
    for one, other in zip(served, found):
        assert one["classes"] == other["classes"]
        np.testing.assert_allclose(one["boxes"], other["boxes"], atol=1e-5)
    for predicted, theirs in zip(found, recorded):
        np.testing.assert_allclose(predicted["scores"], theirs["scores"], atol=1e-5)
        np.testing.assert_allclose(predicted["boxes"], theirs["boxes"], atol=1e-3)
        assert predicted["classes"] == [names[c] for c in theirs["classes"]]
