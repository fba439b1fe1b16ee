"""Magnitude pruning (`compression.pruning`, dlpipe/training/pruning.py): the spec's
refusals at their lines, the schedule and masks against plain numpy, a pruned CNN whose
exports hold exact zeros, and a run killed during pruning that resumes to the same
metrics and the same masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _killed import DIGITS_CNN, run_killed
from dlpipe.errors import SpecError
from dlpipe.spec import load_spec

MLP = """\
version: 1
name: prune-mlp
task: classification
seed: 5
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
  split: {train: 0.7, validation: 0.15, test: 0.15}
prepare:
  normalization: {numerical: {type: zscore}}
model: {type: mlp, units: [32, 16]}
training:
  epochs: 5
  batch_size: 32
  progress: none
compression:
  pruning:
    sparsity: 0.75
    schedule: {begin_epoch: 2, end_epoch: 4}
    frequency: 3
export: {formats: []}
"""


def problems(tmp_path: Path, text: str, *overrides: str) -> list[str]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    return [str(p) for p in caught.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# Refusals at their lines (no TensorFlow) ----------------------------------------------------

def test_a_sparsity_of_1_or_more_is_refused_at_its_line(tmp_path):
    text = MLP.replace("sparsity: 0.75", "sparsity: 1.0")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'spec.yaml'}:{line_of(text, 'sparsity: 1.0')}:15: compression.pruning.sparsity: "
        "expected a value < 1, got 1.0"]


def test_a_sparsity_of_0_or_less_is_refused_at_its_line(tmp_path):
    text = MLP.replace("sparsity: 0.75", "sparsity: 0")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'spec.yaml'}:{line_of(text, 'sparsity: 0')}:15: compression.pruning.sparsity: "
        "expected a value > 0, got 0"]


def test_schedule_epochs_outside_training_are_refused_at_their_lines(tmp_path):
    text = MLP.replace("{begin_epoch: 2, end_epoch: 4}", "{begin_epoch: 7, end_epoch: 9}")
    line = line_of(text, "begin_epoch: 7")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'spec.yaml'}:{line}:29: compression.pruning.schedule.begin_epoch: epoch 7 is after the last "
        "training epoch (training.epochs is 5)",
        f"{tmp_path / 'spec.yaml'}:{line}:43: compression.pruning.schedule.end_epoch: epoch 9 is after the last "
        "training epoch (training.epochs is 5)"]
    text = MLP.replace("{begin_epoch: 2, end_epoch: 4}", "{begin_epoch: 4, end_epoch: 3}")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'spec.yaml'}:{line}:29: compression.pruning.schedule.begin_epoch: epoch 4 is after end_epoch (3)"]


def test_a_pruning_spec_on_an_architecture_with_nothing_to_prune_is_refused_at_its_line(tmp_path):
    text = MLP.replace("    frequency: 3\n", "    frequency: 3\n    layers: [conv]\n")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'spec.yaml'}:{line_of(text, 'layers: [conv]')}:13: compression.pruning.layers: a mlp model "
        "has no conv layer to prune; its prunable layers are dense"]


def test_a_cnn_has_conv_layers_to_prune_and_the_spec_round_trips(tmp_path):
    template = Path(__file__).parent.parent / "specs" / "image-classification.yaml"
    spec = load_spec(template, ["compression.pruning={sparsity: 0.8, schedule: {begin_epoch: 2, end_epoch: 10}, "
                                "layers: [conv]}"])
    assert spec.compression.pruning.layers == ["conv"] and spec.compression.pruning.scope == "layer"
    assert type(spec).model_validate(spec.model_dump()) == spec


def test_pruning_is_refused_for_a_task_whose_pipeline_does_not_read_it(tmp_path):
    template = Path(__file__).parent.parent / "specs" / "autoencoder-embeddings.yaml"
    with pytest.raises(SpecError) as caught:
        load_spec(template, ["compression={pruning: {sparsity: 0.5, schedule: {end_epoch: 1}}}"])
    assert [p.path for p in caught.value.problems] == ["compression"]
    assert "the embedding task does not use this key" in caught.value.problems[0].message


# The schedule and the masks (Keras) ----------------------------------------------------------

@pytest.mark.slow
def test_the_polynomial_schedule_rises_from_the_begin_epoch_to_the_target_at_the_end_epoch():
    from dlpipe.training.pruning import polynomial_sparsity

    settings = load_spec_text(MLP).compression.pruning  # begin 2, end 4, target 0.75, power 3
    steps = 10
    assert polynomial_sparsity(9, settings, steps) == 0.0  # epoch 1: not yet
    assert polynomial_sparsity(10, settings, steps) == 0.0  # first step of epoch 2: initial sparsity
    assert polynomial_sparsity(39, settings, steps) == 0.75  # last step of epoch 4: the target
    assert polynomial_sparsity(100, settings, steps) == 0.75
    middle = polynomial_sparsity(10 + 29 // 2, settings, steps)
    assert middle == pytest.approx(0.75 * (1 - (1 - 14 / 29) ** 3))


def load_spec_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(text)
        return load_spec(path)


@pytest.mark.slow
def test_magnitude_masks_zero_exactly_the_smallest_weights_per_layer_and_globally():
    import keras

    from dlpipe.training.pruning import magnitude_masks

    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 5)).astype("float32")
    b = (10 * rng.normal(size=(3, 3, 2, 4))).astype("float32")  # larger: the global cut spares it
    kernels = [keras.Variable(a), keras.Variable(b)]
    for mask, kernel in zip(magnitude_masks(kernels, 0.6, "layer"), (a, b)):
        mask = keras.ops.convert_to_numpy(mask)
        flat = np.abs(kernel).ravel()
        expected = np.ones(flat.size)
        expected[np.argsort(flat, kind="stable")[:round(0.6 * flat.size)]] = 0
        assert np.array_equal(mask.ravel(), expected)
    pooled = np.concatenate([np.abs(a).ravel(), np.abs(b).ravel()])
    cut = np.sort(pooled)[round(0.6 * pooled.size) - 1]
    masks = [keras.ops.convert_to_numpy(m) for m in magnitude_masks(kernels, 0.6, "global")]
    assert sum(int((m == 0).sum()) for m in masks) == round(0.6 * pooled.size)
    for mask, kernel in zip(masks, (a, b)):
        assert np.array_equal(mask == 0, np.abs(kernel) <= cut)
    assert (masks[0] == 0).mean() > (masks[1] == 0).mean()


# A pruned CNN: exact zeros in every export, no mask in the model ------------------------------

CNN = """\
version: 1
name: prune-cnn
task: classification
seed: 3
""" + DIGITS_CNN + """\
  head: {units: [16]}
training:
  epochs: 3
  batch_size: 64
  progress: none
  early_stopping: {patience: 1}
compression:
  pruning:
    sparsity: 0.7
    schedule: {begin_epoch: 1, end_epoch: 2}
    scope: global
export:
  formats: [keras, tflite]
"""


@pytest.mark.slow
def test_a_pruned_cnn_exports_exact_zeros_and_no_mask(tmp_path):
    import keras

    from dlpipe.architectures.assemble import build_model
    from dlpipe.modelfile import load_keras_model
    from dlpipe.runner import run_spec

    (tmp_path / "spec.yaml").write_text(CNN)
    out = run_spec(tmp_path / "spec.yaml", out=tmp_path / "run")
    record = json.loads((out / "run.json").read_text())
    pruning = record["pruning"]
    assert pruning["target"] == 0.7 and pruning["scope"] == "global"
    assert set(pruning["layers"]) == {"block0_conv0/kernel", "head_dense_0/kernel", "output/kernel"}
    assert pruning["sparsity"] == pytest.approx(0.7, abs=1e-4)
    assert "<h2>Pruning</h2>" in (out / "report.html").read_text()

    model = load_keras_model(out / "model.keras")
    zeros = {w.path: float(np.mean(keras.ops.convert_to_numpy(w) == 0)) for w in model.weights
             if w.path in pruning["layers"]}
    assert zeros == {name: layer["sparsity"] for name, layer in pruning["layers"].items()}
    # No wrapper, no mask variable: the same layers and variables as the model built unpruned.
    spec = load_spec(tmp_path / "spec.yaml")
    from dlpipe.data.prepare import prepare

    plain = build_model(spec, prepare(spec, tmp_path, None), None)
    assert [type(layer).__name__ for layer in model.layers] == [type(layer).__name__ for layer in plain.layers]
    assert [w.path for w in model.weights] == [w.path for w in plain.weights]

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "export" / "tflite" / "model_float32.tflite"))
    conv = keras.ops.convert_to_numpy(model.get_layer("block0_conv0").kernel)
    found = False
    for detail in interpreter.get_tensor_details():
        try:
            tensor = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        if tensor.size == conv.size and tensor.dtype == np.float32:  # TFLite holds it as (out, h, w, in)
            assert np.array_equal(np.sort(tensor.ravel()), np.sort(conv.ravel()))
            assert (tensor == 0).sum() == (conv == 0).sum() > 0
            found = True
    assert found


# kill -9 while pruning, then --resume ----------------------------------------------------------

@pytest.mark.slow
def test_kill_during_pruning_then_resume_gives_the_same_metrics_and_masks(tmp_path):
    from dlpipe.runner import run_spec
    from dlpipe.training import checkpoints

    spec = tmp_path / "spec.yaml"
    spec.write_text(MLP)
    uninterrupted = run_spec(spec, out=tmp_path / "uninterrupted")
    killed = tmp_path / "killed"
    # 13 steps an epoch (398 training rows / 32) and a few checkpoint writes after each:
    # kill point 40 falls inside epoch 3, halfway through the pruning schedule (epochs 2-4).
    run_killed(spec, killed, "train:40")
    saved = checkpoints.read(killed / "checkpoints" / "last.npz")
    assert saved.epoch == 2 and not saved.finished
    mid = saved.record["callbacks"]["pruning"]["sparsity"]
    assert 0 < mid < 0.75  # masks of a schedule under way travel with the checkpoint
    assert [float((m == 0).mean()) for m in saved.extra["pruning"]] == pytest.approx([mid] * 3, abs=0.01)

    assert run_spec(spec, out=killed, resume=True) == killed
    assert json.loads((killed / "run.json").read_text())["resumed_from_epoch"] == 2
    assert (killed / "metrics.json").read_bytes() == (uninterrupted / "metrics.json").read_bytes()
    first, second = (json.loads((run / "run.json").read_text()) for run in (uninterrupted, killed))
    assert first["weights_sha256"] == second["weights_sha256"] and first["pruning"] == second["pruning"]
    masks = [checkpoints.read(run / "checkpoints" / "last.npz").extra["pruning"] for run in (uninterrupted, killed)]
    assert len(masks[0]) == 3 and all(np.array_equal(a, b) for a, b in zip(*masks))
    assert [float((m == 0).mean()) for m in masks[0]] == pytest.approx([0.75] * 3, abs=0.01)
