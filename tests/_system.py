"""System parts some tests need beyond pip: a Chromium browser, a PostgreSQL server.

A user's `make test` without them skips those tests with one line saying how to enable them;
in CI (`CI=true`, where `.ci/run` installs and starts them) a missing part fails the test
instead, so a broken CI set-up cannot pass by skipping. Not a test module."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(found, missing: str, enable: str):
    """`found` if truthy; otherwise skip (one line: what is missing, how to enable) or, in CI, fail."""
    if found:
        return found
    if in_ci():
        pytest.fail(f"CI=true but {missing}: {enable}", pytrace=False)
    pytest.skip(f"{missing}; to run: {enable}")
