"""The embedding task end to end: an autoencoder trained on digits (labels only score it),
its encoder exported and used by `dlpipe predict`; and a run on data without labels.

Oracles: the pixels scaled by hand (the reconstruction target), scikit-learn's
KNeighborsClassifier on embeddings computed from the saved encoder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "specs" / "autoencoder-embeddings.yaml"

UNLABELED = """\
version: 1
name: unlabeled-rows
task: embedding
data:
  source: {type: csv, path: rows.csv}
model: {type: autoencoder, units: [8], latent: 2}
training: {epochs: 15, batch_size: 32, optimizer: {type: adam, learning_rate: 1.0e-2}}
"""


# Spec (no TensorFlow) ---------------------------------------------------------------------

def test_embedding_metrics_default_to_what_the_data_can_score(tmp_path):
    labeled = load_spec(TEMPLATE)
    assert labeled.pipeline == "embedding"
    assert load_spec(TEMPLATE, ["evaluation.metrics=null"]).evaluation.metrics == ["reconstruction_mse", "knn_accuracy"]
    (tmp_path / "u.yaml").write_text(UNLABELED)
    unlabeled = load_spec(tmp_path / "u.yaml")
    assert unlabeled.data.target is None and unlabeled.evaluation.metrics == ["reconstruction_mse"]
    assert type(unlabeled).model_validate(unlabeled.model_dump()) == unlabeled


# Runs -------------------------------------------------------------------------------------

def run_cli(*args: str) -> Path:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def digits_run() -> Path:
    import _runs

    return _runs.embedding()  # the template for 12 epochs, shared with tests/test_run_templates.py


@pytest.fixture(scope="module")
def splits(digits_run):
    from dlpipe.data.prepare import prepare

    return prepare(load_spec(digits_run / "spec.yaml"), ROOT, None).splits


@pytest.mark.slow
def test_metrics_match_independent_computations(digits_run, splits):
    from sklearn.neighbors import KNeighborsClassifier

    from dlpipe.modelfile import load_keras_model

    metrics = json.loads((digits_run / "metrics.json").read_text())
    encoder = load_keras_model(digits_run / "model.keras")
    autoencoder = load_keras_model(digits_run / "autoencoder.keras")
    embed = {name: np.asarray(encoder.predict(split.x, verbose=0)) for name, split in splits.items()}
    assert embed["test"].shape == (180, 16)
    knn = KNeighborsClassifier(n_neighbors=5).fit(embed["train"], splits["train"].y)
    for name in ("validation", "test"):
        assert metrics[name]["knn_accuracy"] == pytest.approx(knn.score(embed[name], splits[name].y), abs=1e-12)
        pixels = splits[name].x["image"].reshape(len(splits[name]), -1) / 16.0  # the template's rescale
        rebuilt = np.asarray(autoencoder.predict(splits[name].x, verbose=0))
        assert metrics[name]["reconstruction_mse"] == pytest.approx(np.mean((rebuilt - pixels) ** 2), rel=1e-4)
    # Real numbers: neighbours in the embedding share digits far above chance (0.1), and
    # the reconstruction beats predicting each pixel's training mean.
    assert metrics["test"]["knn_accuracy"] >= 0.85
    train_pixels = splits["train"].x["image"].reshape(len(splits["train"]), -1) / 16.0
    test_pixels = splits["test"].x["image"].reshape(len(splits["test"]), -1) / 16.0
    assert metrics["test"]["reconstruction_mse"] < 0.5 * np.mean((test_pixels - train_pixels.mean(0)) ** 2)


@pytest.mark.slow
def test_the_encoder_is_what_is_saved_exported_and_verified(digits_run):
    record = json.loads((digits_run / "run.json").read_text())
    assert record["status"] == "completed" and set(record["stages"]) == {
        "data", "setup", "build", "train", "evaluate", "export", "report"}
    verification = json.loads((digits_run / "export/verification.json").read_text())
    assert set(verification) == {"keras", "saved_model"}
    assert all(v["passed"] and v["max_abs_diff"] <= 1e-4 and v["samples"] == 180 for v in verification.values())
    card = json.loads((digits_run / "export/model_card.json").read_text())
    assert card["task"] == "embedding" and card["output"]["units"] == 16
    # The report shows the test embeddings on their first two principal components.
    assert {p.stem for p in (digits_run / "plots").glob("*.png")} == {"learning_curves", "embeddings"}
    assert (digits_run / "report.html").read_text().count("data:image/png;base64,") == 2
    header = (digits_run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "reconstruction_mse", "val_loss", "val_reconstruction_mse"} <= set(header)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["run", "export"])
def test_predict_writes_one_embedding_per_example(digits_run, splits, where, tmp_path):
    import keras

    images = splits["test"].x["image"][:7]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"image": image[..., 0].tolist()}) + "\n" for image in images))
    model = digits_run if where == "run" else digits_run / "export"
    result = CliRunner().invoke(main, ["predict", str(model), str(rows), "--out", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "e.csv", newline="") as handle:
        header, *body = list(csv.reader(handle))
    assert header == [f"embedding_{i}" for i in range(16)] and len(body) == 7
    expected = keras.saving.load_model(digits_run / "model.keras").predict({"image": images}, verbose=0)
    np.testing.assert_allclose(np.array(body, dtype=np.float64), expected, atol=1e-5)


@pytest.mark.slow
def test_data_without_labels_trains_and_reports_reconstruction_only(tmp_path):
    rng = np.random.default_rng(0)
    # Four columns that are noisy copies of two hidden numbers: a 2-number code fits them.
    hidden = rng.normal(size=(240, 2))
    values = np.concatenate([hidden, hidden @ np.array([[1.0, 0.5], [-0.5, 1.0]])], axis=1)
    values += 0.01 * rng.normal(size=values.shape)
    lines = ["a,b,c,d"] + [",".join(f"{v:.5f}" for v in row) for row in values]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "spec.yaml").write_text(UNLABELED)
    run = run_cli(str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"reconstruction_mse"}
    # z-scored inputs: predicting 0 everywhere scores about 1; 15 short epochs do far better.
    assert metrics["test"]["reconstruction_mse"] < 0.2
    card = json.loads((run / "export/model_card.json").read_text())
    assert card["target"] is None and card["class_names"] is None
    result = CliRunner().invoke(main, ["predict", str(run), str(tmp_path / "rows.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "embedding_0,embedding_1" and len(result.stdout.splitlines()) == 241


@pytest.mark.slow
def test_the_template_trains_on_jax_without_tensorflow_as_on_tensorflow(digits_run, splits, tmp_path):
    """The template's shared TensorFlow run (12 epochs) again on JAX, in a process where
    TensorFlow cannot be imported: run, `dlpipe evaluate` and `dlpipe predict` there; its
    metrics are close to TensorFlow's (each backend shuffles in its own order), and its .keras
    files, loaded here on TensorFlow, give back its metrics and its predictions."""
    from test_backend import AFTER_TRAINING, without_tensorflow

    from dlpipe.metrics.embedding import reconstruction_mse
    from dlpipe.modelfile import load_keras_model

    images = splits["test"].x["image"][:7]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"image": image[..., 0].tolist()}) + "\n" for image in images))
    run = tmp_path / "run"
    sets = ["backend=jax", "training.epochs=12", "export.formats=[keras]", "training.progress=none"]
    commands = [["run", str(TEMPLATE), *[a for s in sets for a in ("--set", s)], "--out", str(run)],
                ["evaluate", str(run)], ["predict", str(run), str(rows), "--out", str(tmp_path / "e.csv")]]
    result = without_tensorflow(AFTER_TRAINING.format(commands=commands),
                                env={"DLPIPE_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "jax" and "tensorflow" not in record["versions"]
    assert json.loads((run / "export/verification.json").read_text())["keras"]["passed"] is True

    on_jax = json.loads((run / "metrics.json").read_text())["test"]
    on_tensorflow = json.loads((digits_run / "metrics.json").read_text())["test"]
    assert on_jax["knn_accuracy"] >= 0.85 and abs(on_jax["knn_accuracy"] - on_tensorflow["knn_accuracy"]) <= 0.04
    ratio = on_jax["reconstruction_mse"] / on_tensorflow["reconstruction_mse"]
    assert 0.75 <= ratio <= 1.33, (on_jax, on_tensorflow)
    evaluated = dict(line.split("\t")[1:] for line in result.stdout.splitlines() if line.startswith("test\t"))
    assert float(evaluated["knn_accuracy"]) == pytest.approx(on_jax["knn_accuracy"], abs=1e-6)

    # The JAX run's files on TensorFlow (this process): the same reconstruction error and embeddings.
    autoencoder = load_keras_model(run / "autoencoder.keras")
    pixels = splits["test"].x["image"].reshape(len(splits["test"]), -1) / 16.0
    rebuilt = np.asarray(autoencoder.predict(splits["test"].x, verbose=0))
    assert reconstruction_mse(pixels, rebuilt) == pytest.approx(on_jax["reconstruction_mse"], rel=1e-4)
    with open(tmp_path / "e.csv", newline="") as handle:
        header, *body = list(csv.reader(handle))
    assert header == [f"embedding_{i}" for i in range(16)] and len(body) == 7
    encoder = load_keras_model(run / "export/keras/model.keras")
    np.testing.assert_allclose(np.array(body, dtype=np.float64), encoder.predict({"image": images}, verbose=0),
                               atol=1e-5)


@pytest.mark.slow
def test_a_conv_autoencoder_trains_on_the_error_over_every_pixel(splits, tmp_path):
    """encoder: conv reconstructs an image (rows × columns × channels): the loss is each
    example's mean over all of them (Keras' mean_squared_error averages the last axis only,
    which example weights cannot multiply), and training brings it under the pixel means'."""
    from dlpipe.training.losses import ReconstructionError

    rng = np.random.default_rng(0)
    y, p = rng.uniform(size=(2, 5, 8, 8, 1)).astype(np.float32)
    weights = np.array([1, 1, 1, 1, 0], np.float32)
    loss = float(ReconstructionError()(y, p, sample_weight=weights))
    assert loss == pytest.approx(np.mean(((y - p) ** 2)[:4]) * 4 / 5, rel=1e-6)

    run = run_cli(str(TEMPLATE), "--set", "model.encoder=conv", "--set", "model.filters=[8, 16]",
                  "--set", "training.epochs=8", "--set", "export.formats=[keras]", "--set", "training.progress=none",
                  "--out", str(tmp_path / "run"))
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    train_pixels = splits["train"].x["image"] / 16.0
    test_pixels = splits["test"].x["image"] / 16.0
    assert metrics["reconstruction_mse"] < 0.6 * np.mean((test_pixels - train_pixels.mean(0)) ** 2)
    assert metrics["knn_accuracy"] >= 0.85  # 0.79 after 3 epochs, 0.93 after 8 (seed 42)
