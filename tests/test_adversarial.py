"""Task generation end to end: the GAN template and a class-conditioned variant, each a few
epochs through the CLI; the exported generator; FID against a direct scipy computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.rundir import RunDir
from dlpipe.spec import load_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "specs" / "image-generation-gan.yaml"
# Few epochs, a quickly trained feature extractor, small evaluations: the contract, not quality.
QUICK = ["--set", "training.epochs=2", "--set", "evaluation.generation.every=1",
         "--set", "evaluation.generation.feature_extractor.epochs=2", "--set", "evaluation.generation.samples=100",
         "--set", "evaluation.generation.grid=20", "--set", "training.progress=none"]


def run_cli(*args: str) -> Path:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    return run_cli(str(TEMPLATE), *QUICK, "--out", str(tmp_path_factory.mktemp("gan") / "run"))


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory) -> Path:
    return run_cli(str(TEMPLATE), *QUICK, "--set", "training.epochs=1", "--set", "data.target={name: label}",
                   "--set", "training.adversarial.discriminator_steps=2",
                   "--out", str(tmp_path_factory.mktemp("cgan") / "run"))


def test_gan_run_writes_every_contract_file(gan_run):
    for name in ["spec.yaml", "run.json", "data.json", "metrics.json", "history.csv", "model.keras",
                 "discriminator.keras", "evaluation/generation.json", "export/verification.json",
                 "export/keras/model.keras", "export/saved_model/saved_model.pb", "plots/fid.png",
                 "plots/samples_epoch_001.png", "plots/samples_epoch_002.png", "report.html",
                 "checkpoints/last.npz", "checkpoints/last.json"]:
        assert (gan_run / name).is_file(), name
    record = json.loads((gan_run / "run.json").read_text())
    assert record["status"] == "completed" and record["error"] is None
    assert set(record["stages"]) == {"data", "setup", "features", "build", "train", "evaluate", "export", "report"}
    assert all(s["status"] == "completed" for s in record["stages"].values())
    assert set(record["parameters"]) == {"generator", "discriminator"}
    splits = json.loads((gan_run / "splits.json").read_text())  # the digits' rows of each split
    rows = [row for part in splits["splits"].values() for row in part]
    assert splits["unit"] == "row" and sorted(rows) == list(range(1797))
    assert len(splits["splits"]["test"]) == json.loads((gan_run / "data.json").read_text())["split_sizes"]["test"]
    assert not list(gan_run.glob("**/.*.tmp*")) and RunDir.lock_holder(gan_run) is None
    resolved = load_spec(gan_run / "spec.yaml")  # complete: every default written, and valid
    assert resolved.model_dump() == yaml.safe_load((gan_run / "spec.yaml").read_text())
    assert resolved.training.adversarial.label_smoothing == 0.1

    metrics = json.loads((gan_run / "metrics.json").read_text())["test"]
    evaluations = json.loads((gan_run / "evaluation/generation.json").read_text())
    first, last = evaluations["evaluations"][0], evaluations["evaluations"][-1]
    assert [e["epoch"] for e in evaluations["evaluations"]] == [1, 2]
    assert metrics["fid"] == last["fid"] > 0 and metrics["fid_first"] == first["fid"]
    assert 1.0 <= metrics["inception_score"] <= 10.0
    # The in-pipeline classifier tells digits apart, so real test images score well above 1.
    assert evaluations["feature_extractor"]["test_accuracy"] > 0.8
    assert metrics["inception_score_real"] > max(2.0, metrics["inception_score"])

    header, *rows = (gan_run / "history.csv").read_text().splitlines()
    columns = header.split(",")
    assert {"epoch", "d_loss", "g_loss", "d_real", "d_fake", "learning_rate", "fid", "inception_score"} == set(columns)
    assert len(rows) == 2 and all(np.isfinite(float(v)) for v in rows[-1].split(","))
    page = (gan_run / "report.html").read_text()
    assert "samples_epoch_002" in page and page.count("data:image/png;base64,") >= 4


def test_every_fid_has_its_floor_and_sample_counts(gan_run):
    """fid_reference: FID of as many training images as are generated against the same test
    images, with the same extractor; a 2-epoch GAN is far above it."""
    metrics = json.loads((gan_run / "metrics.json").read_text())["test"]
    generation = json.loads((gan_run / "evaluation/generation.json").read_text())
    n_test = json.loads((gan_run / "data.json").read_text())["split_sizes"]["test"]
    assert metrics["fid_samples"] == 100 and metrics["fid_real_samples"] == n_test == 359
    assert generation["fid_reference"] == {"fid_reference": metrics["fid_reference"], "real_images": 359,
                                           "training_images": 100, "generated_images": 100}
    assert 0 < metrics["fid_reference"] < metrics["fid"]
    assert generation["feature_extractor"]["file"] == "feature_extractor.keras"
    page = (gan_run / "report.html").read_text()
    assert "FID and its floor" in page and "fid_reference" in page


def test_fid_recomputed_from_the_saved_extractor_equals_metrics_json(gan_run, capsys):
    """`python -m dlpipe.metrics.fid RUN` reads feature_extractor.keras and
    evaluation/fid_samples.npz only; the generated images there are the generator's on the
    run's fixed latents."""
    from dlpipe.architectures.gan import fixed_latents, generate
    from dlpipe.metrics import fid
    from dlpipe.modelfile import load_keras_model

    metrics = json.loads((gan_run / "metrics.json").read_text())["test"]
    values = fid.recompute(gan_run)
    assert values["fid"] == metrics["fid"] and values["fid_reference"] == metrics["fid_reference"]
    assert fid.main([str(gan_run)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"fid {metrics['fid']!r}  metrics.json {metrics['fid']!r}  difference 0")
    with np.load(gan_run / "evaluation/fid_samples.npz") as samples:
        generated, real = samples["generated"], samples["real"]
    latents, _ = fixed_latents(100, 32, None, 42)
    np.testing.assert_array_equal(generate(load_keras_model(gan_run / "model.keras"), latents, None), generated)
    assert real.shape == (359, 8, 8, 1)


def test_exported_generator_maps_a_fixed_latent_to_the_same_image(gan_run):
    import keras
    import tensorflow as tf

    generator = keras.saving.load_model(gan_run / "model.keras", safe_mode=True, compile=False)
    exported = keras.saving.load_model(gan_run / "export/keras/model.keras", safe_mode=True, compile=False)
    serve = tf.saved_model.load(str(gan_run / "export/saved_model")).signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"latent"}
    latent = np.random.default_rng(7).standard_normal((5, 32)).astype(np.float32)
    expected = np.asarray(generator(latent, training=False))
    assert expected.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(np.asarray(exported(latent, training=False)), expected)
    served = next(iter(serve(latent=tf.constant(latent)).values())).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    # Images come out in the data's units (digits: 0..16), not the tanh range.
    low, high = json.loads((gan_run / "data.json").read_text())["features"][0]["value_range"]
    assert (low, high) == (0.0, 16.0)
    assert expected.min() >= low - 1e-4 and expected.max() <= high + 1e-4
    verification = json.loads((gan_run / "export/verification.json").read_text())
    assert set(verification) == {"keras", "saved_model"}
    assert all(v["passed"] and v["max_abs_diff"] <= 1e-4 and v["samples"] == 256 for v in verification.values())


def test_conditional_generator_takes_a_class(conditional_run):
    import keras
    import tensorflow as tf

    generator = keras.saving.load_model(conditional_run / "model.keras", safe_mode=True, compile=False)
    assert [i.name for i in generator.inputs] == ["latent", "label"]
    serve = tf.saved_model.load(str(conditional_run / "export/saved_model")).signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"latent", "label"}
    latent = np.repeat(np.random.default_rng(3).standard_normal((1, 32)).astype(np.float32), 10, axis=0)
    labels = np.arange(10, dtype=np.int32)
    images = np.asarray(generator({"latent": latent, "label": labels}, training=False))
    served = next(iter(serve(latent=tf.constant(latent), label=tf.constant(labels)).values())).numpy()
    np.testing.assert_allclose(served, images, atol=1e-5)
    # Same latent, different classes: the class changes the image.
    assert np.abs(images[0] - images[1]).max() > 1e-3
    assert json.loads((conditional_run / "export/verification.json").read_text())["saved_model"]["passed"]


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula, with scipy's general matrix square root."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(sigma_a @ sigma_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a + sigma_b - 2 * root))


# Dead ReLU units make the covariances singular; scipy warns, and still agrees.
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_fid_on_classifier_features_matches_scipy_and_separates_noise(gan_run):
    from dlpipe.data.images import prepare_images
    from dlpipe.metrics.generative import fid, train_classifier_extractor

    spec = load_spec(gan_run / "spec.yaml")
    data = prepare_images(spec, ROOT, located=None)
    scorer, _ = train_classifier_extractor(data.images["train"], data.extractor_labels["train"], 10,
                                           low=data.low, high=data.high, units=16, epochs=2, seed=0)
    train, _ = scorer(data.images["train"])
    test, _ = scorer(data.images["test"])
    noise_images = np.random.default_rng(0).uniform(data.low, data.high, size=data.images["test"].shape)
    noise, _ = scorer(noise_images.astype(np.float32))
    assert fid(test, test) == pytest.approx(0.0, abs=1e-6)
    real_vs_real, real_vs_noise = fid(train, test), fid(train, noise)
    # More samples than dimensions (16): the scipy formula is well conditioned here.
    assert real_vs_real == pytest.approx(_scipy_fid(train, test), rel=1e-5, abs=1e-6)
    assert real_vs_noise == pytest.approx(_scipy_fid(train, noise), rel=1e-5)
    assert real_vs_noise > 20 * real_vs_real


def test_export_command_reexports_the_generator_on_the_same_latents(gan_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(gan_run, copy)
    result = CliRunner().invoke(main, ["export", str(copy), "--set", "export.samples=20",
                                       "--set", "export.tolerance={saved_model: {max_abs_diff: 1.0e-6}}"])
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.stdout.strip().splitlines()] == [["keras", "verified"],
                                                                                  ["saved_model", "verified"]]
    verification = json.loads((copy / "export/verification.json").read_text())
    assert verification["saved_model"]["tolerance"] == {"max_abs_diff": 1e-6}
    assert all(v["samples"] == 20 and v["passed"] and v["max_abs_diff"] <= 1e-6 for v in verification.values())
    card = json.loads((copy / "export/model_card.json").read_text())
    assert [i["name"] for i in card["inputs"]] == ["latent"] and card["output"]["shape"] == [8, 8, 1]
    assert card["exports"] == verification and card["metrics"] == json.loads((gan_run / "metrics.json").read_text())
    assert "## Exports" in (copy / "export/model_card.md").read_text()


def test_evaluate_refuses_a_gan_run_in_one_line(gan_run):
    result = CliRunner().invoke(main, ["evaluate", str(gan_run)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {gan_run}: dlpipe evaluate does not support "
                                                             "the generation task yet")
