"""The evaluation stage, report.html and `dlpipe evaluate` on real runs of every template
(2 epochs, or the shortened run tests/test_run_templates.py shares); the FID feature
extractors on real saved models."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dlpipe import tasks
from dlpipe.cli import main
from report_page import Page, assert_every_baseline_shown, assert_every_metric_shown

ROOT = Path(__file__).resolve().parent.parent
# A GAN's run directory has no validation metrics or confusion matrices: tests/test_adversarial.py
# checks it.
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml")
               if yaml.safe_load(p.read_text(encoding="utf-8")).get("task") != "generation")
EPOCHS = "training.epochs=2"
# What two epochs need beyond the epoch count: schedules placed within them.
SHORTENED = {"compressed-image-classification": ["compression.pruning.schedule={begin_epoch: 1, end_epoch: 2}",
                                                 "compression.quantization_aware.start_epoch=1"],
             "image-transfer-learning": ["model.fine_tune.freeze_epochs=1"]}
RUNS = [spec.stem for spec in SPECS]
# `dlpipe evaluate` re-evaluates every run here (each task's `reevaluate` hook); a GAN's is
# refused (tests/test_adversarial.py).
REEVALUATED = RUNS
CLASSIFIERS = [spec.stem for spec in SPECS if yaml.safe_load(spec.read_text())["task"] == "classification"]


@pytest.fixture(scope="module")
def run_of(tmp_path_factory):
    """name → the run directory of that template, trained once for the whole module."""
    from dlpipe.runner import run_spec

    done: dict[str, Path] = {}
    base = tmp_path_factory.mktemp("runs")

    def get(name: str) -> Path:
        import _runs

        if name in _runs.SHORTENED:  # the run tests/test_run_templates.py checks too, made once
            return _runs.template(name)
        if name not in done:
            done[name] = run_spec(ROOT / "specs" / f"{name}.yaml", overrides=[EPOCHS, *SHORTENED.get(name, [])],
                                  out=base / name)
        return done[name]

    return get


def scored_splits(run: Path) -> list[str]:
    """validation and test, those that hold examples (a template may keep no validation split)."""
    sizes = json.loads((run / "data.json").read_text())["split_sizes"]
    return [split for split in ("validation", "test") if sizes.get(split)]


def spec_task(run: Path) -> str:
    return yaml.safe_load((run / "spec.yaml").read_text())["task"]


EXPECTED_PLOTS = {
    "breast-cancer-mlp": {"learning_curves", "confusion_matrix", "roc_curve", "pr_curve"},
    "digits-cnn": {"learning_curves", "confusion_matrix", "misclassified"},
    "diabetes-mlp": {"learning_curves", "residuals"},
    "digits-autoencoder": {"learning_curves", "embeddings"},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNS)
def test_report_shows_every_metric_and_is_self_contained(run_of, name):
    run = run_of(name)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["stages"]["report"]["status"] == "completed"
    metrics = json.loads((run / "metrics.json").read_text())
    # Every task that honours `evaluation.baselines` (on by default) is compared with them.
    supervised = "evaluation.baselines" in tasks.get(spec_task(run)).honours
    assert set(metrics) == set(scored_splits(run)) | ({"baselines"} if supervised else set())
    html = (run / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    assert assert_every_metric_shown(page.cells, metrics) >= 2 * len(scored_splits(run))
    if supervised:
        assert assert_every_baseline_shown(page.baseline_cells, metrics["baselines"]) >= 2 * 2 * len(scored_splits(run))
    assert page.headings[:2 + supervised] == ["Metrics", *(["Baselines"] if supervised else []), "Plots"]
    assert {"Spec", "Data", "Model", "Export verification", "Run"} <= set(page.headings)
    assert not page.external and "script" not in page.tags and "link" not in page.tags
    spec_name = yaml.safe_load((run / "spec.yaml").read_text())["name"]
    plots = {p.stem for p in (run / "plots").glob("*.png")}
    assert plots == EXPECTED_PLOTS.get(spec_name, plots)
    assert len(page.images) == len(plots)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # The export verification and the model's parameter count are on the page.
    verification = json.loads((run / "export" / "verification.json").read_text())
    for fmt in verification:
        assert f"<td>{fmt}</td>" in html
    assert f"{record['parameters']:,} parameters" in html
    # The Run table: every earlier stage completed; the report stage is the page being written.
    for stage in ("data", "train", "evaluate", "export"):
        assert f"<tr><td>{stage}</td><td>completed</td>" in html
    assert "<tr><td>report</td><td>this page</td>" in html


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classification_artifacts_agree_with_metrics(run_of, name):
    run = run_of(name)
    metrics = json.loads((run / "metrics.json").read_text())
    sizes = json.loads((run / "data.json").read_text())["split_sizes"]
    for split in scored_splits(run):
        matrix = json.loads((run / "evaluation" / split / "confusion_matrix.json").read_text())
        counts = np.array(matrix["counts"])
        assert counts.sum() == sizes[split]
        assert np.trace(counts) / counts.sum() == pytest.approx(metrics[split]["accuracy"], abs=1e-12)
        np.testing.assert_allclose(np.array(matrix["normalized"]).sum(axis=1)[counts.sum(axis=1) > 0], 1.0)
        per_class = json.loads((run / "evaluation" / split / "per_class.json").read_text())
        assert [c["support"] for c in per_class] == counts.sum(axis=1).tolist()
        if "f1_macro" in metrics[split]:
            assert np.mean([c["f1"] for c in per_class]) == pytest.approx(metrics[split]["f1_macro"], abs=1e-12)


# dlpipe evaluate ---------------------------------------------------------------------------


def evaluate_cli(*args: str):
    """(result, stdout lines): metrics as `split<TAB>name<TAB>value`, then the folder."""
    result = CliRunner().invoke(main, ["evaluate", *args])
    return result, result.stdout.strip().splitlines()


def one_line_error(result) -> str:
    assert result.exit_code == 1 and "Traceback" not in result.output
    return result.stderr.strip().splitlines()[-1]


def test_evaluate_needs_a_trained_run(tmp_path):
    """Checked before anything heavy is imported: one line, exit code 1."""
    result, _ = evaluate_cli(str(tmp_path / "nowhere"))
    assert one_line_error(result) == f"error: {tmp_path / 'nowhere'}: no such run directory"
    (tmp_path / "spec.yaml").write_text("name: x\n")
    (tmp_path / "run.json").write_text('{"status": "failed"}')
    result, _ = evaluate_cli(str(tmp_path))
    assert one_line_error(result) == f"error: {tmp_path}: not a trained dlpipe run: no model.keras (run status: failed)"


@pytest.mark.slow
@pytest.mark.parametrize("name", REEVALUATED)
def test_evaluate_reproduces_the_run_without_touching_it(run_of, name):
    run = run_of(name)
    before = {p: p.read_bytes() for p in (run / "metrics.json", run / "report.html")}
    result, lines = evaluate_cli(str(run))
    assert result.exit_code == 0, result.output
    folder = Path(lines[-1])
    assert folder.parent == run / "evaluations"
    again = json.loads((folder / "metrics.json").read_text())
    # The same model, data and split: the same numbers (the model's; a multi-output run's
    # evaluation also writes its baselines again).
    during_run = json.loads((run / "metrics.json").read_text())
    during_run.pop("baselines", None)
    model_again = {split: values for split, values in again.items() if split != "baselines"}
    assert model_again == during_run
    printed = {(s, n): float(v) for s, n, v in (line.split("\t") for line in lines[:-1])}
    assert printed == {(s, n): pytest.approx(v, rel=1e-5, nan_ok=True)
                       for s, vs in model_again.items() for n, v in vs.items()}
    assert {p: p.read_bytes() for p in before} == before
    assert_every_metric_shown(Page((folder / "report.html").read_text()).cells, again)
    assert json.loads((folder / "evaluation.json").read_text())["splits"] == scored_splits(run)


@pytest.mark.slow
def test_evaluate_on_new_labeled_csv(run_of, tmp_path):
    """The run's test rows written as a CSV, labels as indices or as class names, give the
    run's test metrics exactly; a missing column or an unknown label is a one-line error."""
    from sklearn.datasets import load_breast_cancer

    from dlpipe.data.prepare import prepare
    from dlpipe.spec import load_spec

    run = run_of("tabular-classification")
    rows = prepare(load_spec(run / "spec.yaml"), run, None).splits["test"].rows
    frame = load_breast_cancer(as_frame=True).frame
    test_rows = frame.iloc[rows].sample(frac=1.0, random_state=0)  # order does not matter
    expected = json.loads((run / "metrics.json").read_text())["test"]
    for labels in ("indices", "names"):
        table = test_rows if labels == "indices" else test_rows.assign(
            target=test_rows["target"].map({0: "malignant", 1: "benign"}))
        table.to_csv(tmp_path / f"{labels}.csv", index=False)
        result, lines = evaluate_cli(str(run), "--data", str(tmp_path / f"{labels}.csv"))
        assert result.exit_code == 0, result.output
        got = json.loads((Path(lines[-1]) / "metrics.json").read_text())
        assert set(got) == {"data"}
        assert got["data"] == pytest.approx(expected, abs=1e-9)
        assert (Path(lines[-1]) / "report.html").is_file()

    test_rows.drop(columns=["mean radius"]).to_csv(tmp_path / "missing.csv", index=False)
    result, _ = evaluate_cli(str(run), "--data", str(tmp_path / "missing.csv"))
    assert one_line_error(result) == (f"error: {tmp_path / 'missing.csv'}: no column 'mean radius'; "
                                      "did you mean 'worst radius'?")
    test_rows.assign(target=["maybe"] + ["benign"] * (len(test_rows) - 1)).to_csv(tmp_path / "label.csv", index=False)
    result, _ = evaluate_cli(str(run), "--data", str(tmp_path / "label.csv"))
    assert one_line_error(result) == (f"error: {tmp_path / 'label.csv'}: row 2, column 'target': label 'maybe' "
                                     "is not in the run's classes (malignant, benign, 0, 1)")


# Feature extractors for FID ------------------------------------------------------------------


@pytest.mark.slow
def test_layer_extractor_of_a_saved_model(tmp_path):
    """Features = a named layer's output, checked against numpy on the layer's weights;
    an unknown layer is named with a did-you-mean."""
    import keras

    from dlpipe.errors import DataError
    from dlpipe.metrics.generative import fid, layer_extractor

    inputs = keras.Input(shape=(6, 6, 1), name="image")
    flat = keras.layers.Flatten(name="flat")(inputs)
    hidden = keras.layers.Dense(5, activation="relu", name="features")(flat)
    outputs = keras.layers.Dense(3, activation="softmax", name="output")(hidden)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")

    images = np.random.default_rng(0).uniform(0, 1, (40, 6, 6, 1)).astype(np.float32)
    extract = layer_extractor(tmp_path, "features")  # a run directory holding model.keras
    kernel, bias = model.get_layer("features").get_weights()
    expected = np.maximum(images.reshape(40, -1) @ kernel + bias, 0)
    np.testing.assert_allclose(extract(images), expected, atol=1e-5)
    assert fid(extract(images), extract(images)) == pytest.approx(0.0, abs=1e-9)
    assert fid(extract(images), extract(images + 3.0)) > 1.0
    with pytest.raises(DataError, match=r"model.keras: no layer 'feature'; did you mean 'features'\?"):
        layer_extractor(tmp_path / "model.keras", "feature")


def test_metrics_json_holds_no_nan_or_infinity(tmp_path):
    import json

    from dlpipe.metrics.evaluate import json_ready
    from dlpipe.rundir import atomic_write_json

    metrics = {"test": {"accuracy": 0.5, "roc_auc": float("nan"), "log_loss": float("inf")}}
    atomic_write_json(tmp_path / "metrics.json", json_ready(metrics))

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    written = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert written == {"test": {"accuracy": 0.5, "roc_auc": None, "log_loss": None}}
