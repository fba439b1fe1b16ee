"""The diffusion model of task generation (`model: {type: diffusion}`).

DDIM's arithmetic against an exact oracle (a denoiser that knows the one training image
gives that image back in any number of steps, on both schedules); a tiny run on 540 8×8
digits (a U-Net of two levels, 2 epochs) that trains, evaluates FID, exports and verifies
the sampler; a class-conditioned one with classifier-free guidance; a run killed with
SIGKILL mid-training that resumes to the uninterrupted run's metrics.json byte for byte.
The spec refusals are checked without TensorFlow (tests/test_spec_generation.py style).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _killed import assert_same_bytes, digits_npz, history, resume_in_a_fresh_process, run_killed
from dlpipe.spec import load_spec
from dlpipe.spec.validation import SpecError

SPEC = """\
version: 1
name: diffusion-tiny
task: generation
seed: 3
data:
  source: {type: npz, path: digits.npz}
  features: [{name: image, type: image}]
  split: {train: 0.8, validation: 0.0, test: 0.2}
model:
  type: diffusion
  timesteps: 100
  noise_schedule: linear
  unet: {filters: [8, 16], attention: true, dropout: 0.1}   # dropout: its RNG state resumes too
  ema: 0.9
  sampler: {steps: 4}
training:
  epochs: 3
  batch_size: 32                 # 432 training images: 13 steps (the remainder dropped)
  optimizer: {type: adam, learning_rate: 2.0e-3}
  progress: none
  tensorboard: false
evaluation:
  metrics: [fid, inception_score]
  generation:
    every: 2                     # epochs 2 and 3 (the last)
    samples: 40
    grid: 10
    feature_extractor: {type: classifier, labels: label, epochs: 1, units: 16}
export: {formats: [keras, saved_model], samples: 8}
"""
STEPS = 432 // 32


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("diffusion")
    digits_npz(folder)
    path = folder / "spec.yaml"
    path.write_text(SPEC)
    return path


def _problems(spec: Path, *overrides: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(spec, list(overrides))
    return [str(p) for p in caught.value.problems]


# Refusals, at their line (no TensorFlow) -------------------------------------------------


def test_more_sampling_steps_than_timesteps_is_refused_at_its_line(spec, tmp_path):
    path = tmp_path / "steps.yaml"
    path.write_text(SPEC.replace("sampler: {steps: 4}", "sampler: {steps: 200}"))
    assert _problems(path) == [
        f"{path}:15:20: model.sampler.steps: DDIM samples with at most the 100 timesteps the model is trained on "
        "(model.timesteps); got 200 steps"]


def test_guidance_and_label_dropout_without_classes_are_refused(spec):
    problems = _problems(spec, "model.sampler.guidance=3.0", "model.label_dropout=0.2")
    assert sorted(problems) == [
        "--set:1:24: model.sampler.guidance: classifier-free guidance needs classes (data.target); without a "
        "target, remove guidance",
        "--set:2:21: model.label_dropout: label_dropout drops classes (data.target); without a target, remove "
        "label_dropout"]
    load_spec(spec, ["data.target={name: label}", "model.sampler.guidance=3.0", "model.label_dropout=0.2"])


def test_gan_keys_and_other_tasks_refuse_a_diffusion_model(spec):
    assert _problems(spec, "training.adversarial={label_smoothing: 0.1}") == [
        "--set:1:22: training.adversarial: a diffusion model has no discriminator: training.adversarial applies "
        "to model type gan; remove it"]
    assert any("model.type" in p and "diffusion" in p
               for p in _problems(spec, "task=embedding", "evaluation.generation=null"))


def test_out_of_range_values_are_refused_by_the_schema(spec):
    assert any("model.noise_schedule" in p for p in _problems(spec, "model.noise_schedule=quadratic"))
    assert any("model.ema" in p for p in _problems(spec, "model.ema=1.0"))
    assert any("model.unet.filters" in p for p in _problems(spec, "model.unet.filters=[]"))


# DDIM against an exact oracle ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1, 5, 50])
def test_ddim_with_a_perfect_denoiser_returns_the_one_training_image(schedule, steps):
    """If the data is one image x*, the noise in x_t is exactly (x_t − √ᾱ_t x*)/√(1 − ᾱ_t):
    a denoiser that computes it makes DDIM land on x* (in the data's units) at any step count."""
    import keras
    from keras import ops

    from dlpipe.architectures.diffusion import (NOISE, NOISY, TIMESTEP, DDIMSampler, noise_schedule,
                                                sampling_timesteps)

    timesteps = 200
    alphas = noise_schedule(schedule, timesteps).astype(np.float32)
    target = np.random.default_rng(0).uniform(-0.9, 0.9, (6, 6, 1)).astype(np.float32)

    class PerfectNoise(keras.layers.Layer):
        def call(self, x, t):
            a = ops.reshape(ops.take(ops.convert_to_tensor(alphas), ops.cast(t, "int32")), (-1, 1, 1, 1))
            return (x - ops.sqrt(a) * target) / ops.sqrt(1.0 - a)

    noisy, t = keras.Input((6, 6, 1), name=NOISY), keras.Input((), name=TIMESTEP)
    denoiser = keras.Model([noisy, t], PerfectNoise()(noisy, t))
    sampler = DDIMSampler(denoiser, timesteps=timesteps, schedule=schedule, steps=steps, low=0.0, high=16.0)
    noise = np.random.default_rng(1).standard_normal((3, 6, 6, 1)).astype(np.float32)
    images = np.asarray(sampler({NOISE: noise}))
    np.testing.assert_allclose(images, np.broadcast_to((target + 1) * 8.0, images.shape), atol=2e-3)
    sequence = sampling_timesteps(timesteps, steps)
    assert sequence[-1] == 0 and len(set(sequence)) == steps and sequence == sorted(sequence, reverse=True)


@pytest.mark.slow  # dlpipe.architectures.diffusion imports Keras
def test_noise_schedules_fall_from_almost_all_signal_to_almost_none():
    from dlpipe.architectures.diffusion import noise_schedule, sampling_timesteps

    linear = noise_schedule("linear", 1000)
    assert linear[0] == pytest.approx(1 - 1e-4) and linear[-1] == pytest.approx(4.04e-5, rel=0.01)
    cosine = noise_schedule("cosine", 1000)
    assert np.all(np.diff(linear) < 0) and np.all(np.diff(cosine) < 0)
    assert cosine[0] > 0.9999 and cosine[-1] < 1e-6
    # Other T keep the linear schedule's end point (Nichol & Dhariwal's scaling of β).
    assert noise_schedule("linear", 100)[-1] == pytest.approx(math.prod(1 - np.linspace(1e-3, 0.2, 100)))
    assert sampling_timesteps(1000, 4) == [750, 500, 250, 0]
    assert sampling_timesteps(10, 10) == list(range(9, -1, -1))


# Tiny real runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(spec) -> Path:
    from dlpipe.runner import run_spec

    return run_spec(spec, out=spec.parent / "plain")


@pytest.mark.slow
def test_tiny_run_trains_evaluates_and_exports_a_verified_sampler(plain):
    from dlpipe.training import checkpoints

    columns = history(plain)
    assert set(columns) == {"epoch", "loss", "learning_rate", "fid", "inception_score"}
    losses = [float(v) for v in columns["loss"]]
    assert losses[-1] < losses[0] < 1.5  # noise prediction starts near 1 (the noise's variance) and falls
    assert columns["fid"][0] == "" and all(float(v) > 0 for v in columns["fid"][1:])
    last = checkpoints.read(plain / "checkpoints" / "last.npz")
    assert last.finished and last.epoch == 3
    assert [int(a) for a in last.optimizer if a.shape == () and a.dtype.kind == "i"] == [3 * STEPS]
    generation = json.loads((plain / "evaluation" / "generation.json").read_text())
    assert [e["epoch"] for e in generation["evaluations"]] == [2, 3] and generation["generated_images"] == 40
    assert generation["sampler"] == {"steps": 4, "guidance": None}
    metrics = json.loads((plain / "metrics.json").read_text())["test"]
    assert metrics["fid_first"] == generation["evaluations"][0]["fid"]
    assert metrics["fid"] == generation["evaluations"][1]["fid"]
    assert (plain / "plots" / "samples_epoch_003.png").is_file() and (plain / "plots" / "fid.png").is_file()
    verification = json.loads((plain / "export" / "verification.json").read_text())
    assert {key: entry["passed"] for key, entry in verification.items()} == {"keras": True, "saved_model": True}
    interface = json.loads((plain / "export" / "saved_model" / "assets" / "dlpipe_interface.json").read_text())
    assert interface["inputs"][0]["shape"] == [8, 8, 1] and interface["sampler"]["steps"] == 4


@pytest.mark.slow
def test_exported_sampler_maps_noise_to_images_in_the_data_range(plain):
    """The SavedModel alone (TensorFlow, no dlpipe): noise from a seed → 8×8 images in
    0..16, the same as model.keras's, and a deterministic function of the noise."""
    import tensorflow as tf

    from dlpipe.architectures.diffusion import fixed_noise
    from dlpipe.modelfile import load_keras_model

    noise, _ = fixed_noise(5, (8, 8, 1), None, seed=11)
    served = tf.saved_model.load(str(plain / "export" / "saved_model")).signatures["serving_default"]
    images = next(iter(served(noise=tf.constant(noise)).values())).numpy()
    assert images.shape == (5, 8, 8, 1) and images.min() >= 0.0 and images.max() <= 16.0
    again = next(iter(served(noise=tf.constant(noise)).values())).numpy()
    np.testing.assert_array_equal(images, again)
    sampler = load_keras_model(plain / "model.keras")
    np.testing.assert_allclose(np.asarray(sampler({"noise": noise})), images, atol=1e-3)
    assert not np.allclose(images[0], images[1])  # different noise, different images


@pytest.mark.slow
def test_class_conditioned_run_with_guidance_exports_a_sampler_taking_a_class(spec):
    from dlpipe.modelfile import load_keras_model
    from dlpipe.runner import run_spec

    run = run_spec(spec, out=spec.parent / "conditional", overrides=[
        "data.target={name: label}", "model.sampler.guidance=3.0", "training.epochs=1",
        "evaluation.generation.every=1"])
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert all(entry["passed"] for entry in verification.values())
    sampler = load_keras_model(run / "model.keras")
    assert sorted(sampler.input) == ["label", "noise"]
    noise = np.repeat(np.random.default_rng(0).standard_normal((1, 8, 8, 1)).astype(np.float32), 2, axis=0)
    images = np.asarray(sampler({"noise": noise, "label": np.array([0, 7], dtype=np.int32)}))
    assert images.shape == (2, 8, 8, 1) and not np.allclose(images[0], images[1])  # the class changes the image
    card = json.loads((run / "export" / "saved_model" / "assets" / "dlpipe_interface.json").read_text())
    assert [i["name"] for i in card["inputs"]] == ["noise", "label"] and card["sampler"]["guidance"] == 3.0


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_matches_the_uninterrupted_run(spec, plain):
    out = spec.parent / "killed"
    # Kill points in the train stage: every batch's end (13 an epoch) and every atomic write
    # (2 for a checkpoint); the 20th falls in epoch 2, after epoch 1's checkpoint.
    run_killed(spec, out, "train:20")
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert not (out / "metrics.json").exists()

    resume_in_a_fresh_process(spec, out)

    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed_from_epoch"] == 1
    assert_same_bytes(out, plain, "metrics.json", "history.csv", Path("evaluation", "generation.json"))
