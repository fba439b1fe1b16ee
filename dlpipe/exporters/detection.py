"""Export of a detector (task detection): `keras` (export/keras/model.keras, reloaded with
Keras in safe mode) and `saved_model` (export/saved_model/, `serving_default(image)` →
boxes, scores, classes, reloaded with `tf.saved_model.load` alone). Each is run on the
test images — the first few one by one, then all in one batch — and its decoded outputs
compared with the trained detector's: max abs diff of boxes and scores, and the share of
detections whose class agrees."""

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
    images = images.astype(np.float32)
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
    failed = [f"{name}: max abs diff {r['max_abs_diff']:.3g}, class agreement {r['agreement']:.4f}"
              for name, r in results.items() if not r["passed"]]
    if failed and spec.export.verify == "error":
        raise StageError("export", "exported detector differs from the trained one: " + "; ".join(failed))
    return results
