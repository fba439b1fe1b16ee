"""Shared test set-up."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

BACKENDS = ("tensorflow", "jax", "torch")
_TEMP = pytest.StashKey[str]()


def pytest_addoption(parser):
    parser.addoption("--backend", choices=BACKENDS, default=os.environ.get("DLPIPE_TEST_BACKEND", "tensorflow"),
                     help="The Keras backend of this session: tests/test_run_templates.py runs every template "
                          "with `--set backend=NAME` (a template refused on it at validate time is skipped, its "
                          "one line shown). Default: $DLPIPE_TEST_BACKEND, else tensorflow.")


def pytest_configure(config):
    """Keras picks its backend at its first import: set it before any test module imports it."""
    backend = config.getoption("--backend")
    os.environ["DLPIPE_TEST_BACKEND"] = backend
    if backend != "tensorflow":
        os.environ["KERAS_BACKEND"] = backend
    _session_temp(config)


def _session_temp(config) -> None:
    """Every file the suite's processes write through `tempfile` goes to one folder of this
    session, removed at its end: TensorFlow's autograph writes each converted function as
    /tmp/__autograph_generated_file*.py and deletes it only at a normal exit, so every run
    a test kills, and every server it stops, used to leave its files behind. The xdist
    workers and the `dlpipe` processes the tests start inherit the folder (TMPDIR); pytest's
    own tmp_path folders stay where pytest keeps them (PYTEST_DEBUG_TEMPROOT)."""
    if os.environ.get("DLPIPE_TEST_TEMP"):  # an xdist worker: its controller's folder
        return
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    folder = tempfile.mkdtemp(prefix="dlpipe-tests-")
    os.environ["TMPDIR"] = os.environ["DLPIPE_TEST_TEMP"] = folder
    tempfile.tempdir = folder
    config.stash[_TEMP] = folder


def pytest_unconfigure(config):
    folder = config.stash.get(_TEMP, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _private_validation_cache(tmp_path_factory):
    """`dlpipe validate` remembers results (dlpipe/validation_cache.py): keep the suite's out
    of the user's ~/.cache, in one folder for the session (so replays are exercised too)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DLPIPE_CACHE_DIR", str(tmp_path_factory.mktemp("dlpipe-cache")))
    yield
    mp.undo()


_SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "report-screenshots"
_STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    """Say where the report screenshots of this session are (tests/test_run_templates.py)."""
    shots = sorted(p.name for p in _SCREENSHOTS.glob("*.png") if p.stat().st_mtime >= _STARTED)
    if shots:
        terminalreporter.write_line(f"report screenshots ({len(shots)}), for a person to look at: "
                                    f"{_SCREENSHOTS}/ ({', '.join(shots)})")
