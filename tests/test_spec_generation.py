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
