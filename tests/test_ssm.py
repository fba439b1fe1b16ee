"""The selective state-space model (`model.type: ssm`, graph layer `MambaBlock`): its scan
against the recurrence written out step by step, causality, the parameter count by hand and
from `dlpipe validate --deep`, and the graph layer. Training, the .keras round trip and the
JAX build are in tests/test_architectures.py with the other architectures."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main

pytestmark = pytest.mark.slow

SPEC = """\
name: {name}
task: classification
data:
  source: {{type: builtin, name: order_pairs}}
  features: [{{name: {feature}, type: {feature_type}}}]
  target: {{name: label}}
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
training: {{epochs: 1, batch_size: 32, progress: none}}
model:
{model}
"""


def sequential_scan(u, delta, a, b, c, d):
    """The recurrence one step at a time, in float64."""
    batch, steps, channels = u.shape
    h = np.zeros((batch, channels, a.shape[1]))
    y = np.zeros((batch, steps, channels))
    for t in range(steps):
        h = np.exp(delta[:, t, :, None] * a) * h + (delta[:, t] * u[:, t])[..., None] * b[:, t, None, :]
        y[:, t] = (h * c[:, t, None, :]).sum(-1) + u[:, t] * d
    return y


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("steps", [1, 2, 37, 64])
def test_both_scans_equal_the_recurrence(steps, parallel):
    from keras import ops

    from dlpipe.architectures.ssm import selective_scan

    rng = np.random.default_rng(steps)
    batch, channels, state = 2, 5, 3
    u = rng.normal(size=(batch, steps, channels)).astype("float32")
    delta = rng.uniform(0.01, 0.5, size=(batch, steps, channels)).astype("float32")
    a = -rng.uniform(0.5, 3.0, size=(channels, state)).astype("float32")
    b, c = (rng.normal(size=(batch, steps, state)).astype("float32") for _ in range(2))
    d = rng.normal(size=channels).astype("float32")
    found = ops.convert_to_numpy(selective_scan(u, delta, a, b, c, d, parallel=parallel))
    np.testing.assert_allclose(found, sequential_scan(u, delta, a, b, c, d), atol=2e-5)


def test_a_block_is_causal_and_starts_with_mambas_step_sizes():
    import keras
    from keras import ops

    from dlpipe.architectures.ssm import MambaBlock

    keras.utils.set_random_seed(0)
    block = MambaBlock(state_size=4)
    x = np.random.default_rng(0).normal(size=(2, 20, 8)).astype("float32")
    y = ops.convert_to_numpy(block(x))
    changed = x.copy()
    changed[:, 12:] += 1.0  # the future changes
    y2 = ops.convert_to_numpy(block(changed))
    np.testing.assert_array_equal(y[:, :12], y2[:, :12])
    assert np.abs(y[:, 12:] - y2[:, 12:]).min() > 0
    step = ops.convert_to_numpy(ops.softplus(block.dt_bias))
    assert step.min() >= 1e-3 * 0.999 and step.max() <= 1e-1 * 1.001
    a = -np.exp(ops.convert_to_numpy(block.a_log))
    np.testing.assert_allclose(a, -np.tile(np.arange(1, 5), (16, 1)), rtol=1e-6)


def deep(tmp_path, text: str) -> tuple[int, str, str]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", "--deep", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_deep_counts_the_parameters_keras_counts_and_the_hand_count(tmp_path):
    from test_architectures import build_spec

    from dlpipe.architectures.ssm import block_parameters

    model_text = "  {type: ssm, blocks: 2, model_dim: 24, state_size: 6, expand: 3, conv_width: 3}"
    text = SPEC.format(name="ssm-count", feature="signal", feature_type="sequence", model=model_text)
    code, out, err = deep(tmp_path, text)
    assert code == 0, err
    shown = int(re.search(r"^  parameters: (\d+) ", out, re.M).group(1))
    model = build_spec(text, tmp_path)
    block = block_parameters(24, 6, 3, 3)
    # By hand: inner width 72, Δ rank ⌈24/16⌉ = 2: in 24·144, conv 3·72 + 72, x 72·(2 + 12),
    # Δ 2·72 + 72, A 72·6, D 72, out 72·24.
    assert block == 24 * 144 + 3 * 72 + 72 + 72 * 14 + 2 * 72 + 72 + 72 * 6 + 72 + 72 * 24 == 7200
    # 2 channels projected to 24; two blocks each with a layer norm; the final norm; one sigmoid.
    expected = (2 * 24 + 24) + 2 * (2 * 24 + block) + 2 * 24 + (24 + 1)
    assert shown == model.count_params() == expected
    assert re.search(rf"^  ssm_block1 +MambaBlock +\(batch, 16, 24\) +{block:,}$", out, re.M), out


def test_a_graph_names_the_block_and_deep_locates_a_bad_argument(tmp_path):
    from dlpipe.architectures.ssm import block_parameters

    graph = """\
  type: graph
  nodes:
    - {name: norm, layer: LayerNormalization, inputs: [signal]}
    - {name: mamba, layer: MambaBlock, args: {state_size: 4, expand: 2}, inputs: [norm]}
    - {name: sum, layer: Add, inputs: [signal, mamba]}
    - {name: pool, layer: GlobalAveragePooling1D, inputs: [sum]}"""
    code, out, err = deep(tmp_path, SPEC.format(name="graph-ssm", feature="signal", feature_type="sequence",
                                                model=graph))
    assert code == 0, err
    assert re.search(rf"^  mamba +MambaBlock +\(batch, 16, 2\) +{block_parameters(2, 4, 2, 4)}$", out, re.M), out
    code, out, err = deep(tmp_path, SPEC.format(name="graph-ssm", feature="signal", feature_type="sequence",
                                                model=graph.replace("state_size: 4", "state_size: 0")))
    assert (code, out) == (1, "")
    assert err.strip().endswith("model.nodes[1].args: node 'mamba' (MambaBlock): MambaBlock state_size must be "
                                "a positive integer, got 0"), err


def test_validate_refuses_a_mistyped_ssm_key(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(name="typo", feature="tokens", feature_type="tokens",
                                model="  {type: ssm, state_sise: 8}"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert "model.state_sise" in result.stderr and "state_size" in result.stderr, result.stderr


JAX_SCANS = """
import json, sys
import numpy as np
import keras
from dlpipe.architectures.ssm import MambaBlock

x = np.random.default_rng(0).normal(size=(2, 33, 8)).astype("float32")
sequential = MambaBlock(state_size=4, name="sequential")
parallel = MambaBlock(state_size=4, scan="parallel", name="parallel")
y = sequential(x)
parallel.build(x.shape)
parallel.set_weights(sequential.get_weights())
print(json.dumps({"backend": keras.backend.backend(), "parameters": sequential.count_params(),
                  "diff": float(np.abs(np.asarray(y) - np.asarray(parallel(x))).max())}))
"""


def test_both_scans_run_on_jax_and_agree():
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    from dlpipe.architectures.ssm import block_parameters

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (optional: pip install 'dlpipe[jax]')")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", JAX_SCANS], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["backend"] == "jax" and found["parameters"] == block_parameters(8, 4, 2, 4)
    assert found["diff"] <= 1e-5


def test_tflite_and_onnx_are_refused_for_the_sequential_scan_with_the_way_out(tmp_path):
    path = tmp_path / "spec.yaml"
    text = SPEC.format(name="export", feature="tokens", feature_type="tokens", model="  {type: ssm}")
    path.write_text(text + "export: {formats: [keras, saved_model, tflite, onnx]}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    reason = ("cannot export a model of type ssm with scan sequential: its converter cannot turn the sequential "
              "scan's loop into builtin ops; with scan: parallel (the same outputs, no loop) it converts; "
              "use keras or saved_model")
    assert result.stderr.splitlines() == [f"{path}:11:40: export.formats[2]: tflite {reason}",
                                          f"{path}:11:48: export.formats[3]: onnx {reason}"]
    path.write_text(text.replace("{type: ssm}", "{type: ssm, scan: parallel}")
                    + "export: {formats: [keras, saved_model, tflite, onnx]}\n")
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


def test_graph_nodes_that_a_format_cannot_convert_are_refused_at_validate(tmp_path):
    # Measured: a graph MambaBlock with the sequential scan fails both converters, a graph LSTM
    # fails TFLite's (ONNX converts it), as the ssm and rnn model types do.
    path = tmp_path / "spec.yaml"
    graph = """\
  type: graph
  nodes:
    - {name: mamba, layer: MambaBlock, args: {state_size: 4}, inputs: [signal]}
    - {name: rec, layer: LSTM, args: {units: 8, return_sequences: true}, inputs: [mamba]}
    - {name: pool, layer: GlobalAveragePooling1D, inputs: [rec]}"""
    text = SPEC.format(name="graph-export", feature="signal", feature_type="sequence", model=graph)
    path.write_text(text + "export: {formats: [keras, saved_model, tflite, onnx]}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    reason = ("cannot export the graph node 'mamba' (MambaBlock with scan sequential): its converter cannot turn "
              "the sequential scan's loop into builtin ops; with scan: parallel (the same outputs, no loop) it "
              "converts; use keras or saved_model")
    assert result.stderr.splitlines() == [f"{path}:15:40: export.formats[2]: tflite {reason}",
                                          f"{path}:15:48: export.formats[3]: onnx {reason}"]
    path.write_text(text.replace("{state_size: 4}", "{state_size: 4, scan: parallel}")
                    + "export: {formats: [keras, saved_model, tflite, onnx]}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:15:40: export.formats[2]: tflite cannot export the graph node 'rec' (LSTM, a recurrent layer): "
        "TensorFlow Lite's converter cannot turn the recurrent layers' loop into builtin ops; use keras or "
        "saved_model or onnx"]
    path.write_text(text.replace("{state_size: 4}", "{state_size: 4, scan: parallel}")
                    + "export: {formats: [keras, saved_model, onnx]}\n")
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0, path.read_text()


def test_a_parallel_scan_ssm_exports_to_every_format_and_each_verifies(tmp_path):
    import json

    from dlpipe.runner import run_spec

    for module in ("onnx", "onnxruntime", "tf2onnx", "ai_edge_litert"):
        pytest.importorskip(module)
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(name="export", feature="tokens", feature_type="tokens",
                                model="  {type: ssm, blocks: 1, model_dim: 8, state_size: 4, scan: parallel}")
                    + "export: {formats: [keras, saved_model, tflite, onnx], tflite: {quantization: [float32]}}\n")
    run = run_spec(path, out=tmp_path / "run", command=["pytest"])
    results = json.loads((run / "export" / "verification.json").read_text())
    assert sorted(results) == ["keras", "onnx", "saved_model", "tflite/float32"]
    for key, entry in results.items():
        assert entry["passed"] is True and entry["max_abs_diff"] <= 1e-5, (key, entry)
