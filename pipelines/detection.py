"""Object detection (task `detection`), read top to bottom.

    data      shapes drawn from the seed, or a COCO-style JSON + image folder read and checked;
              seeded split; the detector's targets (heatmaps, sizes, offsets) for train/validation
    setup     import TensorFlow, seed everything, turn on op determinism
    build     the CenterNet-style maps model (trained) and the detector (maps → decoded boxes)
    train     fit the maps model on the centernet loss; checkpoints/ each epoch, resumed from
              when present; history.csv; model.keras (the detector)
    evaluate  the detector on validation and test → COCO-style mAP (metrics.json), AP per class
              and the detections (evaluation/<split>/)
    export    keras and saved_model, each reloaded with its own runtime and compared on the test
              images → export/verification.json
    report    test images with boxes drawn (plots/detections.png), learning curves, report.html

Run again into the same folder, the train, evaluate and export stages whose cache key is
unchanged are reused (dlpipe/stagecache.py); the data are drawn or read again (seconds).
"""

from __future__ import annotations

import numpy as np

from dlpipe import stages
from dlpipe.rundir import atomic_write_json
from dlpipe.stagecache import MODEL_OUTPUTS, load_model, stage_keys
DRAWN_IMAGES = 8
"""Test images drawn with their boxes in plots/detections.png."""


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir
    keys = stage_keys(spec, ctx.base_dir)

    with run_dir.stage("data", key=keys["data"]):
        from dlpipe.data.detection import centernet_targets, prepare_detection
        from dlpipe.data.prepare import PreparedData, Split

        data = prepare_detection(spec, ctx.base_dir, ctx.located)
        atomic_write_json(run_dir.path("data.json"), data.describe())
        stages.write_splits(run_dir, {  # each image by its name: a COCO file_name, or shape-NNNN
            "source": data.origin, "unit": "image",
            "about": "each image's file_name in the COCO annotations (generated shapes: shape-NNNN, in drawing order)",
            "splits": {name: [data.names[i] for i in split.rows.tolist()] for name, split in data.splits.items()}})
        run_dir.update(data_fingerprint=data.fingerprint)
        n_classes, side = len(data.class_names), data.image_shape[0]

        def fitting(split):  # what training reads: float pixels in, target maps out
            y = centernet_targets(split.boxes, split.labels, side, spec.model.stride, n_classes)
            return Split(x=split.images.astype(np.float32), y=y, rows=split.rows)

        train_data = PreparedData(features=[], target="boxes", task="detection", class_names=data.class_names,
                                  splits={name: fitting(split) for name, split in data.splits.items()},
                                  fingerprint=data.fingerprint, origin=data.origin)

    # The later stages chain on the data read (its fingerprint hashes the pixels and boxes).
    keys = stage_keys(spec, ctx.base_dir, data.fingerprint)
    reuse = {"train": run_dir.reusable("train", keys["train"], MODEL_OUTPUTS),
             "evaluate": run_dir.reusable("evaluate", keys["evaluate"], ("metrics.json",)),
             "export": run_dir.reusable("export", keys["export"], ("export/verification.json",))}

    with run_dir.stage("setup"):
        stages.setup(run_dir, spec)

    with run_dir.stage("build", key=keys["train"], reused=reuse["train"]):
        from dlpipe.architectures.centernet import build_detector, build_maps_model
        from dlpipe.training.compile import compile_model

        if reuse["train"]:
            detector = load_model(run_dir, spec)  # importing centernet registered its decoding layer
        else:
            maps_model = build_maps_model(spec, data.image_shape, n_classes)
            compile_model(maps_model, spec, n_classes, ctx.located)
            detector = build_detector(spec, maps_model, n_classes)
        run_dir.update(parameters=int(detector.count_params()))

    with run_dir.stage("train", key=keys["train"], reused=reuse["train"], stale=("checkpoints",)):
        from dlpipe.training.fit import train

        if not reuse["train"]:
            history = train(maps_model, spec, train_data, run_dir=run_dir, located=ctx.located,
                            callbacks=ctx.callbacks)
            if not ctx.chief:
                return
            stages.save_training(run_dir, history, {"model.keras": detector})

    predicted = {}
    with run_dir.stage("evaluate", key=keys["evaluate"], reused=reuse["evaluate"]):
        if not reuse["evaluate"]:
            metrics, predicted = evaluate_detector(detector, spec, data, run_dir)
            atomic_write_json(run_dir.path("metrics.json"), metrics)

    with run_dir.stage("export", key=keys["export"], reused=reuse["export"], stale=("export",)):
        from dlpipe.exporters.detection import export_detector

        interface = {"task": "detection", "input": {"name": "image", "shape": list(data.image_shape),
                                                    "dtype": "float32", "range": [0, 255]},
                     "outputs": {"boxes": {"format": spec.model.decode.box_format,
                                           "units": spec.model.decode.box_units},
                                 "scores": {}, "classes": {"padding": -1}},
                     "class_names": data.class_names}
        if not reuse["export"]:
            export_detector(detector, spec, data.splits["test"].images, interface, run_dir.path("export"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report
        from dlpipe.report.detection import draw_detections

        test = data.splits["test"]
        shown = min(DRAWN_IMAGES, len(test))
        drawn = predicted.get("test") or detect(detector, test.images[:shown], spec.model.decode, side,
                                                spec.training.batch_size)
        draw_detections(test.images[:shown], test.ground_truth()[:shown], drawn[:shown], data.class_names,
                        run_dir.path("plots", "detections.png"))
        write_report(run_dir.root, model=detector)


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: the trained maps model with its decoding."""
    from dlpipe.architectures.centernet import build_detector, build_maps_model
    from dlpipe.data.detection import prepare_detection

    boxes = prepare_detection(spec, base_dir, located)
    n_classes = len(boxes.class_names)
    return build_detector(spec, build_maps_model(spec, boxes.image_shape, n_classes), n_classes)


def evaluate_detector(detector, spec, data, run_dir) -> tuple[dict, dict]:
    """COCO mAP of each split (the spec's metric names) and the kept detections per split;
    writes evaluation/<split>/average_precision.json and detections.json."""
    from dlpipe.metrics.detection import mean_average_precision

    metrics, predicted = {}, {}
    for name in spec.evaluation.splits:
        split = data.splits[name]
        if not len(split):
            continue
        predicted[name] = detect(detector, split.images, spec.model.decode, data.image_shape[0],
                                 spec.training.batch_size)
        scores = mean_average_precision(split.ground_truth(), predicted[name])
        metrics[name] = {metric: scores.metrics()[metric] for metric in spec.evaluation.metrics}
        folder = run_dir.path("evaluation", name)
        atomic_write_json(folder / "average_precision.json",
                          [{"class": data.class_names[c], "ap_50_95": ap,
                            "objects": int(sum((labels == c).sum() for labels in split.labels))}
                           for c, ap in sorted(scores.per_class.items())])
        atomic_write_json(folder / "detections.json", [
            {"row": int(row), "boxes": p["boxes"].tolist(), "scores": p["scores"].tolist(),
             "classes": p["labels"].tolist()} for row, p in zip(split.rows, predicted[name])])
    return metrics, predicted


def detect(detector, images: np.ndarray, decode, side: int, batch_size: int) -> list[dict]:
    """The detector's kept detections per image, boxes as x1, y1, x2, y2 in pixels."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = detector(images[start:start + batch_size].astype(np.float32), training=False)
        boxes, scores, classes = (np.asarray(batch[k]) for k in ("boxes", "scores", "classes"))
        for b, s, c in zip(boxes, scores, classes):
            kept = c >= 0
            out.append({"boxes": to_xyxy_pixels(b[kept], decode.box_format, decode.box_units, side),
                        "scores": s[kept].astype(np.float64), "labels": c[kept].astype(np.int64)})
    return out


def to_xyxy_pixels(boxes: np.ndarray, box_format: str, box_units: str, side: int) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if box_units == "relative":
        boxes = boxes * side
    if box_format == "xywh":
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    return boxes
