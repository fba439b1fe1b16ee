"""The GAN trains through the shared training path (dlpipe.training.fit.train): a schedule
on both optimizers, augmentation and the shuffle buffer change what it learns, XLA and
TensorBoard are honoured, and a run killed with SIGKILL mid-training resumes to the
uninterrupted run's metrics.json, byte for byte.

One tiny spec: 540 digits, 3 epochs of 13 steps (2 discriminator updates of 16 images and
one generator update each), a classifier of 1 epoch for FID; each run takes seconds after
TensorFlow's import.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _killed import assert_same_bytes, digits_npz, history, run_killed
from dlpipe.runner import run_spec

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: gan-training
task: generation
seed: 5
data:
  source: {type: npz, path: digits.npz}
  features: [{name: image, type: image}]
  split: {train: 0.8, validation: 0.0, test: 0.2}
model:
  type: gan
  latent_size: 8
  generator: {type: dcgan, filters: [16]}
  discriminator: {type: dcgan, filters: [16], dropout: 0.3}   # dropout: its RNG state resumes too
training:
  epochs: 3
  batch_size: 16                 # 432 training images: 13 steps of 2 × 16 (the rest dropped)
  optimizer: {type: adam, learning_rate: 1.0e-3, beta_1: 0.5}
  adversarial: {discriminator_optimizer: {type: sgd, learning_rate: 1.0e-2}, discriminator_steps: 2}
  progress: none
  tensorboard: false
evaluation:
  metrics: [fid, inception_score]
  generation:
    every: 2                     # epochs 2 and 3 (the last)
    samples: 60
    grid: 10
    feature_extractor: {type: classifier, labels: label, epochs: 1, units: 16}
export: {formats: [keras]}
"""
STEPS = 432 // (16 * 2)  # images per step: batch_size × discriminator_steps; the remainder is dropped


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gan-training")
    digits_npz(folder)
    path = folder / "spec.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def plain(spec) -> Path:
    return run_spec(spec, out=spec.parent / "plain")


def test_plain_run_trains_and_checkpoints(plain):
    from dlpipe.training import checkpoints

    columns = history(plain)
    assert set(columns) == {"epoch", "d_fake", "d_loss", "d_real", "g_loss", "learning_rate", "fid",
                            "inception_score"}
    assert columns["fid"][0] == "" and all(float(v) > 0 for v in columns["fid"][1:])  # evaluated at 2 and 3
    assert [float(v) for v in columns["learning_rate"]] == pytest.approx([1e-3] * 3)
    last = checkpoints.read(plain / "checkpoints" / "last.npz")
    assert last.finished and last.epoch == 3
    # Both optimizers are saved: the step counters say the generator took STEPS steps an
    # epoch and the discriminator two updates in each.
    counters = [int(a) for a in last.optimizer if a.shape == () and a.dtype.kind == "i"]
    assert counters == [3 * STEPS, 3 * STEPS * 2]
    evaluations = json.loads((plain / "evaluation" / "generation.json").read_text())["evaluations"]
    assert [e["epoch"] for e in evaluations] == [2, 3]
    metrics = json.loads((plain / "metrics.json").read_text())["test"]
    assert metrics["fid_first"] == evaluations[0]["fid"] and metrics["fid"] == evaluations[1]["fid"]


def test_cosine_schedule_sets_both_optimizers_rates_per_epoch(spec, plain):
    run = run_spec(spec, out=spec.parent / "cosine", overrides=["training.schedule={type: cosine}"])
    rates = [float(v) for v in history(run)["learning_rate"]]
    # Half a cosine over 3 epochs, read at each epoch's first step.
    np.testing.assert_allclose(rates, [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)], rtol=1e-6)
    assert history(run)["d_loss"] != history(plain)["d_loss"]


def test_each_optimizer_counts_its_own_updates_against_the_schedule(spec):
    """The discriminator updates `discriminator_steps` times a step: its schedule spans twice
    as many of its own steps, so both networks' rates fall together, epoch by epoch."""
    import keras

    from dlpipe.architectures.gan import IMAGE, LABEL, LATENT, build_discriminator, build_generator
    from dlpipe.spec import load_spec
    from dlpipe.training.adversarial import AdversarialModel
    from dlpipe.training.compile import make_optimizer
    from dlpipe.training.fit import _schedule_optimizers

    loaded = load_spec(spec, ["training.schedule={type: cosine}"])
    gan, training = loaded.model, loaded.training
    model = AdversarialModel(build_generator(gan, (8, 8, 1), None, 0.0, 16.0),
                             build_discriminator(gan, (8, 8, 1), None, 0.0, 16.0), latent=LATENT, label=LABEL,
                             image=IMAGE, latent_size=8, conditional=False, discriminator_steps=2)
    model.compile(make_optimizer(training.optimizer), make_optimizer(training.adversarial.discriminator_optimizer))
    assert _schedule_optimizers(model, training, STEPS, None) == []
    for epoch in range(3):
        model.generator_optimizer.iterations.assign(epoch * STEPS)
        model.discriminator_optimizer.iterations.assign(epoch * STEPS * 2)
        factor = 0.5 * (1 + math.cos(math.pi * epoch / 3))
        rates = [float(keras.ops.convert_to_numpy(o.learning_rate))
                 for o in (model.generator_optimizer, model.discriminator_optimizer)]
        assert rates == pytest.approx([1e-3 * factor, 1e-2 * factor], rel=1e-6)


def test_augmentation_and_shuffle_buffer_change_what_the_gan_sees(spec, plain):
    flipped = run_spec(spec, out=spec.parent / "flip", overrides=[
        "prepare.augmentation=[{type: flip, mode: horizontal}]"])
    buffered = run_spec(spec, out=spec.parent / "buffer", overrides=["data.shuffle_buffer=16"])
    for run in (flipped, buffered):
        assert history(run)["d_loss"][0] != history(plain)["d_loss"][0]


def test_jit_compile_and_tensorboard_are_honoured(spec):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_spec(spec, out=spec.parent / "jit", overrides=["training.jit_compile=true", "training.tensorboard=true",
                                                             "training.epochs=2"])
    assert json.loads((run / "run.json").read_text())["training"]["jit_compile"] is True
    events = EventAccumulator(str(run / "logs" / "train"))
    events.Reload()
    assert len(events.Tensors("epoch_g_loss")) == 2 and len(events.Tensors("epoch_learning_rate")) == 2


def test_kill_9_mid_training_then_resume_matches_the_uninterrupted_run(spec, plain):
    out = spec.parent / "killed"
    # Kill points in the train stage: every batch's end (13 an epoch) and every atomic write
    # (2 for a checkpoint); the 20th falls in epoch 2, after epoch 1's checkpoint.
    run_killed(spec, out, "train:20")
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert not (out / "metrics.json").exists()

    assert run_spec(spec, out=out, resume=True) == out

    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed_from_epoch"] == 1
    assert_same_bytes(out, plain, "metrics.json", "history.csv", Path("evaluation", "generation.json"),
                      Path("evaluation", "fid_samples.npz"))
    assert json.loads((out / "metrics.json").read_text())["test"]["fid_reference"] > 0
