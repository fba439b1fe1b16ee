"""Shared test set-up."""

import os
import time
from pathlib import Path

import pytest

BACKENDS = ("tensorflow", "jax", "torch")


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
