"""Tracking on MLflow: a real `mlflow server` on 127.0.0.1 (SQLite backend) is logged to by
`dlpipe run` and `dlpipe tune`, and everything is read back through MLflow's client."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from _server import free_port
from dlpipe.cli import main
from dlpipe.tracking import _shown, flatten, numbers

ROOT = Path(__file__).resolve().parent.parent
TABULAR = ROOT / "specs" / "tabular-classification.yaml"


def test_the_spec_becomes_dotted_params_and_passwords_are_never_shown():
    assert flatten({"training": {"epochs": 3, "optimizer": {"type": "adam"}}, "model": {"units": [64, 64]},
                    "description": "x", "tuning": None}) == {
        "training.epochs": "3", "training.optimizer.type": "adam", "model.units": "[64, 64]", "description": "x",
        "tuning": "null"}
    long = flatten({"features": ["f" * 50] * 200})["features"]
    assert len(long) == 6000 and long.endswith("… (cut; see spec.yaml)")
    assert _shown("https://me:secret@mlflow.example.com/x") == "https://me:***@mlflow.example.com/x"
    assert _shown("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert numbers({"test": {"accuracy": 0.5, "auc": None, "n": float("nan")},
                    "baselines": {"test": {"majority_class": {"accuracy": 0.25}}}}) == {
        "test/accuracy": 0.5, "baselines/test/majority_class/accuracy": 0.25}


UNREACHABLE = """\
import sys
from dlpipe.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print("heavy:", sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "mlflow")), file=sys.stderr)
"""


def test_an_unreachable_tracker_fails_the_run_before_anything_is_read_or_trained(tmp_path):
    port = free_port()  # nothing listens there
    done = subprocess.run([sys.executable, "-c", UNREACHABLE, "run", str(TABULAR), "--out", str(tmp_path / "run"),
                           "--set", f"tracking.mlflow.tracking_uri=http://127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert lines[0] == (f"error: tracking.mlflow.tracking_uri: cannot reach the MLflow server at http://127.0.0.1:{port} "
                        "(Connection refused); start it, or remove tracking from the spec; nothing was trained")
    assert lines[1:] == ["heavy: []"]  # neither TensorFlow nor MLflow was imported
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and record["stages"] == {} and "cannot reach" in record["error"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "run.json", "spec.yaml"]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` with a SQLite backend and served artifacts, on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # migrations of a fresh database: ~40 s on a busy 2-core machine
    try:
        while True:
            assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start within 240 s"
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def history_of(root: Path) -> list[dict]:
    with open(root / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_run_is_logged_to_mlflow_and_read_back(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(TABULAR), "--out", str(out), "--set", "training.epochs=3",
                                       "--set", f"tracking.mlflow={{tracking_uri: '{mlflow_server}', "
                                                "experiment: dlpipe-test, run_name: three-epochs}"])
    assert result.exit_code == 0, result.output
    assert "[dlpipe] tracking: logged to MLflow as http://127.0.0.1:" in result.stderr

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("dlpipe-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "three-epochs" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["training.epochs"] == "3" and params["training.optimizer.learning_rate"] == "0.001"
    assert params["model.units"] == "[64, 64]" and params["data.source.name"] == "breast_cancer"
    assert not any(key.startswith("tracking") for key in params)

    epochs = history_of(out)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"):
        logged = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in logged] == [1, 2, 3]
        assert [m.value for m in logged] == pytest.approx([float(row[key]) for row in epochs], rel=1e-12)
    metrics = numbers(json.loads((out / "metrics.json").read_text()))
    assert "test/accuracy" in metrics and "baselines/test/majority_class/accuracy" in metrics
    assert {key: run.data.metrics[key] for key in metrics} == pytest.approx(metrics, rel=1e-12)

    record = json.loads((out / "run.json").read_text())
    tags = run.data.tags
    assert tags["dlpipe.data_fingerprint"] == record["data_fingerprint"]
    assert tags["dlpipe.status"] == "completed" and tags["dlpipe.task"] == "classification"
    assert tags["tensorflow.version"] == record["versions"]["tensorflow"]

    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "history.csv", "metrics.json", "spec.yaml", "run.json", "export", "model"} <= listed
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {"model/model.keras"}
    card = client.download_artifacts(run.info.run_id, "export/model_card.json", str(tmp_path / "down"))
    assert Path(card).read_bytes() == (out / "export" / "model_card.json").read_bytes()
    model = client.download_artifacts(run.info.run_id, "model/model.keras", str(tmp_path / "down"))
    assert Path(model).read_bytes() == (out / "model.keras").read_bytes()


@pytest.mark.slow
def test_tune_logs_each_trial_as_a_child_run(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    pytest.importorskip("optuna")
    result = CliRunner().invoke(main, [
        "tune", str(TABULAR), "--trials", "2", "--out", str(tmp_path / "study"), "--set", "training.epochs=2",
        "--set", "tuning.pruner={type: none}",
        "--set", f"tracking.mlflow={{tracking_uri: '{mlflow_server}', experiment: dlpipe-tune-test}}"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("dlpipe-tune-test")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                      key=lambda r: r.info.run_name)
    assert [r.info.run_name for r in children] == ["trial-0000", "trial-0001"]
    assert parent.info.run_name == "study" and parent.data.tags["dlpipe.status"] == "completed"
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert parent.data.metrics["best/validation_log_loss"] == pytest.approx(study["best"]["value"], rel=1e-12)
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["training.epochs"] == "2"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val_loss")] == [1, 2]
    learning_rates = {child.data.params["training.optimizer.learning_rate"] for child in children}
    assert len(learning_rates) == 2  # the trials' own values, not the spec's
    assert "best.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
