"""Shared test set-up."""

import time
from pathlib import Path

import pytest


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
