"""Export of a detector (task detection): `keras` (export/keras/model.keras, reloaded with
Keras in safe mode) and `saved_model` (export/saved_model/, `serving_default(image)` →
boxes, scores, classes, reloaded with `tf.saved_model.load` alone). Each is run on the
test images — the first few one by one, then all in one batch — and its decoded outputs
compared with the trained detector's: max abs diff of boxes and scores, and the share of
detections whose class agrees. `dlpipe predict` runs detectors through `load_detector` and
`write_detections`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlpipe.errors import StageError
from dlpipe.exporters.base import atomic_dir
from dlpipe.exporters.verify import SINGLES
from dlpipe.rundir import atomic_write_json

OUTPUTS = ("boxes", "scores", "classes")
TOLERANCE = {"keras": 1e-5, "saved_model": 1e-4}
"""Largest abs diff of boxes (pixels) and scores accepted from each format."""


def _keras(detector, directory: Path):
    import keras

    import dlpipe.architectures.centernet  # noqa: F401 — registers DecodeDetections for safe loading

    with atomic_dir(directory) as tmp:
        tmp.mkdir(parents=True)
        detector.save(tmp / "model.keras")
    loaded = keras.saving.load_model(directory / "model.keras", safe_mode=True)
    return lambda images: {k: np.asarray(v) for k, v in loaded(images, training=False).items()}


def _saved_model(detector, directory: Path, interface: dict):
    import tensorflow as tf

    with atomic_dir(directory) as tmp:
        detector.export(str(tmp), format="tf_saved_model", verbose=False)
        (tmp / "assets").mkdir(exist_ok=True)
        (tmp / "assets" / "dlpipe_interface.json").write_text(json.dumps(interface, indent=2) + "\n")
    serve = tf.saved_model.load(str(directory)).signatures["serving_default"]
    return lambda images: {k: v.numpy() for k, v in serve(image=tf.constant(images)).items()}


WRITERS = {"keras": lambda d, path, interface: _keras(d, path),
           "saved_model": _saved_model}


def compare(reference: dict, exported: dict) -> dict:
    missing = sorted(set(OUTPUTS) - set(exported))
    if missing:
        return {"max_abs_diff": float("inf"), "mean_abs_diff": float("inf"), "agreement": 0.0, "missing": missing}
    diffs = [np.abs(np.asarray(reference[k], np.float64) - np.asarray(exported[k], np.float64)).ravel()
             for k in ("boxes", "scores")]
    diff = np.concatenate(diffs)
    kept = reference["classes"] >= 0
    agreement = float(np.mean(reference["classes"][kept] == exported["classes"][kept])) if kept.any() else 1.0
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "agreement": agreement}


def export_detector(detector, spec, images: np.ndarray, interface: dict, out: Path) -> dict:
    """Write, reload and compare each of `spec.export.formats`; export/verification.json."""
    images, interface = images.astype(np.float32), with_inputs(interface)
    reference = {k: np.asarray(v) for k, v in detector(images, training=False).items()}
    results = {}
    for name in spec.export.formats:
        predict = WRITERS[name](detector, out / name, interface)
        singles = [predict(images[i:i + 1]) for i in range(min(SINGLES, len(images)))]
        batch = predict(images)
        result = compare(reference, batch)
        for i, one in enumerate(singles):
            single = compare({k: v[i:i + 1] for k, v in reference.items()}, one)
            result["max_abs_diff"] = max(result["max_abs_diff"], single["max_abs_diff"])
            result["agreement"] = min(result["agreement"], single["agreement"])
        result.update(path=f"export/{name}", samples=int(len(images)), batch_sizes=[int(len(images)), 1],
                      tolerance=TOLERANCE[name])
        result["passed"] = result["max_abs_diff"] <= TOLERANCE[name] and result["agreement"] == 1.0
        results[name] = result
    atomic_write_json(out / "verification.json", results)
    # export/model_card.json: what `dlpipe predict EXPORT_DIR` or a run directory reads.
    atomic_write_json(out / "model_card.json",
                      {**interface, "exports": {name: {"passed": r["passed"]} for name, r in results.items()}})
    failed = [f"{name}: max abs diff {r['max_abs_diff']:.3g}, class agreement {r['agreement']:.4f}"
              for name, r in results.items() if not r["passed"]]
    if failed and spec.export.verify == "error":
        raise StageError("export", "exported detector differs from the trained one: " + "; ".join(failed))
    return results


# `dlpipe predict` on a detector -------------------------------------------------------------


def with_inputs(interface: dict) -> dict:
    """The interface as `dlpipe predict` reads it: its one image input (0..255) also listed
    under `inputs`, as model cards list them."""
    entry = interface["input"]
    return {**interface, "inputs": [{"name": entry["name"], "input": entry["name"], "type": "image",
                                     "shape": entry["shape"], "value_range": entry["range"]}]}


def load_detector(kind: str, path: Path, allow_unsafe: bool = False):
    """images → {"boxes", "scores", "classes"} with the export's own runtime."""
    if kind == "saved_model":
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return lambda images: {k: v.numpy() for k, v in serve(image=tf.constant(images)).items()}
    import dlpipe.architectures.centernet  # noqa: F401 — registers DecodeDetections
    from dlpipe.modelfile import load_keras_model

    model = load_keras_model(path, allow_unsafe=allow_unsafe, opt_in="--allow-unsafe-deserialization")
    return lambda images: {k: np.asarray(v) for k, v in model(images, training=False).items()}


def write_detections(handle, fmt: str, interface: dict, examples, run, batch_size: int, log) -> None:
    """JSON lines: one object per image (file, boxes, scores, classes); CSV: one row per
    detection (file, class, score, then the box in the model's format and units). Only kept
    detections (score at least the spec's threshold) are written."""
    import csv
    import sys

    names = interface["class_names"]
    box = interface["outputs"]["boxes"]
    columns = ["x1", "y1", "x2", "y2"] if box["format"] == "xyxy" else ["x", "y", "width", "height"]
    writer = csv.writer(handle, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["file", "class", "score", *columns])
    for start in range(0, examples.count, batch_size):
        stop = min(start + batch_size, examples.count)
        (images,) = examples.batch(start, stop).values()
        out = run(images.astype(np.float32))
        for i, label in enumerate(examples.labels[start:stop]):
            kept = out["classes"][i] >= 0
            boxes, scores = out["boxes"][i][kept].tolist(), out["scores"][i][kept].tolist()
            classes = [names[c] for c in out["classes"][i][kept]]
            if writer is None:
                handle.write(json.dumps({"file": label, "boxes": boxes, "scores": scores, "classes": classes,
                                         "box_format": box["format"], "box_units": box["units"]}) + "\n")
            else:
                writer.writerows([label, c, f"{s:.9g}", *(f"{v:.9g}" for v in b)]
                                 for b, s, c in zip(boxes, scores, classes))
        print(f"[dlpipe] predict: {stop}/{examples.count} images", file=log or sys.stderr, flush=True)
