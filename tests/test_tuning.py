"""`dlpipe tune` end to end: real trials on the breast-cancer template (1–3 epochs).

Trials are real dlpipe runs; numbers are compared exactly (the runs are deterministic on
a CPU), the study is read back from its SQLite file with Optuna itself.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

optuna = pytest.importorskip("optuna")

from dlpipe.cli import main  # noqa: E402
from dlpipe.spec import load_spec  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "specs" / "tabular-classification.yaml"
FAST = ["--set", "training.epochs=1", "--set", "export.formats=[]", "--set", "evaluation.splits=[validation]"]
DLPIPE = [sys.executable, "-c", "from dlpipe.cli import main; main()"]


def tune(*args: str):
    return CliRunner().invoke(main, ["tune", *map(str, args)])


def load(study_dir: Path, name: str = "breast-cancer-mlp"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A trial of the template's own search space, then a rerun that adds one."""
    out = tmp_path_factory.mktemp("tune") / "study"
    first = tune(TEMPLATE, "--trials", 1, "--out", out, *FAST)
    assert first.exit_code == 0, first.output
    again = tune(TEMPLATE, "--trials", 1, "--out", out, *FAST)
    assert again.exit_code == 0, again.output
    return out, first, again


def test_study_runs_and_continues(study):
    out, first, again = study
    assert first.stdout.splitlines()[-1] == str(out)
    assert "[dlpipe] tune: 1 trial(s) in the study (1 complete)" in first.stderr
    assert "[dlpipe] tune: 2 trial(s) in the study (2 complete)" in again.stderr
    assert [t.number for t in load(out).trials] == [0, 1]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-0000", "trial-0001"]
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["trial-0000.log", "trial-0001.log"]
    # The console gets one line per trial event; the trial's own output went to its log.
    log = (out / "logs" / "trial-0000.log").read_text()
    assert "[dlpipe] train ..." in log and " - val_loss: " in log
    assert "[dlpipe] train ..." not in first.output and " - val_loss: " not in first.output


def test_each_trial_is_a_run_of_the_spec_with_its_parameters(study):
    out, _, _ = study
    for trial in load(out).trials:
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        record = json.loads((run_dir / "run.json").read_text())
        assert record["status"] == "completed"
        assert record["tuning"] == {"study": "breast-cancer-mlp", "trial": trial.number,
                                    "params": {k: json.loads(v) if k == "model.units" else v
                                               for k, v in trial.params.items()}}
        spec = load_spec(run_dir / "spec.yaml")
        assert spec.training.optimizer.learning_rate == trial.params["training.optimizer.learning_rate"]
        assert spec.model.dropout == trial.params["model.dropout"]
        assert spec.model.units == json.loads(trial.params["model.units"])
        assert spec.training.epochs == 1
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert trial.value == metrics["validation"]["log_loss"]
        # val_loss (binary cross-entropy) stands in for log_loss each epoch; after the
        # last epoch the two measure the same thing on the same examples.
        assert trial.intermediate_values[1] == pytest.approx(trial.value, rel=1e-4)


def test_parameters_stay_in_bounds_and_choices(study):
    out, _, _ = study
    trials = load(out).trials
    for trial in trials:
        assert 1e-4 <= trial.params["training.optimizer.learning_rate"] <= 1e-2
        assert 0.0 <= trial.params["model.dropout"] <= 0.5
        assert json.loads(trial.params["model.units"]) in ([32], [64, 64], [128, 64])
        assert trial.distributions["training.optimizer.learning_rate"].log is True
    assert len({t.params["training.optimizer.learning_rate"] for t in trials}) == 2


def test_outputs_agree_with_the_storage(study):
    out, _, _ = study
    trials = load(out).trials
    summary = json.loads((out / "study.json").read_text())
    best = min(trials, key=lambda t: t.value)
    assert summary["counts"] == {"total": 2, "complete": 2, "pruned": 0, "fail": 0, "running": 0, "waiting": 0}
    assert summary["objective"] == {"metric": "log_loss", "split": "validation", "direction": "minimize"}
    assert summary["best"]["number"] == best.number and summary["best"]["value"] == best.value
    assert summary["best"]["run_dir"] == f"trials/trial-{best.number:04d}"
    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["number"]), r["state"], float(r["value"])) for r in rows] == [
        (t.number, "complete", t.value) for t in trials]
    assert [json.loads(r["model.units"]) for r in rows] == [json.loads(t.params["model.units"]) for t in trials]
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page and "http" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    assert f"trial {best.number}: {best.value:.6g}" in page
    for trial in trials:
        assert f"trials/trial-{trial.number:04d}" in page


def test_best_yaml_reproduces_the_best_trial(study, tmp_path):
    out, _, _ = study
    best = load(out).best_trial
    trial_dir = out / "trials" / f"trial-{best.number:04d}"
    assert load_spec(out / "best.yaml") == load_spec(trial_dir / "spec.yaml")
    # A fresh process, as a user would run it.
    done = subprocess.run([*DLPIPE, "run", str(out / "best.yaml"), "--out", str(tmp_path / "again")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["validation"]["log_loss"] == best.value
    assert again == json.loads((trial_dir / "metrics.json").read_text())


def test_rerun_with_another_spec_is_refused(study):
    out, _, _ = study
    result = tune(TEMPLATE, "--trials", 1, "--out", out, *FAST, "--set", "training.epochs=2")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: study 'breast-cancer-mlp' in sqlite:///{(out / 'study.db').resolve()} was started from a "
        "different spec (differs at: training.epochs); trials of different specs are not comparable: "
        "choose another --study-name or --out")
    assert len(load(out).trials) == 2


GRID = ("tuning={objective: {metric: log_loss}, sampler: {type: grid}, "
        "pruner: {type: median, startup_trials: 1, warmup_epochs: 0}, "
        "search: {training.optimizer.learning_rate: {type: choice, values: [1.0e-6, 0.03]}, "
        "data.split.validation: {type: choice, values: [0.1, 0.3]}}}")


def test_grid_covers_exactly_the_grid_and_prunes(tmp_path):
    """Four grid points: two are impossible (0.7 + 0.3 + 0.2 ≠ 1) and are pruned with the
    reason before training; of the two that train, the one with learning rate 1e-6 runs
    after the other (the grid's order is seeded) and is pruned after its first epoch."""
    out = tmp_path / "grid"
    result = tune(TEMPLATE, "--trials", 10, "--out", out, *FAST, "--set", "training.epochs=3", "--set", GRID)
    assert result.exit_code == 0, result.output
    trials = load(out).trials
    points = sorted((t.params["training.optimizer.learning_rate"], t.params["data.split.validation"])
                    for t in trials)
    assert points == [(1e-6, 0.1), (1e-6, 0.3), (0.03, 0.1), (0.03, 0.3)]  # the study stopped itself
    by_point = {(t.params["training.optimizer.learning_rate"], t.params["data.split.validation"]): t
                for t in trials}
    for rate in (1e-6, 0.03):
        invalid = by_point[(rate, 0.3)]
        assert invalid.state == optuna.trial.TrialState.PRUNED
        assert invalid.user_attrs["reason"] == (
            "invalid spec: data.split: train + validation + test must be 1, got 0.7 + 0.3 + 0.2 = 1.2")
        assert not (out / "trials" / f"trial-{invalid.number:04d}").exists()
    good, slow = by_point[(0.03, 0.1)], by_point[(1e-6, 0.1)]
    assert good.number < slow.number
    assert good.state == optuna.trial.TrialState.COMPLETE and sorted(good.intermediate_values) == [1, 2, 3]
    assert slow.state == optuna.trial.TrialState.PRUNED and sorted(slow.intermediate_values) == [1]
    assert slow.intermediate_values[1] > good.intermediate_values[1]
    reason = f"pruned after epoch 1 of 3: val_loss {slow.intermediate_values[1]:.4g}"
    assert slow.user_attrs["reason"] == reason
    record = json.loads((out / "trials" / f"trial-{slow.number:04d}" / "run.json").read_text())
    assert (record["status"], record["error"]) == ("pruned", reason)
    assert record["stages"]["train"]["status"] == "failed" and "evaluate" not in record["stages"]
    assert yaml.safe_load((out / "best.yaml").read_text())["training"]["optimizer"]["learning_rate"] == 0.03

    rerun = tune(TEMPLATE, "--out", out, *FAST, "--set", "training.epochs=3", "--set", GRID)
    assert rerun.exit_code == 0, rerun.output
    assert "every point of the grid (4) has been tried; nothing to run" in rerun.stderr
    assert len(load(out).trials) == 4


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_storage(request, tmp_path):
    """(--storage arguments, storage URL, study name): the default SQLite file in the study
    directory, or a PostgreSQL database named by $DLPIPE_TEST_POSTGRESQL (in CI, .ci/run
    starts a server on 127.0.0.1), with a study name of its own, deleted afterwards."""
    if request.param == "sqlite":
        yield [], f"sqlite:///{tmp_path / 'shared' / 'study.db'}", "breast-cancer-mlp"
        return
    from _system import require

    url = require(os.environ.get("DLPIPE_TEST_POSTGRESQL"), "DLPIPE_TEST_POSTGRESQL is not set",
                  "export DLPIPE_TEST_POSTGRESQL=postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
                  "(a database this test may create tables in)")
    pytest.importorskip("psycopg", reason="psycopg is not installed; pip install 'dlpipe[postgres]'")
    name = f"dlpipe-test-{uuid.uuid4().hex[:12]}"
    yield ["--storage", url, "--study-name", name], url, name
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=url)


def test_two_workers_share_one_study(shared_storage, tmp_path):
    """Two `dlpipe tune` processes started together on one study (a spec with no tuning
    section: the default space), two trials each: four trials numbered 0-3, each run by one
    worker, and best.yaml is the best of all four."""
    storage_args, url, name = shared_storage
    text = TEMPLATE.read_text().split("\n# Hyperparameter search")[0]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert load_spec(spec).tuning is None
    out = tmp_path / "shared"
    command = [*DLPIPE, "tune", str(spec), "--trials", "2", "--out", str(out), *storage_args, *FAST]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr
        assert stdout.strip() == str(out)
        assert "the spec has no tuning section; searching the default space (training.optimizer" \
               ".learning_rate, model.dropout, training.batch_size)" in stderr
        assert f"[dlpipe] tune: study {name!r} in {url.split('://')[0]}://" in stderr
        # stderr is a pipe, not a terminal: plain lines, no carriage return or escape.
        assert re.search(r"^\[dlpipe\] tune: 2 of 2 trial\(s\) run by this process \(\d+\.\d s\)$", stderr, re.M)
        assert not re.search(r"[\r\x1b]", stderr)
    trials = optuna.load_study(study_name=name, storage=url).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # Each worker ran two of them.
    ran = [sorted(int(m) for m in re.findall(r"^\[dlpipe\] trial (\d+): validation accuracy ", stderr, re.M))
           for _, stderr in outputs]
    assert sorted(len(r) for r in ran) == [2, 2] and sorted(ran[0] + ran[1]) == [0, 1, 2, 3]
    for trial in trials:
        record = json.loads((out / "trials" / f"trial-{trial.number:04d}" / "run.json").read_text())
        assert record["status"] == "completed" and record["tuning"]["trial"] == trial.number
    assert len({t.params["training.optimizer.learning_rate"] for t in trials}) == 4
    summary = json.loads((out / "study.json").read_text())
    assert summary["counts"]["total"] == 4
    # best.yaml: the resolved spec of a trial with the highest validation accuracy of all four.
    best_number = int(re.search(r"^# Trial (\d+), the best of its study", (out / "best.yaml").read_text(), re.M)[1])
    assert trials[best_number].value == max(t.value for t in trials)
    assert load_spec(out / "best.yaml") == load_spec(out / "trials" / f"trial-{best_number:04d}" / "spec.yaml")
    assert summary["best"]["number"] == best_number


def test_unreachable_study_storage_is_one_line_before_any_trial(tmp_path):
    pytest.importorskip("psycopg", reason="psycopg is not installed; pip install 'dlpipe[postgres]'")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://someone:secret@127.0.0.1:{port}/nowhere"
    result = tune(TEMPLATE, "--trials", 1, "--out", tmp_path / "study", "--storage", url, *FAST)
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: storage postgresql://someone:***@127.0.0.1:{port}/nowhere: ")
    assert "secret" not in result.output and "Connection refused" in lines[0]
    assert not (tmp_path / "study" / "trials").exists()
