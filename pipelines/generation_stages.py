"""The stages a GAN (pipelines/adversarial.py) and a diffusion model (pipelines/diffusion.py)
share, up to the model they build, and the training data both hand to `fit.train`:

    data      read the image column, check it, split; the training split's value range
    setup     seed everything; on TensorFlow, turn on op determinism
    features  the network FID and the Inception Score read: a small classifier trained here
              on the training split's labels, an earlier run's classifier, or InceptionV3;
              saved as feature_extractor.keras (+ .json); the real images' features, and
              fid_reference: FID of as many training images as are generated against the
              held-out test images, with the same extractor — the floor of every FID here
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from dlpipe import stages
from dlpipe.errors import DlpipeError
from dlpipe.rundir import atomic_write_json


@dataclass
class Prepared:
    """What the shared stages leave for a generation pipeline's own."""

    data: object  # dlpipe.data.images.ImageData
    n_classes: int | None  # classes of a class-conditioned model, or None
    count: int  # generated images per evaluation
    scorer: object  # dlpipe.metrics.fid.Scorer
    extractor_info: dict  # for evaluation/generation.json
    floor: object  # dlpipe.metrics.fid.Floor

    @property
    def real(self) -> np.ndarray:
        """The held-out test images every FID compares with."""
        return self.data.images["test"]


def data_setup_features(ctx) -> Prepared:
    """The stages data, setup and features of a generation run."""
    spec, run_dir = ctx.spec, ctx.run_dir
    with run_dir.stage("data"):
        from dlpipe.data.images import prepare_images

        data = prepare_images(spec, ctx.base_dir, ctx.located)
        atomic_write_json(run_dir.path("data.json"), data.describe())
        stages.write_splits(run_dir, data.splits)
        run_dir.update(data_fingerprint=data.fingerprint)
        n_classes = len(data.class_names) if data.class_names else None

    with run_dir.stage("setup"):
        stages.setup(run_dir, spec)

    real = data.images["test"]
    count = spec.evaluation.generation.samples or len(real)
    with run_dir.stage("features"):
        from dlpipe.metrics.fid import Floor
        from dlpipe.metrics.generative import inception_score

        scorer, extractor_info = feature_extractor(spec, data, ctx)
        floor = Floor.measure(scorer, run_dir.root, real, data.images["train"], count, spec.seed)
        extractor_info.update(floor.described)
        if floor.real_probabilities is not None:
            extractor_info["inception_score_real"] = inception_score(floor.real_probabilities)
    return Prepared(data=data, n_classes=n_classes, count=count, scorer=scorer, extractor_info=extractor_info,
                    floor=floor)


def feature_extractor(spec, data, ctx):
    """(a Scorer: images → (features, probabilities or None), what it is, for generation.json)."""
    from dlpipe.data.sources import resolve_path
    from dlpipe.metrics.generative import run_extractor, train_classifier_extractor

    options = spec.evaluation.generation.feature_extractor
    if options.type == "classifier":
        scorer, model = train_classifier_extractor(
            data.images["train"], data.extractor_labels["train"], len(data.extractor_classes), low=data.low,
            high=data.high, units=options.units, epochs=options.epochs, seed=spec.seed)
        _, probabilities = scorer(data.images["test"])
        accuracy = float(np.mean(probabilities.argmax(axis=1) == data.extractor_labels["test"]))
        info = {"type": "classifier", "labels": options.labels, "classes": data.extractor_classes,
                "layer": "features", "dimensions": options.units, "test_accuracy": accuracy}
        print(f"[dlpipe] feature extractor: classifier of {options.labels!r}, test accuracy {accuracy:.3f}",
              file=sys.stderr, flush=True)
        return scorer, info
    if options.type == "inception_v3":
        from dlpipe.metrics.fid import inception_v3

        weights = resolve_path(options.path, ctx.base_dir) if options.path else options.weights or "imagenet"
        try:
            scorer = inception_v3(weights, low=data.low, high=data.high, seed=spec.seed,
                                  batch_size=options.batch_size)
        except DlpipeError as err:
            raise ctx.located(("evaluation", "generation", "feature_extractor", "path" if options.path else "weights"),
                              str(err)) from None
        return scorer, dict(scorer.info)
    path = resolve_path(options.path, ctx.base_dir)
    try:
        scorer, model = run_extractor(path, options.layer, spec.allow_unsafe_deserialization)
    except DlpipeError as err:
        raise ctx.located(("evaluation", "generation", "feature_extractor", "path"), str(err)) from None
    shape = tuple(model.inputs[0].shape[1:])
    if shape != data.shape:
        raise ctx.located(("evaluation", "generation", "feature_extractor", "path"),
                          f"{path} takes images of shape {shape}; these are {data.shape}")
    return scorer, {"type": "run", "path": str(path), "layer": options.layer or model.layers[-2].name}


def training_data(data):
    """The training images as `fit.train` reads them: the model's `image` input (and their
    classes for a class-conditioned model); no validation split."""
    from dlpipe.architectures.gan import IMAGE
    from dlpipe.data.prepared import FeatureInfo, PreparedData, Split

    images = data.images["train"]
    labels = None if data.labels is None else data.labels["train"].astype(np.int32)
    empty = Split(x={IMAGE: images[:0]}, y=None if labels is None else labels[:0], rows=np.arange(0))
    return PreparedData(features=[FeatureInfo(name=data.feature, input_name=IMAGE, type="image", shape=data.shape)],
                        target=None, task="generation", class_names=data.class_names,
                        splits={"train": Split(x={IMAGE: images}, y=labels, rows=np.arange(len(images))),
                                "validation": empty},
                        fingerprint=data.fingerprint, origin=data.origin)


def images_per_step(spec, data, ctx, per_step: int | None = None) -> int:
    """The training images one step takes (`batch_size`, or `per_step`), refused at
    training.batch_size when the training split holds fewer."""
    per_step = per_step or spec.training.batch_size
    if len(data.images["train"]) < per_step:
        what = (f"one batch of {per_step}" if per_step == spec.training.batch_size
                else f"one step's {per_step} (batch_size × discriminator_steps)")
        raise ctx.located(("training", "batch_size"),
                          f"the training split holds {len(data.images['train'])} images, fewer than {what}")
    return per_step
