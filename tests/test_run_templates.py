"""End to end: every template in specs/, through the CLI in-process.

The two foundation templates run in full (about 20 s each on 2 cores) and check the user
contract: the accuracy targets, every run-directory file, byte-identical reruns, export
parity. Every template (those two included) is in TEMPLATES below: copied with `dlpipe init`,
run unchanged but for fewer epochs (--set), and its headline metric must beat a trivial
baseline. A template without an entry fails tests/test_cli.py::test_every_template_has_a_run_template_entry
(a fast test: landing a template needs its entry).

`pytest tests/test_run_templates.py --backend jax` runs every template with `--set backend=jax`
(tests/conftest.py); a template that `dlpipe validate` refuses on that backend must be refused
in one line, at `backend`, and its tests are skipped showing that line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
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
BACKEND = os.environ.get("DLPIPE_TEST_BACKEND", "tensorflow")
"""The backend every run of this module trains on (`pytest --backend jax`: tests/conftest.py)."""
CONTRACT_FILES = ["spec.yaml", "run.json", "metrics.json", "history.csv", "model.keras",
                  "export/verification.json", "export/keras/model.keras", "export/saved_model/saved_model.pb",
                  "report.html"]


def run_cli(spec: str, *args: str) -> Path:
    """`dlpipe run SPEC ARGS` on this session's backend."""
    if BACKEND != "tensorflow":
        skip_if_refused(spec)
        args = ("--set", f"backend={BACKEND}", *args)
    result = CliRunner().invoke(main, ["run", spec, *args])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def skip_if_refused(spec: str | Path) -> None:
    """On a backend other than TensorFlow: a spec `dlpipe validate` refuses there is refused in
    one line, at `backend` (the template needs TensorFlow), and the test is skipped with it."""
    result = CliRunner().invoke(main, ["validate", "--no-cache", str(spec), "--set", f"backend={BACKEND}"])
    if result.exit_code == 0:
        return
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f": backend: " in lines[0], lines
    pytest.skip(f"refused on backend {BACKEND}: {lines[0]}")


def shared_run(name: str, tmp_path_factory) -> Path:
    """The shortened run of template `name` that tests/_runs.py makes once for this module and
    tests/test_evaluation.py (its overrides: `_runs.SHORTENED`); on another backend, this
    module's own run with the same overrides."""
    import _runs

    if BACKEND == "tensorflow":
        return _runs.template(name)
    sets = [arg for key in _runs.SHORTENED[name] for arg in ("--set", key)]
    return run_cli(str(ROOT / "specs" / f"{name}.yaml"), *sets, "--out", str(tmp_path_factory.mktemp(name) / "run"))


def init_and_run(name: str, folder: Path, *sets: str) -> Path:
    """`dlpipe init NAME FOLDER`, then `dlpipe run` of the copy: the shipped file, unchanged,
    runs from anywhere (each `--set KEY=VALUE` in `sets` only shortens it)."""
    result = CliRunner().invoke(main, ["init", name, str(folder)])
    assert result.exit_code == 0, result.output
    copy = folder / f"{name}.yaml"
    assert copy.read_text().splitlines()[0] == f"# dlpipe run {copy}"
    assert copy.read_text().splitlines()[1:] == (ROOT / "specs" / f"{name}.yaml").read_text().splitlines()[1:]
    return run_cli(str(copy), *[arg for key in sets for arg in ("--set", key)], "--out", str(folder / "run"))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    return init_and_run("image-classification", tmp_path_factory.mktemp("img"))


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory) -> Path:
    return init_and_run("tabular-classification", tmp_path_factory.mktemp("tab"))


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_image_classification_reaches_097(image_run):
    assert metrics(image_run)["test"]["accuracy"] >= 0.97


def test_tabular_classification_reaches_095(tabular_run):
    assert metrics(tabular_run)["test"]["accuracy"] >= 0.95


@pytest.mark.parametrize("which", ["image_run", "tabular_run"])
def test_run_directory_holds_the_contract(which, request):
    run = request.getfixturevalue(which)
    for name in CONTRACT_FILES:
        assert (run / name).is_file(), name
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["error"] is None
    assert set(record["stages"]) == {"data", "setup", "build", "train", "evaluate", "export", "report"}
    assert all(s["status"] == "completed" and s["seconds"] >= 0 for s in record["stages"].values())
    assert record["deterministic"] is True and record["seed"] == 42
    assert record["data_fingerprint"].startswith("sha256:")
    assert {"dlpipe", "python", BACKEND, "keras"} <= set(record["versions"]) and record["backend"] == BACKEND
    assert not list(run.glob("**/.*.tmp*")) and RunDir.lock_holder(run) is None
    # The resolved spec is complete and valid: loading it gives back the same spec.
    resolved = load_spec(run / "spec.yaml")
    assert resolved.model_dump() == yaml.safe_load((run / "spec.yaml").read_text())
    header, *rows = (run / "history.csv").read_text().splitlines()
    assert header.split(",")[:2] == ["epoch", "accuracy"] and len(rows) >= 1


@pytest.mark.parametrize("which", ["image_run", "tabular_run"])
def test_exports_match_the_trained_model(which, request):
    run = request.getfixturevalue(which)
    verification = json.loads((run / "export/verification.json").read_text())
    assert set(verification) == {"keras", "saved_model"}
    for result in verification.values():
        assert result["passed"] and result["max_abs_diff"] <= 1e-4 and result["agreement"] == 1.0
        assert result["samples"] > 0


def test_saved_model_serves_raw_named_inputs(tabular_run):
    import keras
    import tensorflow as tf

    from sklearn.datasets import load_breast_cancer

    model = keras.saving.load_model(tabular_run / "model.keras")
    serve = tf.saved_model.load(str(tabular_run / "export/saved_model")).signatures["serving_default"]
    bunch = load_breast_cancer()
    names = json.loads((tabular_run / "data.json").read_text())["features"]
    assert [f["name"] for f in names] == list(bunch.feature_names)
    raw = {f["input"]: bunch.data[:5, i : i + 1].astype("float32") for i, f in enumerate(names)}
    assert set(serve.structured_input_signature[1]) == set(raw)  # e.g. "mean_radius"
    served = next(iter(serve(**{k: tf.constant(v) for k, v in raw.items()}).values())).numpy()
    np.testing.assert_allclose(served, model.predict(raw, verbose=0), atol=1e-6)


def test_normalization_uses_training_statistics_only(tabular_run):
    import keras

    from dlpipe.data.prepare import prepare

    spec = load_spec(tabular_run / "spec.yaml")
    data = prepare(spec, ROOT, located=None)
    model = keras.saving.load_model(tabular_run / "model.keras")
    layer = model.get_layer("mean_radius_zscore")
    train = data.splits["train"].x["mean_radius"].astype("float64")
    everything = np.concatenate([s.x["mean_radius"] for s in data.splits.values()]).astype("float64")
    assert np.allclose(np.asarray(layer.mean).ravel(), train.mean(), rtol=1e-6)
    assert np.allclose(np.sqrt(np.asarray(layer.variance)).ravel(), train.std(), rtol=1e-5)
    assert not np.isclose(train.mean(), everything.mean(), rtol=1e-6)  # the check can tell them apart


def test_same_spec_twice_gives_byte_identical_metrics(tmp_path):
    spec = str(ROOT / "specs/image-classification.yaml")
    first = run_cli(spec, "--set", "training.epochs=2", "--out", str(tmp_path / "a"))
    second = run_cli(spec, "--set", "training.epochs=2", "--out", str(tmp_path / "b"))
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    assert (first / "history.csv").read_bytes() == (second / "history.csv").read_bytes()


# Quick runs of the other templates: fewer epochs (--set), a real metric above a trivial baseline.


@pytest.fixture(scope="module")
def forecasting_run(tmp_path_factory) -> Path:
    return shared_run("time-series-forecasting", tmp_path_factory)


def test_time_series_forecasting_beats_the_last_value_forecast(forecasting_run):
    test = metrics(forecasting_run)["test"]
    assert test["mae"] <= 0.8 * test["naive_mae"]  # seen: 0.39 vs 0.75 after 6 epochs
    assert test["rmse"] < test["naive_rmse"]
    assert json.loads((forecasting_run / "export/verification.json").read_text())["saved_model"]["passed"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    return shared_run("text-classification", tmp_path_factory)


def test_text_classification_clearly_beats_the_majority_class(text_run):
    from dlpipe.data.builtin import load_reviews

    labels = load_reviews().columns["sentiment"]
    majority = max(labels.mean(), 1 - labels.mean())  # ~0.59
    assert metrics(text_run)["test"]["accuracy"] >= majority + 0.2  # seen: 0.90 after 3 epochs


def test_text_model_takes_raw_strings_and_its_vocabulary_is_from_training_rows(text_run):
    import keras
    import tensorflow as tf

    from dlpipe.data.prepare import prepare

    model = keras.saving.load_model(text_run / "model.keras")
    vectorize = model.get_layer("review_vectorize")
    vocabulary = set(vectorize.get_vocabulary()[2:])
    data = prepare(load_spec(text_run / "spec.yaml"), ROOT, located=None)
    train_words = {w.strip(".!").lower() for text in data.splits["train"].x["review"].ravel() for w in text.split()}
    assert vocabulary == train_words
    served = tf.saved_model.load(str(text_run / "export/saved_model")).signatures["serving_default"]
    texts = tf.constant([["Great phone, excellent battery!"], ["awful and boring, not good"]])
    probability = next(iter(served(review=texts).values())).numpy().ravel()
    assert probability[0] > 0.5 > probability[1]


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory) -> Path:
    return shared_run("object-detection", tmp_path_factory)


def test_object_detection_finds_the_shapes(detection_run):
    test = metrics(detection_run)["test"]
    assert test["map_50"] >= 0.25  # seen: 0.44 after 10 epochs on 400 images (the template: 0.9)
    assert test["map"] <= test["map_50"]
    verification = json.loads((detection_run / "export/verification.json").read_text())
    assert all(result["passed"] for result in verification.values())
# Every template: a real metric above a trivial baseline ---------------------------------


def _labels(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(training labels, test labels) of a run, rebuilt from its resolved spec."""
    from dlpipe.data.prepare import prepare

    splits = prepare(load_spec(run / "spec.yaml"), ROOT, located=None).splits
    return splits["train"].y, splits["test"].y


def majority_accuracy(run: Path) -> float:
    """Always answering the training split's most common class."""
    train, test = _labels(run)
    values, counts = np.unique(train, return_counts=True)
    return float(np.mean(test == values[counts.argmax()]))


def mean_mse(run: Path) -> float:
    """Always answering the training split's mean."""
    train, test = _labels(run)
    return float(np.mean((test.astype("float64") - train.astype("float64").mean()) ** 2))


def majority_cultivar(run: Path) -> float:
    """The multi-output template's classification output: its majority-class baseline."""
    return metrics(run)["baselines"]["test"]["majority_class"]["cultivar/accuracy"]


def naive_mae(run: Path) -> float:
    """The last value, repeated over the horizon (the forecasting pipeline scores it too)."""
    return metrics(run)["test"]["naive_mae"]


def first_fid(run: Path) -> float:
    """The GAN's own first evaluation (after `evaluation.generation.every` epochs)."""
    return metrics(run)["test"]["fid_first"]


def nothing_found(run: Path) -> float:
    """A detector that finds nothing has mAP 0."""
    return 0.0


@dataclass(frozen=True)
class Entry:
    run: str | tuple[str, ...]
    """A fixture of this module (a run it checks further), or the --set overrides of a shortened run."""
    metric: str
    baseline: Callable[[Path], float]
    higher_is_better: bool
    margin: float
    """How far beyond the baseline the test value must be (absolute)."""
    target: float | None = None
    """Issue #10's number for the template's full run, checked when it runs in full."""


TEMPLATES: dict[str, Entry] = {
    "image-classification": Entry("image_run", "accuracy", majority_accuracy, True, 0.5, target=0.97),
    "tabular-classification": Entry("tabular_run", "accuracy", majority_accuracy, True, 0.2, target=0.96),
    # In full (its schedules need 15 epochs; seen: 35 epochs, test accuracy 1.000 pruned to 80 %
    # with int8 simulated, both TFLite files 1.000 too).
    "compressed-image-classification": Entry(("training.progress=none",), "accuracy", majority_accuracy, True, 0.5,
                                             target=0.97),
    # Seen: test MSE 2,872 in full (about 90 epochs); the mean predictor scores 6,395.
    "tabular-regression": Entry(("training.epochs=40",), "mse", mean_mse, False, 1500.0),
    # Seen: kNN accuracy 0.97 in full; 0.96 after 12 epochs; the majority class is 0.10.
    "autoencoder-embeddings": Entry("embedding_run", "knn_accuracy", majority_accuracy, True, 0.7),
    # The text and time-series runs are this module's fixtures (shared with their own tests
    # and tests/test_evaluation.py, tests/_runs.py).
    "text-classification": Entry("text_run", "accuracy", majority_accuracy, True, 0.2),
    "time-series-forecasting": Entry("forecasting_run", "mae", naive_mae, False, 0.1),
    # The detection fixture: 400 images, 10 epochs (seen: map_50 0.44). Finding
    # nothing scores 0, and so does a detector before it learns (seen: 0.008 after 10
    # epochs of a smaller model on 32×32 images).
    "object-detection": Entry("detection_run", "map_50", nothing_found, True, 0.25),
    # Seen in full (40 epochs): FID 143.4 at epoch 5 → 6.3; at epoch 10 it is 16.7 already.
    # Seen: cultivar accuracy 0.97 (alcohol r2 0.4) after 40 epochs; the majority class is 0.22.
    "multi-output": Entry(("training.epochs=40",), "cultivar/accuracy", majority_cultivar, True, 0.4),
    "image-generation-gan": Entry(("training.epochs=10", "training.progress=none"), "fid", first_fid, False, 50.0),
    # Shortened: 10 epochs, FID at epochs 5 and 10. Seen: 37.8 → 24.2 (in full, 60 epochs:
    # 36.5 → 3.8).
    "image-generation-diffusion": Entry(("training.epochs=10", "training.progress=none"), "fid", first_fid, False,
                                        10.0),
    # In full (the `dlpipe init` copy carries the earlier run it starts from). Seen: accuracy
    # 0.90 from 20 labels per digit; the majority class is 0.20.
    "image-transfer-learning": Entry(("training.progress=none",), "accuracy", majority_accuracy, True, 0.5),
}


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory) -> Path:
    """The init copy, 12 epochs: on TensorFlow the run tests/test_embedding.py shares
    (tests/_runs.py); on another backend, this module's own run of it."""
    import _runs

    if BACKEND == "tensorflow":
        return _runs.embedding()
    return init_and_run("autoencoder-embeddings", tmp_path_factory.mktemp("autoencoder-embeddings"),
                        "training.epochs=12")


@pytest.fixture(scope="module")
def template_run(request, tmp_path_factory):
    """name → its run directory: a module fixture's run, or a shortened run of the
    `dlpipe init` copy, each made once for the module."""
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            if BACKEND != "tensorflow":
                skip_if_refused(ROOT / "specs" / f"{name}.yaml")
            entry = TEMPLATES[name]
            if isinstance(entry.run, str):
                done[name] = request.getfixturevalue(entry.run)
            else:
                done[name] = init_and_run(name, tmp_path_factory.mktemp(name), *entry.run)
        return done[name]

    return get


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_beats_its_trivial_baseline(name, template_run):
    entry = TEMPLATES[name]
    run = template_run(name)
    value, baseline = metrics(run)["test"][entry.metric], entry.baseline(run)
    if entry.higher_is_better:
        assert value >= baseline + entry.margin, (entry.metric, value, baseline)
    else:
        assert value <= baseline - entry.margin, (entry.metric, value, baseline)
    if entry.target is not None:
        assert value >= entry.target, (entry.metric, value, entry.target)


NOT_SCORED_PER_EXPORT = {
    "autoencoder-embeddings": {"reconstruction_mse"},  # the export is the encoder: no decoder to reconstruct with
    "image-generation-gan": None,  # FID needs thousands of images through an extractor: none scored
    "image-generation-diffusion": None,
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_export_is_scored_on_the_test_split(name, template_run):
    """export/verification.json: every format's test metrics from its own runtime (equal to the
    trained model's, within what verification allows), bytes, gzip bytes and latency."""
    run = template_run(name)
    verification = json.loads((run / "export/verification.json").read_text())
    model_test = metrics(run)["test"]
    left_out = NOT_SCORED_PER_EXPORT.get(name, set())
    assert verification
    for key, entry in verification.items():
        assert entry["passed"], (key, entry)
        assert 0 < entry["gzip_bytes"] < entry["bytes"], (key, entry)
        exported = run / "export" / entry["path"]
        on_disk = exported.stat().st_size if exported.is_file() else \
            sum(p.stat().st_size for p in exported.rglob("*") if p.is_file())
        assert entry["bytes"] == on_disk
        calls = yaml.safe_load((run / "spec.yaml").read_text())["export"]["latency_calls"]
        if calls == 0:  # the diffusion template times none (an eager 25-step sampler call takes seconds)
            assert "latency" not in entry, (key, entry)
        else:
            latency = entry["latency"]
            assert latency["calls"] == calls == 50 and latency["batch_size"] == 1
            assert 0 < latency["median_ms"] <= latency["p90_ms"] < 5000, latency
        if left_out is None:
            assert "test_metrics" not in entry and "FID" in entry["test_metrics_note"]
            continue
        expected = {m: v for m, v in model_test.items() if m not in left_out}
        assert set(entry["test_metrics"]) == set(expected), key
        for metric, value in expected.items():
            assert entry["test_metrics"][metric] == pytest.approx(value, rel=1e-3, abs=1e-3), (key, metric)
        for metric in left_out:
            assert metric in entry["test_metrics_note"]
    card = (run / "export/model_card.md").read_text(encoding="utf-8")
    assert "Each export scored on the whole test split" in card and "latency p90" in card


# Every template's report, as a browser shows it ------------------------------------------

SCREENSHOTS = ROOT / "build" / "report-screenshots"
"""One full-page PNG per template's report.html, for a person to look at after the tests."""


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """One headless Chromium for the session (tests/browser.py), or a one-line skip."""
    from _system import require
    from browser import Chromium, find_chromium

    executable = require(find_chromium(), "chromium is not installed",
                         "apt-get install chromium (Debian/Ubuntu), or put a Chromium or Chrome on PATH")
    with Chromium(executable, tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_report_in_a_headless_browser(chromium, name, template_run):
    """The report of every template, loaded in Chromium: no console error, every image
    decodes and is shown, every number of metrics.json is visible in its row and column,
    and the page renders to a screenshot that is not blank."""
    from matplotlib.image import imread

    from report_page import assert_every_metric_shown

    run = template_run(name)
    html = run / "report.html"
    seen = chromium.look(html, SCREENSHOTS / f"{name}.png")
    assert seen["errors"] == []
    assert seen["headings"][:1] == ["Metrics"]
    assert len(seen["images"]) == len(re.findall(r"<img ", html.read_text(encoding="utf-8"))) >= 1
    for image in seen["images"]:
        assert image["decoded"] and image["shown"] and image["width"] > 0 and image["height"] > 0, image
    metrics_ = json.loads((run / "metrics.json").read_text())
    cells = {(c["split"], c["metric"]): c for c in seen["cells"]}
    assert assert_every_metric_shown(cells, metrics_) >= 1
    for (split, metric), cell in cells.items():
        assert cell["shown"] and (cell["row"], cell["column"]) == (metric, split), cell
        assert f"{metric}\t" in seen["text"] and cell["text"] in seen["text"]
    shot = imread(SCREENSHOTS / f"{name}.png")
    assert shot.shape[1] == 1280 and shot.shape[0] >= min(seen["page_height"], 8000)
    ink = (shot[..., :3] < 0.9).any(axis=-1).mean()  # anything darker than near-white
    assert 0.01 < ink < 0.9, ink
