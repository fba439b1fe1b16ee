"""Stage cache keys, the pickle-free store of prepared data, write errors and signals:
everything about reruns and interruptions that needs no TensorFlow (the runs themselves
are in tests/test_reliability.py)."""

from __future__ import annotations

import errno
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dlpipe import stagecache
from dlpipe.errors import DlpipeError, Interrupted
from dlpipe.rundir import RunDir, WriteError, atomic_path, atomic_write_json, write_error
from dlpipe.spec import load_document

SPEC = """\
name: keys
task: classification
data:
  source: {type: csv, path: data.csv}
  target: {name: label}
  split: {train: 0.6, validation: 0.2, test: 0.2}
model: {type: mlp, units: [4]}
training: {epochs: 2}
"""


@pytest.fixture
def spec_file(tmp_path) -> Path:
    lines = ["x,y,label"] + [f"{i / 20},{(i * 7) % 5},{'yes' if i % 2 else 'no'}" for i in range(20)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path / "spec.yaml"


def keys(spec_file: Path, *overrides: str) -> dict[str, str]:
    spec, _ = load_document(spec_file, list(overrides))
    return stagecache.stage_keys(spec, spec_file.parent)


def changed(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def test_each_section_changes_its_stage_and_those_after_it(spec_file):
    base = keys(spec_file)
    assert keys(spec_file) == base
    assert changed(base, keys(spec_file, "export.formats=[saved_model]")) == ["export"]
    assert changed(base, keys(spec_file, "evaluation.metrics=[accuracy]")) == ["evaluate", "export"]
    assert changed(base, keys(spec_file, "training.epochs=3")) == ["train", "evaluate", "export"]
    assert changed(base, keys(spec_file, "model.units=[8]")) == ["train", "evaluate", "export"]
    every = ["data", "train", "evaluate", "export"]
    assert changed(base, keys(spec_file, "seed=7")) == every
    assert changed(base, keys(spec_file, "data.split.train=0.5", "data.split.validation=0.3")) == every
    assert changed(base, keys(spec_file, "name=other", "description=words")) == []


def test_the_data_key_follows_the_source_file(spec_file):
    base = keys(spec_file)
    data = spec_file.parent / "data.csv"
    data.write_text(data.read_text().replace("0.05,", "0.06,", 1))
    assert changed(base, keys(spec_file)) == ["data", "train", "evaluate", "export"]


@dataclass
class Foreign:  # defined outside dlpipe: not stored
    value: int


def test_prepared_data_round_trips_exactly(spec_file, tmp_path):
    from dlpipe.data.prepare import prepare

    spec, _ = load_document(spec_file, [])
    data = prepare(spec, spec_file.parent, None)
    data.extra["labels"] = np.array(["a", "bc"], dtype=object)
    data.extra["nan"] = float("nan")
    data.extra["order"] = {"z": 1, "a": 2}
    assert stagecache.save(data, tmp_path / "cache", "data") is None
    loaded = stagecache.load(tmp_path / "cache", "data")
    assert type(loaded) is type(data) and loaded.describe() == data.describe()
    for name, split in data.splits.items():
        for key, x in split.x.items():
            assert loaded.splits[name].x[key].dtype == x.dtype and np.array_equal(loaded.splits[name].x[key], x)
        assert np.array_equal(loaded.splits[name].y, split.y) and loaded.splits[name].y.dtype == split.y.dtype
    assert [f.mean.tolist() for f in loaded.features] == [f.mean.tolist() for f in data.features]
    assert loaded.extra["labels"].dtype == object and list(loaded.extra["labels"]) == ["a", "bc"]
    assert np.isnan(loaded.extra["nan"])
    assert list(loaded.extra["order"]) == ["z", "a"]  # not sorted: dict order can be input order
    assert list(vars(loaded)) == list(vars(data))

    assert stagecache.save({"x": Foreign(1)}, tmp_path / "other", "data") == "a Foreign from test_stagecache"
    assert not (tmp_path / "other" / "data.json").exists()


def test_a_cache_naming_a_class_outside_dlpipe_is_refused(tmp_path):
    atomic_write_json(tmp_path / "data.json", {"format": 1, "tree": {"dataclass": "os:system", "fields": {}}})
    np.savez(tmp_path / "data.npz")
    with pytest.raises(ValueError, match="outside dlpipe: os:system"):
        stagecache.load(tmp_path, "data")


def test_reusable_needs_the_same_key_a_completed_stage_and_its_outputs(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.start(seed=1, command=[], spec_file="s.yaml")
    with run.stage("data", key="k1"):
        atomic_write_json(run.path("data.json"), {})
    run.finish("completed")
    run.unlock()
    again = RunDir.reopen(tmp_path / "run", rerun=True)
    assert again.reusable("data", "k1", ("data.json",))
    assert not again.reusable("data", "k2", ("data.json",))
    assert not again.reusable("data", "k1", ("missing.json",))
    again.cache = False
    assert not again.reusable("data", "k1", ("data.json",))
    again.unlock()


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    """ENOSPC simulated at the atomic-write layer (tests/test_reliability.py fills a real tmpfs)."""
    atomic_write_json(tmp_path / "m.json", {"a": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(WriteError) as info:
        atomic_write_json(tmp_path / "m.json", {"a": 2})
    assert str(info.value) == f"{tmp_path / 'm.json'}: cannot write: No space left on device"
    with pytest.raises(WriteError):
        with atomic_path(tmp_path / "model.keras") as tmp:
            tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_a_read_only_place_for_the_run_directory_is_one_line(tmp_path, monkeypatch):
    """EROFS simulated at mkdir (a real read-only tmpfs: tests/test_reliability.py)."""
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(DlpipeError) as info:
        RunDir.create(tmp_path / "run")
    assert str(info.value) == f"{tmp_path / 'run'}: cannot create the run directory: Read-only file system"


def test_write_error_finds_an_os_error_a_library_wrapped():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/model.keras")
        except OSError as err:
            raise RuntimeError("saving failed") from err
    except RuntimeError as wrapped:
        assert str(write_error(wrapped)) == "/x/model.keras: cannot write: No space left on device"
    assert write_error(ValueError("bug")) is None


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_become_interruptions(signum, code):
    from dlpipe.runner import _signals_interrupt

    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:
        with _signals_interrupt():
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the handler runs between two bytecodes
                pass
    assert info.value.exit_code == code and info.value.signal_name == signal.Signals(signum).name
    assert signal.getsignal(signum) is before


def test_large_files_and_large_data_are_not_read_twice(tmp_path, monkeypatch):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 100)
    monkeypatch.setattr(stagecache, "HASHED_FILE_LIMIT", 10)
    first = stagecache.files_fingerprint({"path": "big.bin"}, tmp_path)
    assert first == {"big.bin": [100, big.stat().st_mtime_ns]}  # size and time, not content
    monkeypatch.setattr(stagecache, "CACHED_DATA_LIMIT", 10)
    assert stagecache.save({"x": np.zeros(4)}, tmp_path / "c", "data").startswith("0.0 GiB of arrays, over")
    assert not (tmp_path / "c").exists()
