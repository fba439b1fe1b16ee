"""The `dlpipe` executable ends a completed `dlpipe run` with os._exit after Python's exit
duties (dlpipe/cli.py: _end_finished_run): non-daemon threads joined, atexit handlers run,
stdout flushed. A whole run through it: tests/test_api.py (`python -m dlpipe run`)."""

from __future__ import annotations

import subprocess
import sys

EXECUTABLE = """
import atexit, sys, threading, time
from pathlib import Path
folder = Path(sys.argv[1])
atexit.register(lambda: (folder / "atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    (folder / "thread").write_text("ran")
threading.Thread(target=late).start()  # not a daemon: the exit waits for it
class TornDown:
    def __del__(self):  # runs when the interpreter frees the objects at its exit
        (folder / "freed").write_text("ran")
kept = TornDown()
from dlpipe import cli
cli._RUN_FINISHED = sys.argv[2] == "finished"  # as `dlpipe run` sets it when its run completed
sys.argv = ["dlpipe", "templates"]
cli.run()
"""


def _executable(tmp_path, state: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", EXECUTABLE, str(tmp_path), state], capture_output=True, text=True,
                          timeout=120)


def test_a_finished_run_ends_after_threads_and_atexit_handlers(tmp_path):
    done = _executable(tmp_path, "finished")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tabular-classification" in done.stdout  # printed and flushed before os._exit
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "ran"
    assert not (tmp_path / "freed").exists()  # the objects were not freed one by one


def test_other_commands_exit_as_usual(tmp_path):
    done = _executable(tmp_path, "other")
    assert done.returncode == 0 and "tabular-classification" in done.stdout
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "ran"
    assert (tmp_path / "freed").read_text() == "ran"
