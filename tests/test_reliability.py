"""Crashes, interruptions, full disks, unsafe model files, the network, and stage caching,
on one tiny spec (iris, 3 epochs of 6 batches: each run takes seconds).

Runs that must die (SIGKILL, SIGTERM) or must not reach the network run `dlpipe run` in a
subprocess, with the test hook DLPIPE_TEST_KILL_AT (dlpipe/testhooks.py) choosing where
the process kills itself. Resumes and reruns run in this process: TensorFlow is imported
once. Every final metrics.json is compared byte for byte with the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dlpipe.rundir import RunDir

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: reliability
task: classification
seed: 3
data:
  source: {type: builtin, name: iris}
  target: {name: target}
  split: {train: 0.6, validation: 0.2, test: 0.2}
prepare:
  normalization: {numerical: {type: zscore}}
model: {type: mlp, units: [8], dropout: 0.1}
training:
  epochs: 3
  batch_size: 16      # 90 training rows: 6 batches an epoch
  progress: none
  tensorboard: false
export: {formats: [keras]}
"""

# Installed with PYTHONPATH in the child: every socket connection attempt is refused and
# written to $NETWORK_LOG, so a library that swallows the error is still caught.
SITECUSTOMIZE = '''\
import os, socket

def _refuse(self, address, *args, **kwargs):
    with open(os.environ["NETWORK_LOG"], "a") as log:
        log.write(f"connect {address!r}\\n")
    raise OSError(101, "network access is blocked in this test")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
_getaddrinfo = socket.getaddrinfo

def _lookup(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(f"getaddrinfo {host!r}\\n")
        raise socket.gaierror(-3, "name resolution is blocked in this test")
    return _getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = _lookup
'''


def dlpipe(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dlpipe.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


def record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reliability") / "spec.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def baseline(spec) -> tuple[Path, subprocess.CompletedProcess, Path]:
    """The uninterrupted run, made with every socket connection blocked."""
    hooks = spec.parent / "no-network"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = spec.parent / "network.log"
    path = os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = spec.parent / "baseline"
    result = dlpipe("run", str(spec), "--out", str(out), env={"PYTHONPATH": path, "NETWORK_LOG": str(log)})
    return out, result, log


def test_a_run_needs_no_network(baseline):
    out, result, log = baseline
    assert result.returncode == 0, result.stderr[-3000:]
    assert not log.exists(), log.read_text()
    assert record(out)["status"] == "completed"


def assert_nothing_half_written(run: Path) -> None:
    """Every file under a final name is whole: JSON parses, archives open; the rest of what
    a killed process was writing has a temporary name (.NAME.*.tmp*)."""
    import numpy as np

    for path in run.rglob("*"):
        if not path.is_file() or path.name == ".lock":
            continue
        if path.name.startswith(".") and ".tmp" in path.name:
            continue
        assert ".tmp" not in path.name, path
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                [archive[key] for key in archive.files]


@pytest.mark.parametrize("point, stage", [
    ("data", "data"),          # the first write of the data stage, before it is renamed
    ("train:13", "train"),     # epoch 2, batch 3: after epoch 1's checkpoint (6 batches + 4 writes)
    ("export", "export"),      # the exported model.keras written, not yet renamed
])
def test_kill_9_then_resume_matches_the_uninterrupted_run(spec, baseline, point, stage):
    from dlpipe.runner import run_spec

    out = spec.parent / f"killed-{stage}"
    result = dlpipe("run", str(spec), "--out", str(out), env={"DLPIPE_TEST_KILL_AT": point})
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    before = record(out)
    assert before["status"] == "running" and before["stages"][stage]["status"] == "running"
    if stage != "train":  # killed mid-write: the file has its temporary name only
        assert any(p.name.startswith(".") and ".tmp" in p.name for p in out.rglob("*"))
    assert_nothing_half_written(out)
    assert not (out / "metrics.json").exists() or stage == "export"
    if stage == "train":
        assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1

    assert run_spec(spec, out=out, resume=True) == out

    assert (out / "metrics.json").read_bytes() == (baseline[0] / "metrics.json").read_bytes()
    after = record(out)
    assert after["status"] == "completed" and after["weights_sha256"] == record(baseline[0])["weights_sha256"]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # the resume cleared the leftovers
    reused = {name: entry.get("reused") for name, entry in after["stages"].items()}
    assert reused["data"] is (stage != "data")  # completed stages are not done again
    assert reused["train"] is (stage == "export") and reused["evaluate"] is (stage == "export")
    if stage == "train":
        assert after["resumed_from_epoch"] == 1


@pytest.mark.parametrize("name, code", [("TERM", 143), ("INT", 130)])
def test_sigterm_and_sigint_record_the_interruption_and_resume_completes(spec, baseline, name, code):
    from dlpipe.runner import run_spec

    out = spec.parent / f"interrupted-{name}"
    result = dlpipe("run", str(spec), "--out", str(out),
                    env={"DLPIPE_TEST_KILL_AT": "train:13", "DLPIPE_TEST_KILL_SIGNAL": name})
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: interrupted by SIG{name} during the train stage (checkpoints kept); continue with: "
        f"dlpipe run {spec} --out {out} --resume")
    before = record(out)
    assert before["status"] == "interrupted" and before["interrupted_stage"] == "train"
    assert before["error"] == f"interrupted by SIG{name} during the train stage"
    assert before["stages"]["train"]["status"] == "interrupted"
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert RunDir.lock_holder(out) is None  # released (the file stays)
    if name == "INT":
        return  # the same path as SIGTERM from here on

    run_spec(spec, out=out, resume=True)
    assert (out / "metrics.json").read_bytes() == (baseline[0] / "metrics.json").read_bytes()
    assert [r["previous_status"] for r in record(out)["resumed"]] == ["interrupted"]


# Stage caching ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rerun(spec, baseline, tmp_path_factory):
    """A copy of the baseline run, run into again with changes: run.json after each."""
    from dlpipe.runner import run_spec

    out = tmp_path_factory.mktemp("rerun") / "run"
    shutil.copytree(baseline[0], out)

    def again(*overrides: str, cache: bool = True) -> dict:
        run_spec(spec, out=out, overrides=list(overrides), cache=cache)
        return record(out)

    return out, again


def reused(run_record: dict) -> dict:
    return {name: run_record["stages"][name]["reused"] for name in ("data", "train", "evaluate", "export")}


def test_rerun_reuses_stages_whose_sections_did_not_change(rerun, baseline):
    out, again = rerun
    model = (out / "model.keras").stat().st_mtime_ns

    changed_export = again("export.formats=[]")
    assert reused(changed_export) == {"data": True, "train": True, "evaluate": True, "export": False}
    assert (out / "model.keras").stat().st_mtime_ns == model
    assert not (out / "export" / "keras").exists()  # the earlier export's files went
    assert (out / "metrics.json").read_bytes() == (baseline[0] / "metrics.json").read_bytes()

    changed_evaluation = again("export.formats=[]", "evaluation.metrics=[accuracy]")
    assert reused(changed_evaluation) == {"data": True, "train": True, "evaluate": False, "export": False}
    assert list(json.loads((out / "metrics.json").read_text())["test"]) == ["accuracy"]
    assert (out / "model.keras").stat().st_mtime_ns == model

    changed_epochs = again("export.formats=[]", "evaluation.metrics=[accuracy]", "training.epochs=4")
    assert reused(changed_epochs) == {"data": True, "train": False, "evaluate": False, "export": False}
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 4
    assert changed_epochs["stages"]["train"]["key"] != changed_evaluation["stages"]["train"]["key"]
    assert changed_epochs["stages"]["data"]["key"] == changed_export["stages"]["data"]["key"]
    assert [r["previous_status"] for r in changed_epochs["reruns"]] == ["completed"] * 3

    forced = again("export.formats=[]", "evaluation.metrics=[accuracy]", "training.epochs=4", cache=False)
    assert reused(forced) == {"data": False, "train": False, "evaluate": False, "export": False}
    assert forced["weights_sha256"] == changed_epochs["weights_sha256"]  # the cache changed nothing


IMAGES_SPEC = """\
version: 1
name: pixels
task: classification
seed: 5
data:
  source: SOURCE
  features: [{name: FEATURE, type: image}]
  target: {name: label}
  split: {train: 0.6, validation: 0.2, test: 0.2}
prepare:
  normalization: {image: {type: rescale, scale: 0.0625}}
model: {type: mlp, units: [8]}
training: {epochs: 2, batch_size: 16, progress: none, tensorboard: false}
export: {formats: []}
"""


def write_digits(folder: Path, per_class: int = 8) -> list[Path]:
    """scikit-learn's digits 0-2 as 8×8 PNGs in folder/<digit>/ (pixels 0..16 as stored)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits(n_class=3)
    written = []
    for digit in range(3):
        (folder / str(digit)).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == digit][:per_class]):
            written.append(folder / str(digit) / f"{i}.png")
            Image.fromarray(image.astype(np.uint8)).save(written[-1])
    return written


def change_one_pixel(path: Path) -> None:
    """One pixel changed, size and modification time kept (as `cp -p` or `rsync -a` leave it)."""
    from PIL import Image

    before = path.stat()
    pixels = np.asarray(Image.open(path)).copy()
    pixels[4, 4] = 16 - pixels[4, 4]
    Image.fromarray(pixels).save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("layout", ["image_csv", "linked class folders"])
def test_a_changed_pixel_reruns_data_and_training_and_run_json_names_the_file(tmp_path, layout, capsys):
    """One pixel of one image changed behind the spec (an image_csv's rows, or image_folder
    class folders that are links): a rerun into the same --out prepares and trains again and
    says which file; a rerun with nothing changed reuses every stage."""
    from dlpipe.runner import run_spec

    images = write_digits(tmp_path / "store")
    if layout == "image_csv":
        rows = [f"{path.relative_to(tmp_path)},{path.parent.name}" for path in images]
        (tmp_path / "index.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
        source, feature, changed = "{type: image_csv, path: index.csv, image_column: file}", "file", images[13]
    else:
        (tmp_path / "classes").mkdir()
        for digit in "012":
            (tmp_path / "classes" / digit).symlink_to(tmp_path / "store" / digit, target_is_directory=True)
        source, feature = "{type: image_folder, path: classes, color_mode: grayscale}", "image"
        changed = tmp_path / "classes" / images[13].parent.name / images[13].name
    spec = tmp_path / "spec.yaml"
    spec.write_text(IMAGES_SPEC.replace("SOURCE", source).replace("FEATURE", feature))
    out = tmp_path / "run"
    run_spec(spec, out=out)
    first = record(out)
    assert first["stages"]["data"]["files_read"] == len(images) + (layout == "image_csv")
    run_spec(spec, out=out)
    assert reused(record(out)) == {"data": True, "train": True, "evaluate": True, "export": True}
    capsys.readouterr()

    change_one_pixel(images[13])
    run_spec(spec, out=out)
    after = record(out)
    assert reused(after) == {"data": False, "train": False, "evaluate": False, "export": False}
    assert after["stages"]["data"]["changed"] == [str(changed)]
    assert after["data_fingerprint"] != first["data_fingerprint"]
    assert f"[dlpipe] data: {changed} changed since the last run; running the stage again" in capsys.readouterr().err


# Disks that refuse -------------------------------------------------------------------------

def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs unshare -Urm (user and mount namespaces) to mount a tmpfs")
@pytest.mark.parametrize("options, expected", [
    ("size=64k", ": cannot write: No space left on device"),
    ("ro", "/run: cannot create the run directory: Read-only file system"),
])
def test_a_full_or_read_only_disk_fails_in_one_line(spec, tmp_path, options, expected):
    """A real tmpfs, 64 KiB (full during training) or read-only, mounted in a private
    namespace; the run is checked from inside it, as the mount vanishes with it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    check = textwrap.dedent("""\
        import json, pathlib, sys
        for path in pathlib.Path(sys.argv[1]).rglob("*.json"):
            json.loads(path.read_text())  # nothing half-written
        print("checked")
    """)
    script = (f'mount -t tmpfs -o {options} tmpfs "$0" || exit 99; '
              f'"$1" -m dlpipe.cli run "$2" --out "$0/run"; code=$?; "$1" -c "$3" "$0" >&2; exit $code')
    result = subprocess.run(["unshare", "-Urm", "sh", "-c", script, str(disk), sys.executable, str(spec), check],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "checked" and "Traceback" not in result.stderr
    assert lines[-2].startswith(f"error: {disk}/run") and lines[-2].endswith(expected), lines[-2]


@pytest.mark.skipif(not _can_mount(), reason="needs unshare -Urm (user and mount namespaces) to mount a tmpfs")
def test_a_disk_that_fills_during_evaluation_leaves_run_json_failed(spec, tmp_path):
    """The disk fills at the evaluate stage's first write (test hook DLPIPE_TEST_FILL_DISK_AT):
    the atomic rewrite of run.json has no room for its temporary file, so the outcome is
    written over run.json's own space."""
    disk = tmp_path / "disk"
    disk.mkdir()
    check = textwrap.dedent("""\
        import json, pathlib, sys
        record = json.loads((pathlib.Path(sys.argv[1]) / "run" / "run.json").read_text())
        stages = {name: stage["status"] for name, stage in record["stages"].items()}
        print(json.dumps([record["status"], record["error"], stages]))
    """)
    script = ('mount -t tmpfs -o size=16m tmpfs "$0" || exit 99; '
              'DLPIPE_TEST_FILL_DISK_AT="evaluate:$0/filler" "$1" -m dlpipe.cli run "$2" --out "$0/run"; '
              'code=$?; "$1" -c "$3" "$0"; exit $code')
    result = subprocess.run(["unshare", "-Urm", "sh", "-c", script, str(disk), sys.executable, str(spec), check],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 1, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {disk}/run/") and error.endswith(": cannot write: No space left on device")
    assert "Traceback" not in result.stderr
    status, recorded, stages = json.loads(result.stdout.strip().splitlines()[-1])
    assert (status, "error: " + recorded) == ("failed", error)
    assert stages == {"data": "completed", "setup": "completed", "build": "completed", "train": "completed",
                      "evaluate": "failed"}


# Model files that would run code ------------------------------------------------------------

@pytest.fixture(scope="module")
def lambda_run(baseline, tmp_path_factory) -> Path:
    """The baseline run with its model.keras replaced by the same model plus a Lambda layer."""
    import keras

    from dlpipe.modelfile import load_keras_model

    out = tmp_path_factory.mktemp("lambda") / "run"
    shutil.copytree(baseline[0], out)
    model = load_keras_model(out / "model.keras")
    outputs = keras.layers.Lambda(lambda t: t * 1.0)(model.outputs[0])
    keras.Model(model.inputs, outputs).save(out / "model.keras")
    return out


def test_a_model_with_a_lambda_layer_is_refused_unless_allowed(lambda_run, tmp_path):
    from click.testing import CliRunner

    from dlpipe.cli import main

    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns="target").head(5)
    rows = tmp_path / "rows.csv"
    frame.to_csv(rows, index=False)

    refused = CliRunner().invoke(main, ["predict", str(lambda_run), str(rows)])
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        f"error: {lambda_run / 'model.keras'}: refused to load the model: it holds a Lambda layer or other "
        "Python code, which would run on loading; if you trust the file's source, opt in with "
        "--allow-unsafe-deserialization")

    evaluated = CliRunner().invoke(main, ["evaluate", str(lambda_run)])
    assert evaluated.exit_code == 1
    assert "refused to load the model" in evaluated.output
    assert "model.allow_unsafe_deserialization" not in evaluated.output  # the spec's opt-in is top level
    assert "allow_unsafe_deserialization: true in the spec" in evaluated.output

    allowed = CliRunner().invoke(main, ["predict", str(lambda_run), str(rows), "--allow-unsafe-deserialization"])
    assert allowed.exit_code == 0, allowed.output
    assert len(allowed.stdout.strip().splitlines()) == 1 + 5


def test_a_run_whose_model_file_was_tampered_with_fails_in_one_line(baseline, tmp_path):
    import zipfile

    from click.testing import CliRunner

    from dlpipe.cli import main

    run = tmp_path / "run"
    shutil.copytree(baseline[0], run)
    model = run / "model.keras"
    with zipfile.ZipFile(baseline[0] / "model.keras") as source, zipfile.ZipFile(model, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][-1]["inbound_nodes"] = [{"args": 3}]
                data = json.dumps(config).encode()
            out.writestr(item, data)
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n5.1,3.5,1.4,0.2\n")
    for args in (["predict", str(run), str(rows)], ["evaluate", str(run)]):
        result = CliRunner().invoke(main, args)
        assert (result.exit_code, result.output) == (1, f"error: {model}: cannot load the model: KeyError: 'kwargs'\n")


def test_relative_data_paths_are_reported_absolute(tmp_path, monkeypatch):
    from dlpipe.errors import DataError
    from dlpipe.runner import run_spec

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "spec.yaml").write_text(SPEC.replace("{type: builtin, name: iris}",
                                                               "{type: csv, path: ../data/iris.csv}"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        run_spec("specs/spec.yaml", out="run")
    assert str(info.value) == f"{tmp_path / 'data' / 'iris.csv'}: no such file"
    assert record(tmp_path / "run")["spec_file"] == str(tmp_path / "specs" / "spec.yaml")
