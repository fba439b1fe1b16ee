"""What the GAN template accepts now that it trains through the shared path, and what it
still refuses (no TensorFlow: spec validation only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlpipe.errors import SpecError
from dlpipe.spec import load_spec

TEMPLATE = Path(__file__).resolve().parent.parent / "specs" / "image-generation-gan.yaml"


@pytest.mark.parametrize("override", [
    "training.schedule={type: cosine, warmup_epochs: 1}",
    "training.schedule={type: step, every: 10, factor: 0.5}",
    "prepare.augmentation=[{type: flip}, {type: translation, factor: 0.1}]",
    "data.shuffle_buffer=256",
    "training.jit_compile=true",
    "training.tensorboard=true",
])
def test_keys_the_gan_honours_validate(override):
    load_spec(TEMPLATE, [override])


@pytest.mark.parametrize("override, message", [
    ("training.schedule={type: reduce_on_plateau}",
     "--set:1:19: training.schedule: reduce_on_plateau needs a monitored loss; task generation has none that "
     "measures progress (FID does, every few epochs): choose a schedule by epochs"),
    ("prepare.augmentation=[{type: mixup}]",
     "--set:1:22: prepare.augmentation[0].type: mixup is not supported for task generation; augment the real "
     "images with image steps (flip, rotation, zoom, ...)"),
    ("training.early_stopping={monitor: loss}",
     "--set:1:25: training.early_stopping: early stopping needs a validation loss; the losses of task generation "
     "do not measure progress (FID does): remove early_stopping and choose training.epochs"),
])
def test_keys_the_gan_does_not_honour_are_refused_at_their_line(override, message):
    with pytest.raises(SpecError) as caught:
        load_spec(TEMPLATE, [override])
    assert str(caught.value) == message


def test_inception_v3_extractor_validates_with_fid_only():
    spec = load_spec(TEMPLATE, ["evaluation.generation.feature_extractor={type: inception_v3}",
                                "evaluation.metrics=[fid]"])
    extractor = spec.evaluation.generation.feature_extractor
    assert (extractor.type, extractor.weights, extractor.path, extractor.batch_size) == ("inception_v3", None, None, 32)
    load_spec(TEMPLATE, ["evaluation.generation.feature_extractor={type: inception_v3, weights: random}",
                         "evaluation.metrics=[fid]"])


@pytest.mark.parametrize("overrides, message", [
    (["evaluation.generation.feature_extractor={type: inception_v3}"],
     "evaluation.metrics: inception_score needs class probabilities; the inception_v3 extractor gives its 2,048 "
     "pool features only: list [fid], or use a classifier extractor"),
    (["evaluation.generation.feature_extractor={type: inception_v3, weights: imagenet, path: w.h5}",
      "evaluation.metrics=[fid]"],
     "evaluation.generation.feature_extractor: give weights (imagenet) or path (a weights file), not both"),
])
def test_inception_v3_refusals_name_the_key(overrides, message):
    with pytest.raises(SpecError) as caught:
        load_spec(TEMPLATE, overrides)
    assert message in str(caught.value)
