"""The training environment: precision, XLA, op determinism, and which strategy and which
process writes, as run.json records them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlpipe.training import distribute
from dlpipe.training.determinism import resolve_jit, resolve_precision


def test_auto_means_float32_and_no_xla_on_a_cpu():
    assert resolve_precision("auto", []) == "float32"
    assert resolve_jit("auto", []) is False
    assert resolve_jit("auto", ["GPU:0"]) is True
    assert (resolve_precision("mixed_float16", []), resolve_jit(True, [])) == ("mixed_float16", True)


def test_auto_determinism_gives_way_to_xla():
    from dlpipe.training.determinism import resolve_deterministic

    assert [resolve_deterministic("auto", jit) for jit in (False, True)] == [True, False]
    assert resolve_deterministic(True, False) is True and resolve_deterministic(False, False) is False


def test_xla_and_op_determinism_together_are_refused(tmp_path):
    from dlpipe.errors import SpecError
    from dlpipe.spec import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text("version: 1\nname: t\ntask: classification\ndata:\n  source: {type: builtin, name: iris}\n"
                    "  target: {name: target}\nmodel: {type: mlp}\n"
                    "training: {jit_compile: true, deterministic: true}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == (f"{path}:8:25: training.jit_compile: XLA cannot compile under op determinism "
                                 "(Keras turns it off): set training.deterministic to false or auto, or "
                                 "jit_compile to false or auto")


def test_strategy_auto(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert [distribute.resolve("auto", gpus) for gpus in (0, 1, 2)] == ["none", "none", "mirrored"]
    assert distribute.resolve("mirrored", 0) == "mirrored"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert distribute.resolve("auto", 0) == "multi_worker"


@pytest.mark.parametrize("config, chief, tasks", [
    (None, True, 1),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True, 2),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False, 2),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False, 2),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True, 2),
])
def test_tf_config_names_the_chief(monkeypatch, config, chief, tasks):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    here = distribute.cluster()
    assert (here.chief, here.tasks) == (chief, tasks)
    assert distribute.writes_run_directory("multi_worker") is chief
    assert distribute.writes_run_directory("none") is True


def test_a_broken_tf_config_is_one_clear_error(monkeypatch):
    from dlpipe.errors import DlpipeError

    monkeypatch.setenv("TF_CONFIG", "{cluster: nope")
    with pytest.raises(DlpipeError, match=r"^TF_CONFIG: not a valid cluster description"):
        distribute.cluster()


@pytest.mark.slow
def test_mixed_precision_and_xla_train_and_are_recorded(tmp_path):
    """On this CPU `auto` would choose neither; asked for, both work: float16 compute with
    loss scaling, float32 output and weights, an XLA-compiled step, and a checkpoint
    holding the loss-scale state."""
    keras = pytest.importorskip("keras")
    from dlpipe.runner import run_spec
    from dlpipe.training import checkpoints

    spec = tmp_path / "spec.yaml"
    spec.write_text("""\
version: 1
name: precision
task: classification
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
prepare: {normalization: {numerical: {type: zscore}}}
model: {type: mlp, units: [16]}
training: {epochs: 2, batch_size: 64, optimizer: {type: adam, learning_rate: 0.01}, precision: mixed_float16,
           jit_compile: true, progress: none, tensorboard: false}
export: {formats: []}
""")
    try:
        out = run_spec(spec, out=tmp_path / "run")
        record = json.loads((out / "run.json").read_text())
        assert record["training"] == {"precision": "mixed_float16", "jit_compile": True, "strategy": "none",
                                      "replicas": 1, "workers": 1}
        assert record["deterministic"] is False  # auto: off, so that XLA may compile
        model = keras.saving.load_model(out / "model.keras", compile=False)
        assert model.get_layer("dense_0").dtype_policy.name == "mixed_float16"
        assert model.get_layer("dense_0").compute_dtype == "float16"
        assert model.get_layer("output").compute_dtype == "float32"
        assert all(w.dtype == "float32" for w in model.weights)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["test"]["accuracy"] > 0.85
        last = checkpoints.read(out / "checkpoints" / "last.npz")
        assert np.isfinite(last.record["history"]["loss"]).all()
        # The loss-scale optimizer's own variables (scale, growth counter) come first.
        assert len(last.optimizer) > len([w for w in model.trainable_weights]) * 2
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_configure_records_determinism_and_bfloat16():
    pytest.importorskip("keras")
    import keras

    from dlpipe.spec.training import Training
    from dlpipe.training.determinism import configure

    try:
        chosen = configure(5, Training(precision="mixed_bfloat16", deterministic=False))
        assert chosen["deterministic"] is False
        assert chosen["training"]["precision"] == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        chosen = configure(5, Training())
        assert (chosen["deterministic"], chosen["training"]["precision"], chosen["training"]["jit_compile"]) == (
            True, "float32", False)
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_progress_bar_on_a_terminal_one_line_per_epoch_otherwise(monkeypatch):
    import sys

    from dlpipe.training.fit import verbosity

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert verbosity("auto") == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert verbosity("auto") == 2
    assert [verbosity(p) for p in ("bar", "epoch", "none")] == [1, 2, 0]


@pytest.mark.slow
def test_tensorboard_is_skipped_with_a_notice_without_the_package(monkeypatch, tmp_path, capsys):
    pytest.importorskip("keras")
    import importlib.util

    from dlpipe.training import callbacks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert callbacks.tensorboard(tmp_path / "logs") is None
    assert capsys.readouterr().err == (
        "[dlpipe] notice: TensorBoard logs skipped: the tensorboard package is not installed "
        "(pip install 'dlpipe[tensorboard]', or set training.tensorboard: false)\n")
    assert not (tmp_path / "logs").exists()
