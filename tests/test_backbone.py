"""Backbones, trained for real on tiny data: a Keras application built with random weights
or a weights file this test writes (nothing downloads), the body of an earlier run, the
fine-tune schedule in history.csv, exports that take raw images, and an exact resume after
a kill past the unfreeze."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dlpipe.runner import run_spec
from dlpipe.spec import load_spec
from dlpipe.spec.paths import resolved

pytestmark = pytest.mark.slow

EARLIER = """\
version: 1
name: digits-0-4
task: classification
seed: 3
data:
  source: {type: builtin, name: digits}
  features: [{name: image, type: image}]
  target: {name: label, label_map: {"0": "0", "1": "1", "2": "2", "3": "3", "4": "4"}, on_unknown: drop}
  split: {train: 0.7, validation: 0.1, test: 0.2}
prepare:
  normalization: {image: {type: rescale, scale: 0.0625}}
model:
  type: cnn
  blocks: [{filters: 8, batch_norm: true}, {filters: 16}]
  head: {units: [16]}
training: {epochs: 2, batch_size: 32, progress: none}
export: {formats: []}
"""

LATER = """\
version: 1
name: digits-5-9
task: classification
seed: 5
data:
  source: {type: builtin, name: digits}
  features: [{name: image, type: image}]
  target: {name: label, label_map: {"5": "5", "6": "6", "7": "7", "8": "8", "9": "9"}, on_unknown: drop}
  split: {train: 0.5, validation: 0.2, test: 0.3}
model:
  type: backbone
  from_run: earlier
  fine_tune: {freeze_epochs: 1, unfreeze: all, learning_rate_factor: 0.1}
  head: {dropout: 0.2}
training:
  epochs: 4
  batch_size: 16
  optimizer: {type: adam, learning_rate: 0.01}
  progress: epoch
export: {formats: [keras]}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("backbone")
    (folder / "earlier.yaml").write_text(EARLIER)
    run_spec(folder / "earlier.yaml", out=folder / "earlier")
    (folder / "later.yaml").write_text(LATER)
    return folder


def history(run: Path) -> list[dict]:
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


def build(spec_path: Path, overrides=()):
    from dlpipe.pipelines.supervised import deep_build

    spec = resolved(load_spec(spec_path, overrides), spec_path.parent)
    return deep_build(spec, spec_path.parent, None)


def test_the_body_of_an_earlier_run_starts_with_its_weights_and_a_new_head(folder):
    from dlpipe.modelfile import load_keras_model

    earlier = load_keras_model(folder / "earlier" / "model.keras")
    model = build(folder / "later.yaml")
    backbone = model.get_layer("backbone")
    names = {layer.name for layer in backbone.layers}
    assert "block0_conv0" in names and "image_rescale" in names  # its own normalization comes along
    assert not names & {"output", "head_dense_0"}  # its head does not
    for layer in backbone.layers:
        for mine, theirs in zip(layer.get_weights(), earlier.get_layer(layer.name).get_weights(), strict=True):
            assert np.array_equal(mine, theirs)
    assert model.output.shape[-1] == 5 and model.get_layer("output").get_weights()[0].shape[0] == 16
    images = np.random.default_rng(0).uniform(0, 16, size=(4, 8, 8, 1)).astype("float32")
    body = earlier.get_layer("global_avgpool").output
    import keras

    expected = keras.Model(earlier.inputs, body)(images)
    assert np.allclose(backbone(images), expected, atol=1e-6)  # raw pixels in, as the earlier run took them


def test_fine_tuning_freezes_then_unfreezes_and_history_shows_it(folder):
    run = run_spec(folder / "later.yaml", out=folder / "later")
    rows = history(run)
    assert [row["phase"] for row in rows] == ["0.0", "1.0", "1.0", "1.0"]
    frozen, unfrozen = float(rows[0]["trainable_params"]), float(rows[1]["trainable_params"])
    assert frozen == 16 * 5 + 5  # the new output layer alone
    assert unfrozen > frozen + 1000
    rates = [float(row["learning_rate"]) for row in rows]
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.001)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert verification["keras"]["passed"] is True


def _epoch(path: Path) -> int:
    try:
        return json.loads(path.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_after_the_unfreeze_then_resume_matches_the_uninterrupted_run(folder):
    """SIGKILL once epoch 2 (the first unfrozen one) is checkpointed; --resume continues in the
    unfrozen phase and ends with the uninterrupted run's metrics and history, byte for byte."""
    uninterrupted = folder / "later"
    if not (uninterrupted / "metrics.json").exists():
        run_spec(folder / "later.yaml", out=uninterrupted)
    out = folder / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "dlpipe.cli", "run", str(folder / "later.yaml"), "--out",
                                str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    summary = out / "checkpoints" / "last.json"
    deadline = time.monotonic() + 300
    try:
        while _epoch(summary) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert _epoch(summary) in (2, 3) and not (out / "metrics.json").exists()
    killed_at = _epoch(summary)
    assert run_spec(folder / "later.yaml", out=out, resume=True) == out
    assert json.loads((out / "run.json").read_text())["resumed_from_epoch"] == killed_at
    assert (out / "history.csv").read_bytes() == (uninterrupted / "history.csv").read_bytes()
    assert (out / "metrics.json").read_bytes() == (uninterrupted / "metrics.json").read_bytes()


def test_an_application_loads_a_weights_file_without_its_top(folder):
    import keras

    net = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                              pooling="avg")
    rng = np.random.default_rng(1)
    net.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in net.get_weights()])
    net.save_weights(folder / "small.weights.h5")
    spec = folder / "app.yaml"
    spec.write_text(LATER.replace("from_run: earlier", "application: MobileNetV3Small\n  weights: small.weights.h5\n"
                                  "  input_size: [32, 32]"))
    model = build(spec)
    backbone = model.get_layer("backbone")
    for mine, theirs in zip(backbone.get_weights(), net.get_weights(), strict=True):
        assert np.array_equal(mine, theirs)
    assert model.get_layer("image_channels") and model.get_layer("image_resize")


APPLICATION = """\
version: 1
name: mobilenet
task: classification
seed: 2
data:
  source: {type: builtin, name: digits}
  features: [{name: image, type: image}]
  target: {name: label, label_map: {"0": "0", "1": "1"}, on_unknown: drop}
  split: {train: 0.5, validation: 0.1, test: 0.4}
model:
  type: backbone
  application: MobileNetV3Small
  weights: random
  input_size: [32, 32]
  fine_tune: {freeze_epochs: 1, unfreeze: 5, learning_rate_factor: 0.5, batch_norm: train}
training: {epochs: 2, batch_size: 32, progress: none}
export:
  formats: [keras, saved_model, tflite]
  tflite: {quantization: [float32]}
"""


def test_an_application_trains_freezes_unfreezes_and_exports_raw_image_models(tmp_path):
    import keras

    (tmp_path / "spec.yaml").write_text(APPLICATION)
    run = run_spec(tmp_path / "spec.yaml", out=tmp_path / "run")
    rows = history(run)
    assert [row["phase"] for row in rows] == ["0.0", "1.0"]
    frozen, unfrozen = (float(row["trainable_params"]) for row in rows)
    assert frozen == 576 + 1  # the sigmoid output on the pooled 576 features
    model = keras.saving.load_model(run / "model.keras", compile=False)
    backbone = model.get_layer("backbone")
    top = [layer for layer in backbone.layers if layer.trainable_weights]
    assert len(top) == 5 + sum(isinstance(layer, keras.layers.BatchNormalization) for layer in top)
    assert unfrozen == frozen + sum(int(np.prod(w.shape)) for layer in top for w in layer.trainable_weights)
    verification = json.loads((run / "export" / "verification.json").read_text())
    for key in ("keras", "saved_model", "tflite/float32"):
        assert verification[key]["passed"] is True, (key, verification[key])
    assert model.inputs[0].shape[1:] == (8, 8, 1)  # raw 8×8 grey digits in; 32×32 RGB inside


def test_validate_deep_finds_the_earlier_run_beside_the_spec(folder):
    """`from_run: earlier` is relative to the spec's folder, not the working directory."""
    from click.testing import CliRunner

    from dlpipe.cli import main

    assert Path.cwd() != folder
    result = CliRunner().invoke(main, ["validate", "--deep", str(folder / "later.yaml")])
    assert result.exit_code == 0, result.output
    import re

    assert re.search(r"\n  backbone +Functional ", result.output) and "output shape: (batch, 5)" in result.output
