"""Distributed training on one machine: MirroredStrategy over 2 logical CPU devices (Keras
`fit`), and MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1 under
TF_CONFIG (dlpipe's own loop). Both must match single-device accuracy within 0.02; the two
workers must end with identical weights, and only the chief writes a run directory.

The three distributed processes and the single-device reference run at the same time.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlpipe.runner import run_spec

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: distribute-test
task: classification
seed: 5
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
  split: {train: 0.6, validation: 0.1, test: 0.3}
prepare:
  normalization: {numerical: {type: zscore}}
model: {type: mlp, units: [32]}
training:
  epochs: 2
  batch_size: 32          # global: 16 per replica with 2 replicas
  optimizer: {type: adam, learning_rate: 0.01}
  progress: epoch
  tensorboard: false
evaluation: {metrics: [accuracy]}
export: {formats: []}
"""

# Splits the process's CPU into two logical devices before TensorFlow starts, then runs the CLI.
TWO_CPUS = """\
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dlpipe.cli import main
sys.argv[0] = "dlpipe"
main()
"""

TIMEOUT = 420


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def accuracy(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["test"]["accuracy"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("distribute")
    spec = base / "spec.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    processes: dict[str, subprocess.Popen] = {}
    logs = {name: base / f"{name}.log" for name in ("mirrored", "worker0", "worker1")}
    try:
        processes["mirrored"] = subprocess.Popen(
            [sys.executable, "-c", TWO_CPUS, "run", str(spec), "--out", str(base / "mirrored"),
             "--set", "training.strategy=mirrored"],
            stdout=subprocess.DEVNULL, stderr=logs["mirrored"].open("w"), env=env)
        workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            processes[f"worker{index}"] = subprocess.Popen(
                [sys.executable, "-m", "dlpipe.cli", "run", str(spec), "--out", str(base / f"worker{index}"),
                 "--set", "training.strategy=multi_worker"],
                stdout=subprocess.DEVNULL, stderr=logs[f"worker{index}"].open("w"),
                env={**env, "TF_CONFIG": json.dumps(config)})
        single = run_spec(spec, out=base / "single")
        for name, process in processes.items():
            try:
                process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not finish within {TIMEOUT} s: {logs[name].read_text()[-2000:]}")
            assert process.returncode == 0, f"{name}: {logs[name].read_text()[-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return base, single, {name: path.read_text() for name, path in logs.items()}


def test_mirrored_over_two_cpu_devices_matches_single_device(runs):
    base, single, _ = runs
    record = json.loads((base / "mirrored" / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["training"]["strategy"] == "mirrored" and record["training"]["replicas"] == 2
    assert abs(accuracy(base / "mirrored") - accuracy(single)) <= 0.02
    assert accuracy(single) > 0.9


def test_two_workers_train_identical_weights_and_match_single_worker(runs):
    base, single, logs = runs
    hashes = {}
    for name in ("worker0", "worker1"):
        found = re.findall(rf"\[dlpipe\] worker {name[-1]}: trained weights sha256:([0-9a-f]{{64}})", logs[name])
        assert len(found) == 1, logs[name][-2000:]
        hashes[name] = found[0]
    assert hashes["worker0"] == hashes["worker1"]

    chief = base / "worker0"
    record = json.loads((chief / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["training"] == {"precision": "float32", "jit_compile": False, "strategy": "multi_worker",
                                  "replicas": 2, "workers": 2}
    assert record["weights_sha256"] == hashes["worker0"]
    assert abs(accuracy(chief) - accuracy(single)) <= 0.02
    # The chief keeps the same run directory as a single-process run; the other worker writes none.
    assert {p.name for p in chief.iterdir()} >= {"run.json", "spec.yaml", "metrics.json", "history.csv",
                                                  "model.keras", "checkpoints"}
    assert not (base / "worker1").exists()
    assert "worker 1: training done; the chief writes the run directory" in logs["worker1"]
    history = (chief / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss" and len(history) == 3
