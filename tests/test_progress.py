"""Progress of long steps (dlpipe/progress.py): plain lines without control characters when
stderr is a file or a pipe, one line redrawn in place on a terminal (a real pseudo-terminal
here), nothing with --quiet; and on real steps: reading a CSV, exporting and verifying
TFLite files, the feature passes of a generative evaluation, `dlpipe tune` under a terminal."""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe import progress
from dlpipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONTROL = re.compile(r"[\r\x1b\x08]")


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _loud():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_plain_lines_every_ten_seconds_then_the_final_line():
    clock, stream = Clock(), io.StringIO()
    with progress.task("reading big.csv", total=1000, unit="rows", stream=stream, clock=clock) as step:
        for seconds, done in [(1, 50), (5, 300), (10.5, 500), (15, 700), (21, 900)]:
            clock.now = 1000 + seconds
            step.update(done)
        clock.now = 1024
        step.finish("1,000 rows")
    assert stream.getvalue().splitlines() == [
        "[dlpipe] reading big.csv: 50% 500/1,000 rows, 10 s, ETA 10 s",
        "[dlpipe] reading big.csv: 90% 900/1,000 rows, 21 s, ETA 2 s",
        "[dlpipe] reading big.csv: 1,000 rows (24.0 s)",
    ]
    assert not CONTROL.search(stream.getvalue())


def test_a_quick_step_leaves_nothing_unless_always_and_a_failed_one_no_final_line():
    clock, stream = Clock(), io.StringIO()
    with progress.task("export keras", stream=stream, clock=clock) as step:
        clock.now += 1.5
        step.finish("written")
    assert stream.getvalue() == ""
    with progress.task("tune", total=3, unit="trials", stream=stream, clock=clock, always=True) as step:
        clock.now += 0.5
        step.update(3)
    assert stream.getvalue() == "[dlpipe] tune: 3 trials (0.5 s)\n"
    with pytest.raises(KeyError), progress.task("verify onnx", stream=stream, clock=clock):
        clock.now += 30
        raise KeyError("x")
    assert stream.getvalue() == "[dlpipe] tune: 3 trials (0.5 s)\n"


def test_eta_counts_the_pace_of_finished_units_less_the_current_one():
    clock, stream = Clock(), io.StringIO()
    with progress.task("tune", total=4, unit="trials", stream=stream, clock=clock) as step:
        clock.now += 20
        step.update(2)  # 10 s a trial
        clock.now += 4  # 4 s into the third
        assert step.line(bar=False).endswith("50% 2/4 trials, 24 s, ETA 16 s")


def test_quiet_prints_nothing():
    clock, stream = Clock(), io.StringIO()
    progress.set_quiet(True)
    with progress.task("reading big.csv", total=10, stream=stream, clock=clock, always=True) as step:
        clock.now += 60
        step.update(5)
    assert stream.getvalue() == ""


def read_terminal(master: int, until: float = 0.5) -> str:
    chunks = []
    while select.select([master], [], [], until)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_one_line_is_redrawn_in_place_and_replaced_by_the_final_one():
    master, slave = os.openpty()
    terminal = os.fdopen(slave, "w", encoding="utf-8")
    clock = Clock()
    try:
        assert progress.is_terminal(terminal)
        with progress.task("export tflite", stream=terminal, clock=clock) as step:
            clock.now += 1.2
            progress.note("converting int8 (2 of 2)")  # from inside the exporter
            clock.now += 0.3
            step.update(note="converting int8 (2 of 2)")
            progress.echo("a line of its own", stream=terminal)
            step.finish("written: tflite/model_int8.tflite")
        shown = read_terminal(master)
    finally:
        terminal.close()
        os.close(master)
    assert "\r[dlpipe] export tflite: converting int8 (2 of 2), 1 s\x1b[K" in shown
    assert "\r\x1b[K[dlpipe] a line of its own" in shown
    assert shown.endswith("\r\x1b[K[dlpipe] export tflite: written: tflite/model_int8.tflite (1.5 s)\r\n")


# Real steps ---------------------------------------------------------------------------------


@pytest.fixture
def every_update(monkeypatch):
    """Show every update of every step (the steps here are real but take under a second)."""
    monkeypatch.setattr(progress, "SHOWN_AFTER", 0.0)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)


def test_reading_a_csv_shows_bytes_read_then_rows(tmp_path, every_update, capsys):
    from dlpipe.data.sources import read_csv

    rng = np.random.default_rng(0)
    path = tmp_path / "measurements.csv"
    rows = rng.normal(size=(60_000, 4)).round(4)
    path.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n")
    size = path.stat().st_size
    table = read_csv(path)
    assert len(table.columns["a"]) == 60_000
    lines = capsys.readouterr().err.splitlines()
    assert not CONTROL.search("\n".join(lines))
    counted = [re.match(r"\[dlpipe\] reading measurements\.csv: (\d+)% ([\d.,]+) MB/([\d.,]+) MB, ", line)
               for line in lines[:-1]]
    assert len(counted) >= 2 and all(counted), lines
    read = [float(m[2]) for m in counted]
    assert read == sorted(read) and read[-1] == pytest.approx(size / 1e6, abs=0.051)
    assert re.fullmatch(rf"\[dlpipe\] reading measurements\.csv: 60,000 rows, {size / 1e6:.1f} MB \(\d+\.\d s\)",
                        lines[-1])


@pytest.mark.slow
def test_export_names_each_conversion_and_verification(tmp_path, every_update, monkeypatch):
    import _runs

    monkeypatch.setattr(progress, "PLAIN_EVERY", 1e9)  # the final lines only
    run = tmp_path / "run"  # a copy: the shared run's exports stay as other tests expect them
    shutil.copytree(_runs.tabular(), run)
    result = CliRunner().invoke(main, ["export", str(run), "--format", "tflite"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if re.match(r"\[dlpipe\] (export|verify) ", line)]
    assert re.fullmatch(r"\[dlpipe\] export tflite: written: tflite/model_float32\.tflite, "
                        r"tflite/model_int8\.tflite \(\d+\.\d s\)", lines[0]), lines
    for mode, line in zip(["float32", "int8"], lines[1:], strict=True):
        assert re.fullmatch(rf"\[dlpipe\] verify tflite/{mode}: max abs diff [\d.e-]+, passed \(\d+\.\d s\)", line)
    assert not CONTROL.search(result.stderr)
    # In a process of its own (stderr a pipe, as in a log): TensorFlow's and TFLite's C++
    # lines ("Reading SavedModel from ...", "Created TensorFlow Lite XNNPACK delegate") land
    # in export/native.log, not on stderr.
    native = run / "export" / "native.log"
    before = native.stat().st_size
    done = subprocess.run([sys.executable, "-c", "from dlpipe.cli import main; main()", "export", str(run),
                           "--format", "tflite", "--set", "export.tflite.quantization=[float32]"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("[dlpipe] ") for line in done.stderr.splitlines()), done.stderr
    added = native.read_text(encoding="utf-8", errors="replace")[before:]
    assert re.search(r"^[IWE]\d{4} .*\] |TensorFlow Lite", added, re.M), added


@pytest.mark.slow
def test_generative_feature_passes_count_images(every_update, capsys):
    import keras

    from dlpipe.metrics.generative import _two_outputs

    inputs = keras.Input(shape=(8, 8, 1))
    features = keras.layers.Dense(4, name="features")
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(features(inputs)))
    run = _two_outputs(keras.Model(inputs, outputs), features, batch_size=100)
    found, probabilities = run(np.random.default_rng(0).normal(size=(250, 8, 8, 1)))
    assert found.shape == (250, 256) and probabilities.shape == (250, 3)
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r", \d+ s.*| \(.*", "", line) for line in lines] == [
        "[dlpipe] FID features: 0% 0/250 images",
        "[dlpipe] FID features: 40% 100/250 images",
        "[dlpipe] FID features: 80% 200/250 images",
        "[dlpipe] FID features: 100% 250/250 images",
        "[dlpipe] FID features: 250 images",
    ]


@pytest.mark.slow
def test_tune_under_a_terminal_shows_a_progress_line_per_trial(tmp_path):
    """`dlpipe tune --trials 3` with stdin, stdout and stderr on a pseudo-terminal, as in a
    person's shell: the study's line is redrawn in place (carriage returns) naming each
    trial, and ends with a final line."""
    master, slave = os.openpty()
    command = [sys.executable, "-c", "from dlpipe.cli import main; main()", "tune",
               str(ROOT / "specs" / "tabular-classification.yaml"), "--trials", "3", "--out", str(tmp_path / "study"),
               "--set", "training.epochs=1", "--set", "export.formats=[]", "--set", "evaluation.splits=[validation]"]
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                               env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    shown, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        chunk = read_terminal(master, until=1.0)
        shown.append(chunk)
        if process.poll() is not None and not chunk:
            break
    os.close(master)
    assert process.wait(timeout=60) == 0, "".join(shown)[-3000:]
    text = "".join(shown)
    redrawn = [part.replace("\x1b[K", "") for part in re.split(r"[\r\n]+", text)]
    for number in range(3):
        assert any(re.match(rf"\[dlpipe\] tune: \[[=> ]+\] \d+% {number}/3 trials, trial {number} running", line)
                   for line in redrawn), (number, redrawn)
    assert any(re.match(r"\[dlpipe\] tune: .*best so far [\d.]+ \(trial \d\)", line) for line in redrawn)
    assert re.search(r"\r\x1b\[K\[dlpipe\] tune: 3 of 3 trial\(s\) run by this process \(\d+\.\d s\)\r\n", text)
    assert text.count("\r[dlpipe] tune: [") >= 3  # drawn in place, again and again
