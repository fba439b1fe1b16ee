"""Run-directory writes: atomic, nothing half-written left behind, ordinary permissions; the
lock: one owner, held for the run's life, every refusal one line."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dlpipe.errors import DlpipeError
from dlpipe.rundir import RunDir, atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

sys.path.insert(0, str(Path(__file__).parent))
import lock_stress  # noqa: E402  (the harness, also run alone for the long check)


def test_atomic_write_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    # Fails inside the write, after the temporary file exists (text where bytes belong).
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "m.json", "not bytes")
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_atomic_path_renames_only_on_success(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "model.keras") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed half-way")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(tmp_path / "model.keras") as tmp:
        tmp.write_text("complete")
    assert (tmp_path / "model.keras").read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def held(root: Path, pid: int) -> str:
    return f"{root}: another dlpipe process (pid {pid}) is using this run directory"


def test_the_lock_is_held_until_unlock_and_the_file_stays(tmp_path):
    root = tmp_path / "run"
    owner = RunDir.create(root)
    assert (root / ".lock").read_text() == f"{os.getpid()}\n"
    assert RunDir.lock_holder(root) == os.getpid()
    # flock conflicts between two opens of the file, even in one process.
    for attempt in (lambda: RunDir.create(root), lambda: RunDir.reopen(root, rerun=True)):
        with pytest.raises(DlpipeError) as info:
            attempt()
        assert str(info.value) == held(root, os.getpid())
    owner.unlock()
    owner.unlock()  # twice is harmless
    assert (root / ".lock").exists() and RunDir.lock_holder(root) is None
    again = RunDir.create(root)  # a folder holding only the lock file is empty
    again.unlock()


@pytest.mark.parametrize("left", ["12345678\n", "", "not a pid"])
def test_a_lock_file_a_killed_process_left_is_taken(tmp_path, left):
    root = tmp_path / "run"
    root.mkdir()
    (root / ".lock").write_text(left)  # the pid of a gone process, or none written yet
    run_dir = RunDir.create(root)
    assert (root / ".lock").read_text() == f"{os.getpid()}\n"
    run_dir.unlock()


def test_another_process_holds_the_lock_until_it_dies(tmp_path):
    """A real second process: its lock refuses this one with its pid, in one line (also
    from `dlpipe run`), and frees itself at kill -9."""
    from click.testing import CliRunner

    from dlpipe.cli import main

    root = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from dlpipe.rundir import RunDir
run_dir = RunDir.create({str(root)!r})
run_dir.start(seed=0, command=[], spec_file="spec.yaml")
print("locked", flush=True)
time.sleep(120)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(DlpipeError) as info:
            RunDir.reopen(root, rerun=True)
        assert str(info.value) == held(root, holder.pid)
        spec = tmp_path / "spec.yaml"
        spec.write_text("name: x\ntask: classification\ndata:\n  source: {type: builtin, name: iris}\n"
                        "  target: {name: target}\nmodel: {type: mlp, units: [4]}\n")
        result = CliRunner().invoke(main, ["run", str(spec), "--out", str(root)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip().splitlines() == [f"error: {held(root, holder.pid)}"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert RunDir.lock_holder(root) is None  # the kernel released it with the process
    resumed = RunDir.reopen(root)  # run.json says running: a resume
    assert resumed.record["status"] == "running"
    resumed.unlock()


@pytest.mark.slow  # ~5 s: four pools of processes
@pytest.mark.parametrize("case", lock_stress.CASES)
def test_processes_released_together_give_exactly_one_owner(tmp_path, case):
    """Four processes released by a barrier at RunDir.create / reopen, on fresh folders and
    on lock files left by killed processes (tests/lock_stress.py; 500 trials: run it alone)."""
    trials = int(os.environ.get("DLPIPE_LOCK_TRIALS", "60"))
    result = lock_stress.stress(tmp_path, case, trials)
    assert result["problems"] == []
    assert result["owners"] == {1: trials}
