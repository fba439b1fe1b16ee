"""Compression (`compression.pruning` and `quantization_aware`) on `backend: jax`, in a fresh
process where TensorFlow cannot be imported (tests/test_backend.py's hook): a tiny digits CNN
pruned to half its weights and trained with int8 simulated reaches its target sparsity and its
accuracy band, and exports a .keras file of plain layers holding the pruned, int8-grid kernels;
converted to int8 TFLite afterwards (`dlpipe export`, in this process), the file scores what the
run's metrics say.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _killed import DIGITS_CNN
from test_backend import dlpipe_without_tensorflow

SPEC = """\
version: 1
name: compressed-on-jax
task: classification
seed: 4
backend: jax
""" + DIGITS_CNN + """\
  global_pool: flatten
  head: {units: [32], dropout: 0.1}
training:
  epochs: 5
  batch_size: 32
  optimizer: {type: adam, learning_rate: 3.0e-3}
  progress: none
evaluation: {baselines: false}
compression:
  pruning:
    sparsity: 0.5
    schedule: {begin_epoch: 2, end_epoch: 3}
    frequency: 4
    scope: global
  quantization_aware: {start_epoch: 4}
export: {formats: [keras]}
"""


@pytest.mark.slow
def test_a_pruned_quantization_aware_cnn_trains_and_exports_on_jax_without_tensorflow(tmp_path):
    import keras

    from dlpipe.architectures.quantization import QuantizedConv2D, QuantizedDense
    from dlpipe.modelfile import load_keras_model

    (tmp_path / "spec.yaml").write_text(SPEC)
    out = tmp_path / "run"
    result = dlpipe_without_tensorflow("run", str(tmp_path / "spec.yaml"), "--out", str(out),
                                       env={"DLPIPE_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pruning: target sparsity 0.5 reached" in result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["backend"] == "jax" and "tensorflow" not in record["versions"]
    pruning = record["pruning"]
    assert pruning["target"] == 0.5 and abs(pruning["sparsity"] - 0.5) <= 1 / pruning["weights"], pruning
    accuracy = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    assert accuracy >= 0.8, accuracy  # 10 classes; seen: 0.9x
    assert json.loads((out / "export/verification.json").read_text())["keras"]["passed"] is True

    # Trained (this process: TensorFlow's Keras, so the .keras files cross backends too): the
    # int8-simulating layers, simulating; exported: plain layers whose kernels are the pruned
    # ones rounded to the int8 grid, with exactly the zeros the run reported.
    trained = load_keras_model(out / "model.keras")
    simulating = [layer for layer in trained.layers if isinstance(layer, (QuantizedConv2D, QuantizedDense))]
    assert len(simulating) == 3 and all(float(keras.ops.convert_to_numpy(layer.quantizing)) == 1.0
                                        for layer in simulating)
    exported = load_keras_model(out / "export/keras/model.keras")
    assert not any(isinstance(layer, (QuantizedConv2D, QuantizedDense)) for layer in exported.layers)
    zeros = total = 0
    for layer in simulating:
        kernel = keras.ops.convert_to_numpy(exported.get_layer(layer.name).kernel)
        zeros, total = zeros + int(np.sum(kernel == 0)), total + kernel.size
        per_channel = isinstance(layer, QuantizedConv2D)
        bound = np.abs(kernel).max(axis=tuple(range(kernel.ndim - 1)) if per_channel else None)
        steps = kernel / (bound / 127)
        assert np.allclose(steps, np.round(steps), atol=1e-3), layer.name  # on TFLite's int8 grid
    assert total == pruning["weights"] and zeros / total >= 0.5 - 1 / total, (zeros, total)

    # Converted later where TensorFlow is (this process), the int8 TFLite file scores what the
    # run's metrics.json says: the trained model simulates int8 at the ranges the file holds
    # (training's running ranges had it 1.7 points below the file).
    pytest.importorskip("ai_edge_litert")
    from dlpipe.finished import export_run
    from test_quantization_aware import assert_simulates_the_int8_file

    export_run(out, formats=["tflite"], overrides=["export.tflite.quantization=[int8]"])
    assert_simulates_the_int8_file(out, trained)
