"""Run-directory writes: atomic, nothing half-written left behind, ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from dlpipe.rundir import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text


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
