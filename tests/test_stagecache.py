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
    # Explanations read the model and the data only: metrics and exports stay.
    assert changed(base, keys(spec_file, "evaluation.explain={rows: 2}")) == ["explain"]
    assert changed(base, keys(spec_file, "training.epochs=3")) == ["train", "evaluate", "export", "explain"]
    assert changed(base, keys(spec_file, "model.units=[8]")) == ["train", "evaluate", "export", "explain"]
    every = ["data", "train", "evaluate", "export", "explain"]
    assert changed(base, keys(spec_file, "seed=7")) == every
    assert changed(base, keys(spec_file, "data.split.train=0.5", "data.split.validation=0.3")) == every
    # The model card states the run's name and description: a rerun writes it again, nothing more.
    assert changed(base, keys(spec_file, "name=other")) == ["export"]
    assert changed(base, keys(spec_file, "description=words")) == ["export"]


def test_the_int8_calibration_draw_retrains_a_quantization_aware_model_only(spec_file):
    """Quantization-aware training takes its input ranges from the int8 export's calibration
    examples (pipelines/supervised.py: calibrate_quantization): their count is a train key."""
    int8 = ("export.formats=[tflite]", "export.tflite.quantization=[int8]")
    draw = "export.tflite.representative_samples=50"
    plain = keys(spec_file, *int8)
    assert changed(plain, keys(spec_file, *int8, draw)) == ["export"]
    aware = keys(spec_file, *int8, "compression.quantization_aware={}")
    assert changed(aware, keys(spec_file, *int8, "compression.quantization_aware={}", draw)) == [
        "train", "evaluate", "export", "explain"]


def test_the_later_keys_chain_on_the_prepared_data(spec_file):
    """The data key is decided before the data is read; train, evaluate and export chain
    on the prepared data's fingerprint, known after it."""
    spec, _ = load_document(spec_file, [])
    before = stagecache.stage_keys(spec, spec_file.parent, "sha256:aa")
    after = stagecache.stage_keys(spec, spec_file.parent, "sha256:bb")
    assert changed(before, after) == ["train", "evaluate", "export", "explain"]


def data_stage(spec_file: Path, out: Path) -> dict:
    """The supervised pipeline's data stage (pipelines/supervised.py, without TensorFlow)
    run into `out`: run.json's entry for it."""
    from dlpipe import stages
    from dlpipe.data.prepare import prepare

    spec, _ = load_document(spec_file, [])
    keys = stagecache.stage_keys(spec, spec_file.parent)
    rerun = RunDir.holds_run(out)
    run = RunDir.reopen(out, rerun=True) if rerun else RunDir.create(out)
    if not rerun:
        run.start(seed=spec.seed, command=[], spec_file=str(spec_file))
    reuse = run.reusable("data", keys["data"], stagecache.DATA_OUTPUTS, reads=True)
    with run.stage("data", key=keys["data"], reused=reuse, reads=True):
        if not reuse:
            data = prepare(spec, spec_file.parent, None)
            stagecache.save_data(run, data)
            atomic_write_json(run.path("data.json"), data.describe())
            stages.write_splits(run, data)
    run.finish("completed")
    run.unlock()
    return json.loads((out / "run.json").read_text())["stages"]["data"]


def write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def change_one_pixel(path: Path) -> None:
    """One pixel of a PNG, written back with the same size and modification time (as
    `cp -p`, `rsync -a` or `tar x` leave a changed file)."""
    from PIL import Image

    before = path.stat()
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(path)
    assert path.stat().st_size == before.st_size  # raw 8-bit PNGs of noise: no compression gain
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def noise(seed: int, shape=(6, 6)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_a_changed_image_behind_an_image_csv_reruns_the_data_stage_and_is_named(tmp_path, capsys):
    rows = ["file,label"]
    for i in range(12):
        write_png(tmp_path / "pics" / f"{i:02d}.png", noise(i))
        rows.append(f"pics/{i:02d}.png,{'ab'[i % 2]}")
    (tmp_path / "index.csv").write_text("\n".join(rows) + "\n")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.replace("{type: csv, path: data.csv}", "{type: image_csv, path: index.csv, "
                                      "image_column: file, color_mode: grayscale}")
                         .replace("  target:", "  features: [{name: file, type: image}]\n  target:"))
    out = tmp_path / "run"
    first = data_stage(spec_file, out)
    assert first["reused"] is False and first["files_read"] == 13  # the CSV and its 12 images
    assert data_stage(spec_file, out)["reused"] is True
    capsys.readouterr()

    change_one_pixel(tmp_path / "pics" / "07.png")
    again = data_stage(spec_file, out)
    image = str(tmp_path / "pics" / "07.png")
    assert again["reused"] is False and again["changed"] == [image] and again["changed_count"] == 1
    assert f"[dlpipe] data: {image} changed since the last run; running the stage again" in capsys.readouterr().err
    assert data_stage(spec_file, out)["reused"] is True  # the new log holds the new bytes


def test_a_changed_image_in_a_linked_class_folder_reruns_the_data_stage(tmp_path):
    """Class folders that are links to where the images live (Path.rglob on 3.11 does not
    follow them; the loader and the read log do); a link loop inside is not followed."""
    for name in ("cat", "dog"):
        for i in range(5):
            write_png(tmp_path / "store" / name / f"{i}.png", noise(i + (10 if name == "dog" else 0)))
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / name).symlink_to(tmp_path / "store" / name, target_is_directory=True)
    (tmp_path / "store" / "cat" / "loop").symlink_to(tmp_path / "images", target_is_directory=True)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.replace("{type: csv, path: data.csv}", "{type: image_folder, path: images, "
                                      "color_mode: grayscale}")
                         .replace("  target:", "  features: [{name: image, type: image}]\n  target:"))
    out = tmp_path / "run"
    assert data_stage(spec_file, out)["files_read"] == 10
    assert data_stage(spec_file, out)["reused"] is True

    change_one_pixel(tmp_path / "store" / "dog" / "3.png")
    again = data_stage(spec_file, out)
    assert again["reused"] is False and again["changed"] == [str(tmp_path / "images" / "dog" / "3.png")]

    write_png(tmp_path / "store" / "cat" / "5.png", noise(99))  # a new image: the listing changed
    again = data_stage(spec_file, out)
    assert again["changed"] == [str(tmp_path / "images" / "cat" / "5.png")] and again["files_read"] == 11

    (tmp_path / "store" / "cat" / "1.png").unlink()
    assert data_stage(spec_file, out)["changed"] == [str(tmp_path / "images" / "cat" / "1.png")]


def test_a_changed_file_of_any_size_with_the_same_size_and_time_is_seen(tmp_path):
    from dlpipe import readlog

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 << 20))
    with readlog.recording() as log:
        readlog.opened(big)
    assert readlog.changes(log) == []
    before = big.stat()
    with open(big, "r+b") as handle:  # one byte in the middle
        handle.seek(3 << 19)
        handle.write(b"y")
    os.utime(big, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (big.stat().st_size, big.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert readlog.changes(log) == [str(big)]


def test_a_link_on_the_way_to_the_data_made_to_lead_elsewhere_is_a_change(tmp_path):
    """`data -> data-v1` made `data -> data-v2` with identical names inside."""
    from dlpipe.data.prepare import prepare
    from dlpipe import readlog

    for version, shift in (("v1", 0), ("v2", 1)):
        lines = ["x,y,label"] + [f"{i + shift},{i % 3},{'ab'[i % 2]}" for i in range(10)]
        (tmp_path / f"data-{version}").mkdir()
        (tmp_path / f"data-{version}" / "data.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "data").symlink_to(tmp_path / "data-v1")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC.replace("path: data.csv", "path: data/data.csv"))
    spec, _ = load_document(spec_file, [])
    with readlog.recording() as log:
        prepare(spec, tmp_path, None)
    assert readlog.changes(log) == []
    (tmp_path / "data").unlink()
    (tmp_path / "data").symlink_to(tmp_path / "data-v2")
    assert readlog.changes(log) == [str(tmp_path / "data" / "data.csv")]


def test_a_run_directory_without_a_read_log_prepares_the_data_again(spec_file, tmp_path):
    out = tmp_path / "run"
    data_stage(spec_file, out)
    (out / "cache" / "data.reads.json").unlink()
    assert data_stage(spec_file, out)["reused"] is False
    assert data_stage(spec_file, out)["reused"] is True


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

    assert stagecache.save({"x": Foreign(1)}, tmp_path / "other", "data") == "it holds an object of type Foreign from test_stagecache"
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


def test_large_data_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(stagecache, "CACHED_DATA_LIMIT", 10)
    assert stagecache.save({"x": np.zeros(4)}, tmp_path / "c", "data").startswith("0.0 GiB of arrays, over")
    assert not (tmp_path / "c").exists()
