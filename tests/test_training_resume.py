"""Checkpoints and exact resume: a run killed with SIGKILL after epoch 2 of 4 and resumed
with `--resume` ends with the metrics.json (and history.csv, and weights) of a run that was
never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dlpipe.errors import DlpipeError
from dlpipe.rundir import RunDir
from dlpipe.runner import run_spec

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: resume-test
task: classification
seed: 11
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
  split: {train: 0.7, validation: 0.15, test: 0.15}
prepare:
  normalization: {numerical: {type: zscore}}
model: {type: mlp, units: [16], dropout: 0.2}   # dropout: the RNG state must resume too
training:
  epochs: 4
  batch_size: 8                                 # 50 steps an epoch: time to stop after epoch 2
  optimizer: {type: adam, learning_rate: 0.01}
  schedule: {type: cosine, warmup_epochs: 0.5}  # the rate changes every step
  early_stopping: {monitor: val_loss, patience: 10, restore_best_weights: true}
  progress: epoch
export: {formats: []}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "spec.yaml"
    path.write_text(SPEC)
    return path


def _epoch(path: Path) -> int:
    try:
        return json.loads(path.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def _kill_after_epoch_2(process: subprocess.Popen, summary: Path, outcome: dict) -> None:
    deadline = time.monotonic() + 240
    while _epoch(summary) < 2:
        if process.poll() is not None:
            outcome["error"] = "the run ended before epoch 2"
            return
        if time.monotonic() > deadline:
            outcome["error"] = "no checkpoint of epoch 2 within 240 s"
            return
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def runs(spec) -> tuple[Path, Path]:
    """(uninterrupted, killed): the same spec run to the end in this process, and run by
    `dlpipe run` in a subprocess killed with SIGKILL as soon as checkpoints/last.json shows
    epoch 2. Both at once: a watcher thread polls and kills while this one trains."""
    import threading

    out = spec.parent / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "dlpipe.cli", "run", str(spec), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    outcome: dict = {}
    watcher = threading.Thread(target=_kill_after_epoch_2, args=(process, out / "checkpoints" / "last.json", outcome))
    watcher.start()
    try:
        uninterrupted = run_spec(spec, out=spec.parent / "uninterrupted")
        watcher.join(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read().decode()
        process.stderr.close()
    assert "error" not in outcome, f"{outcome['error']}: {stderr[-2000:]}"
    assert process.returncode == -signal.SIGKILL
    return uninterrupted, out


@pytest.fixture(scope="module")
def uninterrupted(runs) -> Path:
    return runs[0]


@pytest.fixture(scope="module")
def killed(runs) -> Path:
    return runs[1]


def test_kill_after_epoch_2_then_resume_matches_the_uninterrupted_run(spec, uninterrupted, killed):
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "running"  # SIGKILL: nothing could record the end
    assert _epoch(killed / "checkpoints" / "last.json") == 2
    assert not (killed / "metrics.json").exists()
    assert (killed / ".lock").exists() and RunDir.lock_holder(killed) is None  # freed as the process died

    assert run_spec(spec, out=killed, resume=True) == killed

    assert (killed / "metrics.json").read_bytes() == (uninterrupted / "metrics.json").read_bytes()
    assert (killed / "history.csv").read_bytes() == (uninterrupted / "history.csv").read_bytes()
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "completed" and record["resumed_from_epoch"] == 2
    assert [r["previous_status"] for r in record["resumed"]] == ["running"]
    assert record["weights_sha256"] == json.loads((uninterrupted / "run.json").read_text())["weights_sha256"]
    assert RunDir.lock_holder(killed) is None


def test_checkpoints_hold_last_and_best(uninterrupted):
    from dlpipe.training import checkpoints

    last = checkpoints.read(uninterrupted / "checkpoints" / "last.npz")
    best = checkpoints.read(uninterrupted / "checkpoints" / "best.npz")
    history = last.record["history"]
    assert last.finished and last.epoch == 4 and len(history["loss"]) == 4
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    assert best.epoch == best_epoch and best.record["best"] == {
        "monitor": "val_loss", "value": history["val_loss"][best_epoch - 1], "epoch": best_epoch}
    assert len(last.optimizer) > 2  # iterations, learning rate, moments
    assert json.loads((uninterrupted / "checkpoints" / "last.json").read_text())["epoch"] == 4


def test_resuming_a_completed_run_or_with_another_spec_is_refused(spec, uninterrupted, tmp_path):
    with pytest.raises(DlpipeError, match=r"the run already completed; nothing to resume$"):
        run_spec(spec, out=uninterrupted, resume=True)

    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "spec.yaml").write_text((uninterrupted / "spec.yaml").read_text())
    before = json.dumps({"status": "failed"})
    (interrupted / "run.json").write_text(before)
    with pytest.raises(DlpipeError) as caught:
        run_spec(spec, out=interrupted, resume=True, overrides=["training.epochs=5"])
    assert str(caught.value) == (f"{interrupted}: cannot resume with a different spec: training.epochs was 4, "
                                 "is now 5; use the run's spec.yaml, or start a new run")
    assert (interrupted / "run.json").read_text() == before
    assert RunDir.lock_holder(interrupted) is None

    with pytest.raises(DlpipeError, match=r"^--resume needs --out DIR"):
        run_spec(spec, resume=True)


def test_tensorboard_logs_the_history(uninterrupted):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(str(uninterrupted / "logs" / "train"))
    train.Reload()
    from tensorboard.util.tensor_util import make_ndarray

    logged = [float(make_ndarray(event.tensor_proto)) for event in train.Tensors("epoch_learning_rate")]
    header, *rows = (uninterrupted / "history.csv").read_text().splitlines()
    column = header.split(",").index("learning_rate")
    np.testing.assert_allclose(logged, [float(row.split(",")[column]) for row in rows], rtol=1e-6)
    validation = EventAccumulator(str(uninterrupted / "logs" / "validation"))
    validation.Reload()
    assert len(validation.Tensors("epoch_loss")) == 4
