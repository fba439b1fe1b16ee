"""Object detection (task `detection`), read top to bottom.

    data      shapes drawn from the seed, or a COCO-style JSON + image folder read and checked;
              seeded split; the detector's targets (heatmaps, sizes, offsets) for train/validation
    setup     import TensorFlow, seed everything, turn on op determinism
    build     the CenterNet-style maps model (trained) and the detector (maps → decoded boxes)
    train     fit the maps model on the centernet loss; checkpoints/ each epoch, resumed from
              when present; history.csv; model.keras (the detector)
    evaluate  the detector on validation and test → COCO-style mAP (metrics.json), AP per class
              and the detections (evaluation/<split>/)
    export    keras and saved_model through the one export loop: each reloaded with its own
              runtime and compared on the test images → export/verification.json, model card
    report    test images with boxes drawn (plots/detections.png), learning curves, report.html

Run again into the same folder, the train, evaluate and export stages whose cache key is
unchanged are reused (dlpipe/stagecache.py); the data are drawn or read again (seconds).
Hooks: `reevaluate` (dlpipe evaluate: mAP on the rebuilt splits), `reexport` (dlpipe
export), `deep_build` (dlpipe validate --deep).
"""

from __future__ import annotations

import numpy as np

from dlpipe import stages
from dlpipe.rundir import atomic_write_json
from dlpipe.stagecache import MODEL_OUTPUTS, load_metrics, load_model, stage_keys

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
            metrics, predicted = evaluate_detector(detector, spec, data, run_dir.root)
            atomic_write_json(run_dir.path("metrics.json"), metrics)
        else:
            metrics = load_metrics(run_dir)

    with run_dir.stage("export", key=keys["export"], reused=reuse["export"], stale=("export",)):
        from dlpipe.exporters.detection import export_detector

        if not reuse["export"]:
            export_detector(detector, spec, data, run_dir.path("export"), metrics=metrics,
                            keras_file=run_dir.path("model.keras"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report

        draw_test_detections(detector, spec, data, predicted.get("test"), run_dir.path("plots"))
        write_report(run_dir.root, model=detector)


def reevaluate(run, data=None):
    """`dlpipe evaluate RUN_DIR`: the detector's mAP on the splits rebuilt from the run's spec
    → RUN_DIR/evaluations/<time>/ (metrics.json, evaluation/<split>/, plots/, report.html)."""
    from dlpipe.data.detection import prepare_detection
    from dlpipe.errors import DlpipeError
    from dlpipe.evaluation import Evaluation, new_folder, record_evaluation, warn_if_changed
    from dlpipe.report import write_report
    from dlpipe.training.determinism import configure

    if data is not None:
        raise DlpipeError(f"--data {data}: task detection re-evaluates on the run's own splits (its images and "
                          "boxes come from data.source); leave out --data")
    prepared = prepare_detection(run.spec, run.base_dir, run.located)
    warn_if_changed(run, prepared.fingerprint)
    configure(run.spec.seed)
    detector = run.load_model()
    folder = new_folder(run.root)
    atomic_write_json(folder / "data.json", prepared.describe())
    metrics, predicted = evaluate_detector(detector, run.spec, prepared, folder)
    atomic_write_json(folder / "metrics.json", metrics)
    draw_test_detections(detector, run.spec, prepared, predicted.get("test"), folder / "plots")
    record_evaluation(folder, run, list(metrics))
    write_report(run.root, folder, model=detector, title=f"{run.spec.name}: evaluation of {folder.name}")
    return Evaluation(folder, metrics)


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR [--format F] [--set export.K=V]`: the detector exported again,
    verified on the rebuilt test images."""
    from dlpipe.data.detection import prepare_detection
    from dlpipe.exporters.detection import export_detector

    return stages.reexport(run, formats, prepare=prepare_detection, export=export_detector)


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: the trained maps model with its decoding."""
    from dlpipe.architectures.centernet import build_detector, build_maps_model
    from dlpipe.data.detection import prepare_detection

    boxes = prepare_detection(spec, base_dir, located)
    n_classes = len(boxes.class_names)
    return build_detector(spec, build_maps_model(spec, boxes.image_shape, n_classes), n_classes)


def evaluate_detector(detector, spec, data, out) -> tuple[dict, dict]:
    """COCO mAP of each split (the spec's metric names) and the kept detections per split;
    writes out/evaluation/<split>/average_precision.json and detections.json."""
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
        folder = out / "evaluation" / name
        atomic_write_json(folder / "average_precision.json",
                          [{"class": data.class_names[c], "ap_50_95": ap,
                            "objects": int(sum((labels == c).sum() for labels in split.labels))}
                           for c, ap in sorted(scores.per_class.items())])
        atomic_write_json(folder / "detections.json", [
            {"row": int(row), "boxes": p["boxes"].tolist(), "scores": p["scores"].tolist(),
             "classes": p["labels"].tolist()} for row, p in zip(split.rows, predicted[name])])
    return metrics, predicted


def draw_test_detections(detector, spec, data, predicted, plots) -> None:
    """The first test images with their detections over the ground truth → plots/detections.png."""
    from dlpipe.report.detection import draw_detections

    test = data.splits["test"]
    shown = min(DRAWN_IMAGES, len(test))
    drawn = predicted or detect(detector, test.images[:shown], spec.model.decode, data.image_shape[0],
                                spec.training.batch_size)
    draw_detections(test.images[:shown], test.ground_truth()[:shown], drawn[:shown], data.class_names,
                    plots / "detections.png")


def detect(detector, images: np.ndarray, decode, side: int, batch_size: int) -> list[dict]:
    """The detector's kept detections per image, boxes as x1, y1, x2, y2 in pixels."""
    import keras

    from dlpipe.metrics.detection import kept_detections

    compiled = keras.backend.backend() != "tensorflow"  # eager JAX compiles every op per shape: seconds
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size].astype(np.float32)
        if compiled:  # one XLA program for every batch: the last one is padded to the batch size
            padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), np.float32)])
            batch = {k: v[:len(chunk)] for k, v in detector.predict_on_batch(padded).items()}
        else:
            batch = detector(chunk, training=False)
        out += kept_detections({k: np.asarray(batch[k]) for k in ("boxes", "scores", "classes")}, decode, side)
    return out
