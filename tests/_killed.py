"""What the kill -9 tests share: a `dlpipe run` in a fresh process that sends itself SIGKILL
at a kill point (DLPIPE_TEST_KILL_AT, dlpipe/testhooks.py), its resume in a fresh process,
a run's history.csv by column, the 540 digits the tiny generation runs train on, and the
digits CNN the compression tests start from. Not a test module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

DIGITS_CNN = """\
data:
  source: {type: builtin, name: digits}
  features: [{name: image, type: image}]
  target: {name: label}
  split: {train: 0.8, validation: 0.1, test: 0.1, stratify: true}
prepare:
  normalization: {image: {type: rescale, scale: 0.0625}}
model:
  type: cnn
  blocks: [{filters: 8, convs: 1}]
"""
"""The data, prepare and model lines of a one-block CNN on scikit-learn's 8×8 digits (a spec
appends its own model keys, training and export)."""


def digits_npz(folder: Path, count: int = 540) -> Path:
    """folder/digits.npz: the first `count` of scikit-learn's 8×8 digits (image 0..16, label)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = folder / "digits.npz"
    np.savez(path, image=digits.images[:count].astype(np.float32), label=digits.target[:count])
    return path


def history(run: Path) -> dict[str, list[str]]:
    """history.csv of a run: column name → its values, one an epoch (as written)."""
    header, *rows = (run / "history.csv").read_text().splitlines()
    columns = header.split(",")
    return {name: [row.split(",")[i] for row in rows] for i, name in enumerate(columns)}


def _dlpipe_run(spec: Path, out: Path, *args: str, kill_at: str | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("DLPIPE_TEST_KILL_AT", None)
    if kill_at is not None:
        environment["DLPIPE_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "dlpipe.cli", "run", str(spec), "--out", str(out), *args],
                          capture_output=True, text=True, env=environment, timeout=timeout)


def run_killed(spec: Path, out: Path, kill_at: str, timeout: float = 600) -> None:
    """`dlpipe run SPEC --out OUT` in a fresh process that SIGKILLs itself at the kill point
    `kill_at` (e.g. "train:20": the 20th batch end or atomic write of the train stage); it
    must die by that signal."""
    result = _dlpipe_run(spec, out, kill_at=kill_at, timeout=timeout)
    assert result.returncode == -9, result.stderr[-2000:]


def resume_in_a_fresh_process(spec: Path, out: Path, timeout: float = 600) -> None:
    """`dlpipe run SPEC --out OUT --resume` in a fresh process, as a user does after a crash."""
    result = _dlpipe_run(spec, out, "--resume", timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]


def assert_same_bytes(first: Path, second: Path, *names: str | Path) -> None:
    """Each named file of run `first` is byte for byte the one of run `second`."""
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
