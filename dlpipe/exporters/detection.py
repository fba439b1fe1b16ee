"""A detector's export (task detection): its adapter to the one export loop
(exporters/stage.py), and running detectors for `dlpipe predict`.

The detector (maps model + decoding) is exported by the registered `keras` and
`saved_model` formats (`serving_default(image)` → boxes, scores, classes), each reloaded
with its own runtime, run on the first `export.samples` test images (a few one by one, then
all in one batch) and compared with the trained detector: max abs diff of boxes and scores,
and the share of kept detections whose class agrees (`compare_detections`), against
`export.tolerance` (defaults: the registry's exporter entries, for output `boxes`). Each is
then scored on every test image: the spec's mAP metrics from its own decoded detections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dlpipe.exporters.stage import Subject, export

INPUT = "image"
"""The detector's one input (dlpipe/architectures/centernet.py builds it under this name)."""


def interface(spec, data) -> dict:
    """What a caller sends (one image, 0..255) and gets back (boxes in the spec's format and
    units, scores, classes padded with -1), as the card and `dlpipe predict` read it."""
    shape = list(data.image_shape)
    decode = spec.model.decode
    return {"task": spec.task, "target": None,
            "input": {"name": INPUT, "shape": shape, "dtype": "float32", "range": [0, 255]},
            "inputs": [{"name": INPUT, "input": INPUT, "type": "image", "dtype": "float32", "shape": shape,
                        "value_range": [0, 255]}],
            "output": {"meaning": f"up to {decode.max_detections} detections per image: boxes "
                                  f"({decode.box_format}, {decode.box_units}), scores, classes (-1: none)"},
            "outputs": {"boxes": {"format": decode.box_format, "units": decode.box_units},
                        "scores": {}, "classes": {"padding": -1}},
            "class_names": data.class_names}


def subject(detector, spec, data) -> Subject:
    """The detector, its first `export.samples` test images, and how detections compare."""
    from dlpipe.exporters.verify import compare_detections

    images = data.splits["test"].images[:spec.export.samples].astype(np.float32)
    return Subject(model=detector, inputs={INPUT: images}, compare=compare_detections,
                   interface=interface(spec, data), score=score(spec, data),
                   data={"origin": data.origin, "fingerprint": data.fingerprint,
                         "split_sizes": {name: len(split) for name, split in data.splits.items()}})


def score(spec, data):
    """The spec's mAP metrics on every test image from the export's own boxes, scores and
    classes (decoding is inside every export), as the evaluate stage scores the detector."""
    from dlpipe.exporters.scoring import CHUNK
    from dlpipe.metrics.detection import kept_detections, mean_average_precision

    test = data.splits.get("test")
    if test is None or not len(test):
        return None

    def scored(predict) -> dict[str, float]:
        predicted = []
        for start in range(0, len(test), CHUNK):
            predicted += kept_detections(predict({INPUT: test.images[start:start + CHUNK].astype(np.float32)}),
                                         spec.model.decode, data.image_shape[0])
        values = mean_average_precision(test.ground_truth(), predicted).metrics()
        return {metric: values[metric] for metric in spec.evaluation.metrics}

    return scored


def export_detector(detector, spec, data, out: Path, *, formats=None, metrics: dict | None = None,
                    keras_file: Path | None = None) -> dict:
    """Every format of `spec.export.formats` (or `formats`) written, reloaded, compared:
    export/verification.json and the model card."""
    return export(subject(detector, spec, data), spec, out, formats=formats, metrics=metrics, keras_file=keras_file)


# `dlpipe predict` on a detector -------------------------------------------------------------


def load_detector(kind: str, path: Path, allow_unsafe: bool = False):
    """images → {"boxes", "scores", "classes"} with the export's own runtime (the format's loader)."""
    if kind == "saved_model":
        from dlpipe.exporters.saved_model import load

        predict = load(path)
    else:
        from dlpipe.exporters.keras_file import load

        predict = load(path, allow_unsafe=allow_unsafe)
    return lambda images: predict({INPUT: images})


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
