"""Shared test set-up."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_validation_cache(tmp_path_factory):
    """`dlpipe validate` remembers results (dlpipe/validation_cache.py): keep the suite's out
    of the user's ~/.cache, in one folder for the session (so replays are exercised too)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DLPIPE_CACHE_DIR", str(tmp_path_factory.mktemp("dlpipe-cache")))
    yield
    mp.undo()
