"""Quantization-aware training (`compression.quantization_aware`,
dlpipe/architectures/quantization.py): the int8 grid of the kernels, the rebuild into plain
layers before export, a tiny QAT run exported as an int8 TFLite file, and the refusal
without one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _killed import DIGITS_CNN
from dlpipe.errors import SpecError
from dlpipe.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

CNN = """\
version: 1
name: qat-cnn
task: classification
seed: 3
""" + DIGITS_CNN + """\
  global_pool: flatten
  head: {units: [16]}
training:
  epochs: 4
  batch_size: 32
  optimizer: {type: adam, learning_rate: 3.0e-3}
  progress: none
evaluation: {baselines: false}
compression:
  quantization_aware: {start_epoch: 2}
export:
  formats: [keras, tflite]
  tflite: {quantization: [int8]}
"""


def test_quantization_aware_training_without_an_int8_tflite_export_is_refused_at_its_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(CNN.replace("  tflite: {quantization: [int8]}\n", ""))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    line = next(i for i, text in enumerate(CNN.splitlines(), 1) if "quantization_aware" in text)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}:23: compression.quantization_aware: quantization-aware training is for an int8 TFLite "
        "export: add tflite to export.formats and int8 to export.tflite.quantization"]


def test_a_start_epoch_after_training_is_refused_at_its_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(CNN.replace("start_epoch: 2", "start_epoch: 5"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    line = next(i for i, text in enumerate(CNN.splitlines(), 1) if "quantization_aware" in text)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}:37: compression.quantization_aware.start_epoch: epoch 5 is after the last training epoch "
        "(training.epochs is 4)"]


@pytest.mark.slow
def test_kernels_are_rounded_to_tflites_symmetric_int8_grid():
    import keras

    from dlpipe.architectures.quantization import quantize_kernel

    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype("float32")
    for per_channel in (True, False):
        rounded = keras.ops.convert_to_numpy(quantize_kernel(keras.ops.convert_to_tensor(kernel), per_channel))
        bound = np.abs(kernel).max(axis=(0, 1, 2) if per_channel else None)
        steps = rounded / (bound / 127)
        assert np.allclose(steps, np.round(steps), atol=1e-3) and np.abs(np.round(steps)).max() == 127
        assert np.abs(rounded - kernel).max() <= (bound / 127 / 2 + 1e-6).max()


@pytest.mark.slow
def test_a_quantization_aware_run_exports_plain_layers_and_an_int8_tflite_file(tmp_path):
    import keras

    from dlpipe.architectures.quantization import QuantizedConv2D, QuantizedDense, quantize_kernel
    from dlpipe.modelfile import load_keras_model
    from dlpipe.runner import run_spec

    (tmp_path / "spec.yaml").write_text(CNN)
    out = run_spec(tmp_path / "spec.yaml", out=tmp_path / "run")
    trained = load_keras_model(out / "model.keras")
    kinds = {type(layer) for layer in trained.layers}
    assert {QuantizedConv2D, QuantizedDense} <= kinds
    for layer in trained.layers:
        if isinstance(layer, (QuantizedConv2D, QuantizedDense)):  # ranges set; int8 simulated
            low, high, on = (float(keras.ops.convert_to_numpy(v)) for v in (layer.input_min, layer.input_max,
                                                                           layer.quantizing))
            assert low <= 0 < high and on == 1.0

    exported = load_keras_model(out / "export" / "keras" / "model.keras")
    assert not any(isinstance(layer, (QuantizedConv2D, QuantizedDense)) for layer in exported.layers)
    conv = trained.get_layer("block0_conv0")
    assert np.array_equal(keras.ops.convert_to_numpy(exported.get_layer("block0_conv0").kernel),
                          keras.ops.convert_to_numpy(quantize_kernel(conv.kernel, per_channel=True)))

    verification = json.loads((out / "export" / "verification.json").read_text())
    assert verification["tflite/int8"]["passed"] and verification["tflite/int8"]["agreement"] >= 0.97
    assert verification["tflite/int8"]["test_metrics"]["accuracy"] >= 0.85
    assert_simulates_the_int8_file(out, trained)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Quantization-aware training</h2>" in report and "3 quantized layers" in report

    # `dlpipe export RUN` scores the same files on the same split as the run's export stage.
    from dlpipe.finished import export_run

    again = export_run(out, formats=["tflite"])
    for key in ("test_metrics", "test_metrics_note"):
        assert again["tflite/int8"][key] == verification["tflite/int8"][key], key


def int8_tensor_ranges(path: Path) -> list[tuple[float, float, float]]:
    """(low, high, step) of every int8 tensor of a TFLite file, as its quantization holds them."""
    from ai_edge_litert.interpreter import Interpreter

    ranges = []
    for tensor in Interpreter(model_path=str(path)).get_tensor_details():
        scale, zero = tensor["quantization"]
        if scale and tensor["dtype"] == np.int8:
            ranges.append((scale * (-128 - zero), scale * (127 - zero), scale))
    return ranges


def assert_simulates_the_int8_file(run: Path, trained) -> None:
    """What the run's metrics.json says is what its int8 TFLite file does: each int8-simulating
    layer's input range is one the file quantizes a tensor to (TFLite's calibration), and the
    trained model's test accuracy is the file's within one test example."""
    import keras

    from dlpipe.architectures.quantization import QuantizedConv2D, QuantizedDense

    recorded = json.loads((run / "run.json").read_text())["quantization_aware"]
    assert recorded["calibration_examples"] > 0
    in_file = int8_tensor_ranges(run / "export" / "tflite" / "model_int8.tflite")
    simulating = [layer for layer in trained.layers if isinstance(layer, (QuantizedConv2D, QuantizedDense))]
    assert sorted(recorded["input_ranges"]) == sorted(layer.name for layer in simulating)
    for layer in simulating:
        low, high = (float(keras.ops.convert_to_numpy(v)) for v in (layer.input_min, layer.input_max))
        assert [low, high] == pytest.approx(recorded["input_ranges"][layer.name])
        # The first convolution's input is the rescaled image (0..1): TensorFlow's converter folds
        # the rescale (1/16) into the convolution, so the file quantizes the raw 0..16 pixels.
        factors = (1.0, 16.0) if layer is simulating[0] else (1.0,)
        assert any(abs(low * f - lo) <= step / 2 and abs(high * f - hi) <= step / 2
                   for lo, hi, step in in_file for f in factors), \
            (layer.name, low, high)  # training's running range (narrower) is no tensor's range

    verification = json.loads((run / "export" / "verification.json").read_text())
    tflite = verification["tflite/int8"]["test_metrics"]["accuracy"]
    simulated = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    examples = json.loads((run / "export" / "model_card.json").read_text())["data"]["split_sizes"]["test"]
    assert abs(tflite - simulated) <= 1 / examples + 1e-9, (tflite, simulated)
    assert "simulate int8" in verification["tflite/int8"]["test_metrics_note"]
