"""Task detection: boxes and classes of the objects in an image.

Pipeline: pipelines/detection.py. The source carries the boxes (generated shapes, or a
COCO-style JSON); the model is our CenterNet-style detector; metrics are COCO mAP.
"""

from __future__ import annotations

from dlpipe.tasks.base import Found, Task

EXPORTS = ("keras", "saved_model")


def check_detection(spec) -> Found:
    source, model = spec.data.source, spec.model
    if spec.backend == "torch":
        yield (("backend",), "backend torch does not train task detection yet: its CenterNet detector learned less "
               "on Keras' torch backend than on tensorflow and jax (the object-detection template's shortened run: "
               "test map_50 0.14 against 0.45, training loss 2.0 against 0.36 after 10 epochs; not yet explained); "
               "use backend: jax or tensorflow")
    if spec.training.strategy == "multi_worker":
        yield (("training", "strategy"), "task detection trains on one machine: use auto, none or mirrored")
    for i, name in enumerate(spec.export.formats):
        if name not in EXPORTS:
            yield (("export", "formats", i), f"task detection exports {' and '.join(EXPORTS)}, not {name!r}")
    if source.type == "shapes":
        if source.min_objects > source.max_objects:
            yield (("data", "source", "min_objects"), f"min_objects ({source.min_objects}) is more than "
                   f"max_objects ({source.max_objects})")
        if source.min_size > source.max_size:
            yield (("data", "source", "min_size"), f"min_size ({source.min_size}) is more than "
                   f"max_size ({source.max_size})")
        if source.max_size > source.image_size:
            yield (("data", "source", "max_size"), f"objects up to {source.max_size} px do not fit "
                   f"{source.image_size} px images")
        for i, name in enumerate(source.classes):
            if name in source.classes[:i]:
                yield (("data", "source", "classes", i), f"{name!r} is listed twice")
    if model.type != "centernet":
        return
    deepest = 2 ** (len(model.filters) - 1)
    if model.stride > deepest:
        yield (("model", "stride"), f"stride {model.stride} is coarser than the deepest block "
               f"(1/{deepest} with {len(model.filters)} filters); add blocks or lower the stride")
    if model.decode.peak_window % 2 == 0:
        yield (("model", "decode", "peak_window"), f"expected an odd window (centred on the cell), "
               f"got {model.decode.peak_window}")
    size = getattr(source, "image_size", None)
    if size is None:
        return
    if size % model.stride:
        yield (("model", "stride"), f"stride {model.stride} does not divide the image side ({size})")
    elif size % deepest:
        yield (("model", "filters"), f"{len(model.filters)} blocks halve the image "
               f"{len(model.filters) - 1} times: its side ({size}) must be a multiple of {deepest}")
    else:
        n_classes = len(source.classes) if source.type == "shapes" else None
        cells = (size // model.stride) ** 2 * (n_classes or 1)
        if model.decode.max_detections > cells:
            yield (("model", "decode", "max_detections"), f"at most {cells} detections exist "
                   f"({size // model.stride}² cells × {n_classes or 1} classes), got "
                   f"{model.decode.max_detections}")


TASK = Task(
    name="detection",
    pipeline="detection",
    summary="find objects in images: boxes, classes and scores; exports the detector with its decoding",
    target="none",
    output="boxes",
    default_metrics=("map_50", "map"),
    own_loss="the detector's own loss: heatmap focal loss + L1 on sizes and offsets",
    loss_factory="dlpipe.architectures.centernet:detection_loss",
    commands=frozenset({"evaluate", "export", "predict", "deep", "resume", "rerun"}),
    honours=("version", "name", "description", "task", "seed", "backend", "allow_unsafe_deserialization", "data.source",
             "data.split.train", "data.split.validation", "data.split.test", "data.split.stratify",
             "data.shuffle_buffer", "model",
             "training.epochs", "training.batch_size", "training.optimizer", "training.schedule",
             "training.early_stopping", "training.checkpoints", "training.progress", "training.tensorboard",
             "training.precision", "training.jit_compile", "training.deterministic", "training.strategy",
             "evaluation.metrics", "evaluation.splits", "export.formats", "export.verify", "export.tolerance",
             "export.samples", "export.latency_calls", "tracking"),
    refusals={"data.target": "task detection takes its boxes and classes from the source; remove target",
              "data.features": "task detection reads one image per example from the source; remove features",
              "prepare.normalization": "task detection scales pixels by 1/255 inside the model; remove this "
                                       "normalization",
              "prepare.augmentation": "task detection does not augment images yet; remove augmentation",
              "training.class_weight": "class_weight does not apply to task detection",
              "training.sample_weight": "sample_weight does not apply to task detection",
              "tuning": "dlpipe tune does not search task detection yet; remove tuning",
              "training.loss": "task detection trains with the detector's own loss (heatmap focal loss + L1 on "
                               "sizes and offsets; weigh them with model.heatmap_weight, size_weight and "
                               "offset_weight); remove loss"},
    models=("centernet",),
    sources=("shapes", "coco"),
    checks=(check_detection,),
)
