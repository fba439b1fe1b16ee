"""Task generation: a GAN or a diffusion model learns to draw images like the training images.

Pipeline: pipelines/generation.py, which hands a `gan` to pipelines/adversarial.py and a
`diffusion` model to pipelines/diffusion.py. A target, if given, makes the model
class-conditioned. Scored by FID and Inception Score against held-out real images.
"""

from __future__ import annotations

from dlpipe.tasks.base import Found, Task

EXPORTS = ("keras", "saved_model")


def check_generation(spec) -> Found:
    if spec.evaluation.generation is None:
        yield (("evaluation",), "missing required key 'generation' (task generation: how generated images "
               "are scored, e.g. {feature_extractor: {type: classifier, labels: label}})")
    images = [f for f in spec.data.features if f.type == "image"]
    if not spec.data.features:
        yield (("data",), "missing required key 'features': task generation learns one feature of type image")
    elif len(images) == 1 and len(spec.data.features) != 1:  # the image count: check_architecture (a gan reads one)
        yield (("data", "features"), "task generation learns exactly one feature, of type image; "
               f"data.features lists {len(spec.data.features)} ({len(images)} of type image)")
    for i, feature in enumerate(spec.data.features):
        for key in ("size", "channels"):
            if getattr(feature, key, None) is not None:  # the model draws and scores images as the data holds them
                yield (("data", "features", i, key), f"task generation learns images at the data's own {key}; "
                       f"remove {key}")
    for i, step in enumerate(spec.prepare.augmentation):
        if step.type == "mixup":  # it blends labels and weights the loss: real images have neither
            yield (("prepare", "augmentation", i, "type"), "mixup is not supported for task generation; "
                   "augment the real images with image steps (flip, rotation, zoom, ...)")
    if spec.training.schedule is not None and spec.training.schedule.type == "reduce_on_plateau":
        yield (("training", "schedule"), "reduce_on_plateau needs a monitored loss; task generation has none "
               "that measures progress (FID does, every few epochs): choose a schedule by epochs")
    for i, name in enumerate(spec.export.formats):
        if name not in EXPORTS:
            what = "the sampler (noise → image)" if spec.model.type == "diffusion" else \
                "the generator (latent → image)"
            yield (("export", "formats", i), f"{what} exports as {' or '.join(EXPORTS)}; "
                   f"{name} is not supported for it yet")
    extractor = spec.evaluation.generation.feature_extractor if spec.evaluation.generation else None
    if (extractor is not None and extractor.type == "classifier" and spec.data.features
            and extractor.labels in [f.name for f in spec.data.features]):
        yield (("evaluation", "generation", "feature_extractor", "labels"),
               f"{extractor.labels!r} is the image feature; name the column of class labels")
    if extractor is not None and extractor.type == "inception_v3":
        if extractor.path is not None and extractor.weights is not None:
            yield (("evaluation", "generation", "feature_extractor"),
                   f"give weights ({extractor.weights}) or path (a weights file), not both")
        if "inception_score" in (spec.evaluation.metrics or ()):
            yield (("evaluation", "metrics"), "inception_score needs class probabilities; the inception_v3 "
                   "extractor gives its 2,048 pool features only: list [fid], or use a classifier extractor")


def check_diffusion(spec) -> Found:
    """A diffusion model's own rules: what its sampler can do with its training steps and
    classes, and the GAN's keys it has no use for."""
    if spec.model.type != "diffusion":
        return
    model = spec.model
    if model.sampler.steps > model.timesteps:
        yield (("model", "sampler", "steps"), f"DDIM samples with at most the {model.timesteps} timesteps the "
               f"model is trained on (model.timesteps); got {model.sampler.steps} steps")
    if spec.data.target is None:
        if model.sampler.guidance != 1.0:
            yield (("model", "sampler", "guidance"), "classifier-free guidance needs classes (data.target); "
                   "without a target, remove guidance")
        if model.label_dropout != type(model)(type="diffusion").label_dropout:
            yield (("model", "label_dropout"), "label_dropout drops classes (data.target); without a target, "
                   "remove label_dropout")
    adversarial = spec.training.adversarial
    if adversarial is not None and adversarial != type(adversarial)():
        yield (("training", "adversarial"), "a diffusion model has no discriminator: training.adversarial "
               "applies to model type gan; remove it")


TASK = Task(
    name="generation",
    pipeline="generation",
    summary="learn to generate images (a GAN or a diffusion model); exports the generator (latent vector → "
            "image) or the DDIM sampler (noise → image)",
    target="optional_classes",
    output="images",
    default_metrics=("fid", "inception_score"),
    own_loss="a GAN trains with its own adversarial losses, a diffusion model with noise prediction",
    training_metric="fid",
    commands=frozenset({"export", "deep", "resume"}),
    honours=("version", "name", "description", "task", "seed", "backend", "allow_unsafe_deserialization", "data.source",
             "data.features", "data.target.name", "data.split.train", "data.split.validation", "data.split.test",
             "data.split.stratify", "data.shuffle_buffer", "prepare.augmentation", "model", "training.epochs",
             "training.batch_size", "training.optimizer", "training.schedule",
             "training.adversarial", "training.progress", "training.tensorboard",
             "training.precision", "training.jit_compile", "training.deterministic",
             "evaluation.metrics", "evaluation.generation", "export.formats", "export.verify", "export.tolerance",
             "export.samples", "export.latency_calls", "tracking"),
    refusals={"training.checkpoints": "task generation keeps no best checkpoint (no loss measures progress; FID "
                                      "does): it writes checkpoints/last.npz after every epoch; remove "
                                      "training.checkpoints",
              "training.early_stopping": "early stopping needs a validation loss; the losses of task generation "
                                         "do not measure progress (FID does): remove early_stopping and choose "
                                         "training.epochs",
              "training.class_weight": "class_weight is not supported for task generation",
              "training.sample_weight": "sample_weight is not supported for task generation",
              "prepare.normalization": "task generation scales images to −1..1 from the training split's "
                                       "range itself (a GAN's tanh range, a diffusion model's noising); "
                                       "remove prepare.normalization",
              "data.target.multi_label": "task generation conditions on one class per image, not several",
              "training.loss": "task generation trains with its model's own loss (a GAN's adversarial losses, "
                               "a diffusion model's noise prediction); remove loss",
              "training.strategy": "task generation trains its model (a GAN, a diffusion model) on one device; "
                                   "remove strategy",
              "tuning": "dlpipe tune does not search task generation yet (its objectives are "
                        "validation metrics); remove tuning"},
    filled=("training.adversarial",),
    models=("gan", "diffusion"),
    checks=(check_generation, check_diffusion),
)
