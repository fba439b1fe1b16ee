"""Task generation on `backend: jax`: a tiny diffusion model and a tiny GAN train without
TensorFlow (a fresh process in which `import tensorflow` fails: tests/test_backend.py), export
`.keras`, and what they wrote holds on TensorFlow: the exported sampler / generator, loaded in
this (TensorFlow) process, draws from the run's fixed seeded noise the images the JAX run
scored, and the run's FID recomputes from its saved extractor and images on TensorFlow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_backend import dlpipe_without_tensorflow

pytestmark = pytest.mark.slow
SPECS = Path(__file__).resolve().parent.parent / "specs"

SMALL = ("backend=jax", "export.formats=[keras]", "training.progress=none", "training.epochs=3",
         "evaluation.generation.every=1", "evaluation.generation.samples=100",
         "evaluation.generation.feature_extractor.epochs=2", "export.samples=8")
TINY = {
    "diffusion": ("image-generation-diffusion", (*SMALL, "model.timesteps=100", "model.sampler.steps=5",
                                                 "model.unet.filters=[16,32]")),
    "gan": ("image-generation-gan", SMALL),
}


def run_without_tensorflow(which: str, out: Path, *more: str, env: dict | None = None):
    template, sets = TINY[which]
    return dlpipe_without_tensorflow("run", str(SPECS / f"{template}.yaml"), *[a for s in sets for a in ("--set", s)],
                                     *more, "--out", str(out), env=env)


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("generation-jax")
    runs = {}
    for which in TINY:
        result = run_without_tensorflow(which, folder / which, env={"DLPIPE_CACHE_DIR": str(folder / "cache")})
        assert result.returncode == 0, result.stderr[-3000:]
        runs[which] = folder / which
    return runs


@pytest.mark.parametrize("which", sorted(TINY))
def test_generation_trains_on_jax_without_tensorflow(which, jax_runs):
    run = jax_runs[which]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "jax"
    assert "jax" in record["versions"] and "tensorflow" not in record["versions"]
    assert record["training"]["jit_compile"] is True
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert set(test) >= {"fid", "fid_first", "fid_reference", "inception_score", "inception_score_first"}
    # Each evaluation scored: finite, above the real-against-real floor at these counts.
    evaluations = json.loads((run / "evaluation" / "generation.json").read_text())["evaluations"]
    assert [e["epoch"] for e in evaluations] == [1, 2, 3]
    assert all(math.isfinite(e["fid"]) and e["fid"] > test["fid_reference"] for e in evaluations), evaluations
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 4  # a header and three epochs
    assert (run / "model.keras").is_file() and (run / "export" / "keras" / "model.keras").is_file()
    assert json.loads((run / "export" / "verification.json").read_text())["keras"]["passed"] is True
    assert not (run / "logs").exists()  # training.tensorboard: auto writes none on jax


def test_diffusion_loss_falls_on_jax(jax_runs):
    header, *rows = (jax_runs["diffusion"] / "history.csv").read_text().splitlines()
    loss = [float(row.split(",")[header.split(",").index("loss")]) for row in rows]
    assert loss[-1] < 0.75 * loss[0], loss  # noise prediction learns from the first updates


@pytest.mark.parametrize("which", sorted(TINY))
def test_a_jax_generator_draws_the_same_images_on_tensorflow(which, jax_runs):
    """model.keras (the DDIM sampler, the generator) written on JAX, run here on TensorFlow
    from the run's fixed seeded inputs, draws the images the JAX run's last FID scored; the
    FID recomputed here from the saved extractor and images equals metrics.json's."""
    import keras

    from dlpipe.metrics.fid import recompute
    from dlpipe.modelfile import load_keras_model

    assert keras.backend.backend() == "tensorflow"
    run = jax_runs[which]
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    with np.load(run / "evaluation" / "fid_samples.npz") as saved:
        drawn_on_jax = saved["generated"]
    count = len(drawn_on_jax)
    shown = max(count, spec["evaluation"]["generation"]["grid"])
    model = load_keras_model(run / "model.keras")
    if which == "diffusion":
        from dlpipe.architectures.diffusion import fixed_noise, sample

        noise, _ = fixed_noise(shown, drawn_on_jax.shape[1:], None, spec["seed"])
        drawn = sample(model, noise[:count], None)
    else:
        from dlpipe.architectures.gan import fixed_latents, generate

        latents, _ = fixed_latents(shown, spec["model"]["latent_size"], None, spec["seed"])
        drawn = generate(model, latents, None)[:count]
    np.testing.assert_allclose(drawn, drawn_on_jax, atol=1e-3)  # the export tolerance of the templates
    recorded = json.loads((run / "metrics.json").read_text())["test"]
    again = recompute(run)
    assert again["fid"] == pytest.approx(recorded["fid"], rel=1e-3)
    assert again["fid_reference"] == pytest.approx(recorded["fid_reference"], rel=1e-3)


@pytest.mark.parametrize("which", sorted(TINY))
def test_a_jax_generator_killed_mid_training_resumes_to_the_same_bytes(which, jax_runs, tmp_path):
    """Killed (SIGKILL) in epoch 2, after epoch 1's checkpoint, then resumed: the networks, the
    optimizers (the GAN discriminator's rides in the jitted step's state beside the
    generator's), the diffusion model's EMA weights and the noise seeds continue exactly, so
    the weights, history.csv and metrics.json equal the uninterrupted run's (the module's run
    of the same spec)."""
    whole = jax_runs[which]
    cache = {"DLPIPE_CACHE_DIR": str(whole.parent / "cache")}  # its compiled steps, loaded here
    out = tmp_path / "killed"
    killed = run_without_tensorflow(which, out, env={"DLPIPE_TEST_KILL_AT": "train:30", **cache})  # 22 steps an epoch
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    resumed = run_without_tensorflow(which, out, "--resume", env=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    a, b = (json.loads((run / "run.json").read_text()) for run in (whole, out))
    assert b["resumed_from_epoch"] == 1 and a["weights_sha256"] == b["weights_sha256"]
    for name in ("history.csv", "metrics.json"):
        assert (whole / name).read_bytes() == (out / name).read_bytes(), name
