"""Every architecture trains on small real or generated data and beats a trivial baseline
by a stated margin, round-trips through model.keras, and `validate --deep` shows the
parameter count Keras counts. Each model trains once (module-scoped fixtures), a few epochs.

Baselines: digits has 10 balanced classes (chance 0.1); order_pairs is balanced (chance
0.5) and only the order of two patterns decides its label, so an order-blind model cannot
beat chance.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.errors import SpecError
from dlpipe.spec.loader import parse
from dlpipe.spec.validation import locate, validate_document

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

DIGITS = """\
name: {name}
task: classification
data:
  source: {{type: builtin, name: digits}}
  features: [{{name: image, type: image}}]
  target: {{name: label}}
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
prepare: {{normalization: {{image: {{type: rescale, scale: 0.0625}}}}}}
training: {{epochs: {epochs}, batch_size: 32, optimizer: {{type: adam, learning_rate: 0.003}}, progress: none}}
model:
{model}
"""

ORDER = """\
name: {name}
task: {task}
data:
  source: {{type: builtin, name: order_pairs}}
  features: [{{name: {feature}, type: {feature_type}}}]
  target: {{name: {target}}}
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
prepare: {{normalization: {{sequence: {{type: zscore}}}}}}
training: {{epochs: {epochs}, batch_size: 32, optimizer: {{type: adam, learning_rate: {lr}}}, progress: none}}
model:
{model}
"""


def digits(name: str, model: str, epochs: int = 5) -> str:
    return DIGITS.format(name=name, model=model, epochs=epochs)


def order(name: str, model: str, *, feature="tokens", target="label", task="classification", epochs=3,
          lr=0.01) -> str:
    feature_type = "tokens" if feature == "tokens" else "sequence"
    return ORDER.format(name=name, model=model, feature=feature, feature_type=feature_type, target=target,
                        task=task, epochs=epochs, lr=lr)


SPECS = {
    "cnn": digits("cnn", "  type: cnn\n  blocks: [{filters: 16}, {filters: 32}]\n  global_pool: flatten"),
    "lstm": order("lstm", "  type: rnn\n  cell: lstm\n  units: [16]\n  embedding_dim: 16"),
    "transformer": order("transformer", "  {type: transformer, blocks: 1, heads: 2, key_dim: 16, model_dim: 32, "
                         "feed_forward: 64, dropout: 0.0}", lr=0.003),
    "ssm": order("ssm", "  {type: ssm, blocks: 1, model_dim: 32, state_size: 8}", lr=0.003),
    "order_blind_mlp": order("order-blind-mlp", "  {type: mlp, units: [64, 64]}", lr=0.003),
    "vit": digits("vit", "  {type: vit, patch_size: 2, blocks: 1, heads: 2, key_dim: 16, model_dim: 32, "
                  "feed_forward: 64, dropout: 0.0}"),
    "autoencoder": digits("autoencoder", "  {type: autoencoder, units: [64], latent: 16}"),
    "graph": digits("graph", """\
  type: graph
  nodes:
    - {name: conv1, layer: Conv2D, args: {filters: 16, kernel_size: 3, padding: same, activation: relu}, inputs: [image]}
    - {name: conv2, layer: Conv2D, args: {filters: 16, kernel_size: 3, padding: same, activation: relu}, inputs: [conv1]}
    - {name: skip, layer: Add, inputs: [conv1, conv2]}
    - {name: pool, layer: MaxPooling2D, inputs: [skip]}
    - {name: flat, layer: Flatten, inputs: [pool]}"""),
    "gru_per_step": order("gru-per-step", "  {type: rnn, cell: gru, units: [16], return_sequences: true}",
                          feature="signal", target="a_seen"),
    "bigru_positions": order("bigru-positions", "  {type: rnn, cell: gru, units: [16], bidirectional: true}",
                             feature="signal", target="positions", task="regression"),
}


@dataclass
class Trained:
    spec: object
    data: object
    model: object
    scores: dict
    output: np.ndarray


def located_for(doc):
    return lambda path, message: SpecError([locate(doc, path, message)])


def train_spec(text: str, base: Path = ROOT) -> Trained:
    """The supervised pipeline's own stages, without a run directory or exports."""
    from dlpipe.architectures.assemble import build_model
    from dlpipe.data.prepare import prepare
    from dlpipe.metrics.evaluate import scores
    from dlpipe.training.compile import compile_model
    from dlpipe.training.determinism import configure
    from dlpipe.training.fit import train

    doc = parse(text, "spec.yaml")
    spec = validate_document(doc)
    data = prepare(spec, base, located_for(doc))
    configure(spec.seed)
    n_classes = len(data.class_names) if data.class_names else None
    model = build_model(spec, data, located_for(doc))
    compile_model(model, spec, n_classes)
    train(model, spec, data)
    test = data.splits["test"]
    output = model.predict(test.x, verbose=0)
    found = scores(spec.task, spec.evaluation.metrics, test.y, output, n_classes,
                   multi_label=spec.data.target.multi_label)
    return Trained(spec, data, model, found, output)


@pytest.fixture(scope="module")
def trained():
    """Each architecture trained once, on first use."""
    cache: dict[str, Trained] = {}

    def get(name: str) -> Trained:
        if name not in cache:
            cache[name] = train_spec(SPECS[name])
        return cache[name]

    return get


def test_cnn_digits_reaches_095_in_5_epochs(trained):
    result = trained("cnn")
    assert result.spec.training.epochs == 5
    assert result.scores["accuracy"] >= 0.95


@pytest.mark.parametrize("name", ["lstm", "transformer", "ssm"])
def test_sequence_models_learn_which_pattern_comes_first(trained, name):
    assert trained(name).scores["accuracy"] >= 0.9


def test_an_order_blind_mlp_stays_near_chance(trained):
    # A bag of token embeddings sees what occurs, not in which order: every row holds A and B.
    assert abs(trained("order_blind_mlp").scores["accuracy"] - 0.5) <= 0.08


def test_vit_on_digits_is_well_above_chance(trained):
    assert trained("vit").scores["accuracy"] >= 0.6  # chance: 0.1


def test_graph_with_a_residual_connection_learns_digits(trained):
    result = trained("graph")
    assert result.scores["accuracy"] >= 0.9
    assert type(result.model.get_layer("skip")).__name__ == "Add"


def test_autoencoder_reconstructs_and_its_encoder_embeds(trained):
    from sklearn.neighbors import KNeighborsClassifier

    result = trained("autoencoder")
    assert result.scores["accuracy"] >= 0.9
    encoder, decoder = result.model.get_layer("encoder"), result.model.get_layer("decoder")
    flat = {name: split.x["image"].reshape(len(split), -1) * 0.0625 for name, split in result.data.splits.items()}
    reconstruction = decoder.predict(encoder.predict(flat["test"], verbose=0), verbose=0)
    error = np.mean((reconstruction - flat["test"]) ** 2)
    baseline = np.mean((flat["train"].mean(axis=0) - flat["test"]) ** 2)  # the mean training image
    assert error <= 0.5 * baseline, (error, baseline)
    embeddings = {name: encoder.predict(x, verbose=0) for name, x in flat.items()}
    assert embeddings["test"].shape == (len(flat["test"]), 16)
    knn = KNeighborsClassifier(5).fit(embeddings["train"], result.data.splits["train"].y)
    assert knn.score(embeddings["test"], result.data.splits["test"].y) >= 0.9


def test_many_to_many_gru_labels_every_step(trained):
    result = trained("gru_per_step")
    train_y, test_y = result.data.splits["train"].y, result.data.splits["test"].y
    assert result.output.shape == test_y.shape  # one probability per step
    # Baseline: the best constant per step, learned from the training split.
    constant = (train_y.mean(axis=0) >= 0.5).astype(int)
    baseline = float((test_y == constant).mean())
    assert result.scores["accuracy"] >= 0.9 and result.scores["accuracy"] >= baseline + 0.15, baseline
    assert result.scores["accuracy"] == pytest.approx(float(((result.output >= 0.5) == test_y).mean()), abs=1e-12)


def test_bidirectional_gru_regresses_two_outputs_on_a_time_series(trained):
    from sklearn.metrics import r2_score

    result = trained("bigru_positions")
    test_y = result.data.splits["test"].y
    assert result.output.shape == test_y.shape == (len(test_y), 2)
    # Our metrics compute in float64 (float32 sums drift by ~1e-3 here); so does the reference.
    reference = r2_score(test_y.astype("float64"), result.output.astype("float64"))
    assert result.scores["r2"] == pytest.approx(reference, abs=1e-9)
    assert result.scores["r2"] >= 0.8  # predicting the mean scores 0


def test_multi_label_head_and_metrics(tmp_path):
    from sklearn import metrics as sk
    from sklearn.datasets import load_digits

    bunch = load_digits()
    digit = bunch.target
    labels = np.stack([digit % 2 == 0, digit >= 5, np.isin(digit, (2, 3, 5, 7))], axis=1).astype(np.int64)
    np.savez(tmp_path / "digits.npz", image=bunch.images.astype(np.float32), labels=labels)
    text = digits("multi-label", "  {type: mlp, units: [64]}").replace(
        "{type: builtin, name: digits}", "{type: npz, path: digits.npz}").replace(
        "target: {name: label}", "target: {name: labels, multi_label: true, class_names: [even, high, prime]}")
    text += "evaluation: {metrics: [accuracy, f1_micro, f1_macro, roc_auc, log_loss]}\n"
    result = train_spec(text, tmp_path)
    assert result.model.layers[-1].activation.__name__ == "sigmoid" and result.output.shape[1] == 3
    assert result.model.loss.name == "binary_crossentropy"
    y = result.data.splits["test"].y.astype(int)
    predicted = (result.output >= 0.5).astype(int)
    assert result.scores["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-12)
    assert result.scores["f1_micro"] == pytest.approx(sk.f1_score(y, predicted, average="micro"), abs=1e-12)
    assert result.scores["roc_auc"] == pytest.approx(sk.roc_auc_score(y, result.output), abs=1e-12)
    majority = float((y == (y.mean(axis=0) >= 0.5)).all(axis=1).mean())
    assert result.scores["accuracy"] >= 0.8 and result.scores["accuracy"] >= majority + 0.5, majority


ROUND_TRIP = ["cnn", "lstm", "transformer", "ssm", "order_blind_mlp", "vit", "autoencoder", "graph", "gru_per_step",
              "bigru_positions"]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_model_keras_round_trip_gives_identical_predictions(trained, name, tmp_path):
    import keras

    result = trained(name)
    result.model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    test = result.data.splits["test"].x
    np.testing.assert_array_equal(loaded.predict(test, verbose=0), result.model.predict(test, verbose=0))


def test_a_fresh_process_loads_models_with_dlpipe_layers(trained, tmp_path):
    """Positions, the class token and the reconstruction loss are dlpipe layers: importing
    dlpipe.architectures.layers is all a fresh process needs to load them in safe mode."""
    expected = {}
    for name in ("transformer", "vit", "autoencoder"):
        result = trained(name)
        result.model.save(tmp_path / f"{name}.keras")
        x = result.data.splits["test"].x
        np.savez(tmp_path / f"{name}_x.npz", **x)
        expected[name] = result.model.predict(x, verbose=0)
    code = ("import sys, numpy as np, keras, dlpipe.architectures.layers\n"
            "for name in ('transformer', 'vit', 'autoencoder'):\n"
            "    model = keras.saving.load_model(f'{sys.argv[1]}/{name}.keras', safe_mode=True, compile=False)\n"
            "    x = dict(np.load(f'{sys.argv[1]}/{name}_x.npz'))\n"
            "    np.save(f'{sys.argv[1]}/{name}_out.npy', model.predict(x, verbose=0))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, output in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_out.npy"), output)


# --- dlpipe validate --deep ---------------------------------------------------------------

def at(path: Path, line: int, column: int) -> str:
    """The spec text from a reported line:column on (both 1-based)."""
    return path.read_text().splitlines()[line - 1][column - 1:]


def validate_deep(*paths: Path | str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["validate", "--deep", *map(str, paths)])
    return result.exit_code, result.stdout, result.stderr


def test_deep_reports_a_shape_mismatch_at_the_node(tmp_path):
    spec = tmp_path / "graph.yaml"
    spec.write_text(digits("bad-graph", """\
  type: graph
  nodes:
    - {name: flat, layer: Flatten, inputs: [image]}
    - {name: small, layer: Dense, args: {units: 16}, inputs: [flat]}
    - {name: big, layer: Dense, args: {units: 32}, inputs: [flat]}
    - {name: sum, layer: Add, inputs: [small, big]}"""))
    plain = CliRunner().invoke(main, ["validate", str(spec)])
    assert plain.exit_code == 0  # shapes are only known once the model is built
    code, out, err = validate_deep(spec)
    assert code == 1 and out == ""
    assert err.splitlines() == [f"{spec}:16:7: model.nodes[3]: node 'sum' (Add) cannot take inputs of shape (16,), "
                                "(32,): Inputs have incompatible shapes. Received shapes (16,) and (32,)"]
    assert at(spec, 16, 7).startswith("{name: sum, layer: Add")


def test_deep_locates_a_keras_argument_error_and_a_patch_size(tmp_path):
    bad_argument = tmp_path / "argument.yaml"
    bad_argument.write_text(digits("bad-argument", "  type: graph\n  nodes:\n"
                                   "    - {name: d, layer: Dense, args: {units: 4, unitz: 3}, inputs: [image]}"))
    patch = tmp_path / "patch.yaml"
    patch.write_text(digits("bad-patch", "  {type: vit, patch_size: 3}"))
    code, out, err = validate_deep(bad_argument, patch)
    assert code == 1
    assert err.splitlines() == [
        f"{bad_argument}:13:37: model.nodes[0].args: node 'd' (Dense): Unrecognized keyword arguments passed to "
        "Dense: {'unitz': 3}",
        f"{patch}:11:27: model.patch_size: patch_size 3 does not divide the 8×8 image; choose a divisor of both sides",
    ]
    assert at(bad_argument, 13, 37).startswith("{units: 4, unitz: 3}") and at(patch, 11, 27) == "3}"


def test_deep_checks_graph_inputs_when_features_are_inferred(tmp_path):
    spec = tmp_path / "iris.yaml"
    spec.write_text("name: iris-graph\ntask: classification\ndata:\n  source: {type: builtin, name: iris}\n"
                    "  target: {name: target}\nmodel:\n  type: graph\n  nodes:\n"
                    "    - {name: d, layer: Dense, args: {units: 4}, inputs: [sepal_lenght_cm]}\n")
    code, _, err = validate_deep(spec)
    assert code == 1
    assert err.splitlines() == [f"{spec}:9:58: model.nodes[0].inputs[0]: unknown input 'sepal_lenght_cm'; "
                                "did you mean 'sepal_length_cm'?"]
    assert at(spec, 9, 58) == "sepal_lenght_cm]}"


def test_deep_refuses_a_model_whose_parameters_cannot_fit_without_allocating_them(tmp_path):
    # 19 dense layers of 65,536 × 65,536: 81.6 billion parameters, 1.3 TB to train; built with
    # its weights deferred, so the check itself takes no more memory than a small model.
    spec = tmp_path / "wide.yaml"
    spec.write_text("name: wide\ntask: classification\ndata:\n  source: {type: builtin, name: iris}\n"
                    "  target: {name: target}\nmodel:\n  type: mlp\n  units: [" + ", ".join(["65536"] * 20) + "]\n")
    graph = tmp_path / "graph.yaml"
    graph.write_text("name: wide-graph\ntask: classification\ndata:\n  source: {type: builtin, name: iris}\n"
                     "  target: {name: target}\nmodel:\n  type: graph\n  nodes:\n"
                     + "".join(f"    - {{name: d{i}, layer: Dense, args: {{units: 65536}}, inputs: [{source}]}}\n"
                               for i, source in enumerate(["petal_width_cm", "d0", "d1", "d2", "d3"])))
    code, out, err = validate_deep(spec, graph)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err
    wide = 4 * 65536 + 65536 + 19 * (65536 * 65536 + 65536) + 65536 * 3 + 3  # input 4, 3 classes
    assert wide == 81_606_148_099
    assert re.fullmatch(rf"{spec}:7:3: model: the model has 81,606,148,099 parameters: training needs about "
                        r"1,305\.7 GB for them \(weights, gradients and optimizer state in float32\), more than "
                        r"this machine's [\d,.]+ GB; the largest layer, 'dense(_\d+)?' \(Dense\), holds 4,295,032,832",
                        lines[0]), lines[0]
    # here the four features are inputs of their own, normalized by one layer: mean 4, variance 4, count 1
    narrow = 1 * 65536 + 65536 + 4 * (65536 * 65536 + 65536) + 65536 * 3 + 3 + 9
    assert re.fullmatch(rf"{graph}:10:7: model.nodes\[1\]: the model has {narrow:,} parameters: .* the largest "
                        r"layer, 'd1' \(Dense\), holds 4,295,032,832", lines[1]), lines[1]


def deep_parameters(out: str) -> int:
    return int(re.search(r"^  parameters: (\d+) \(trainable (\d+), non-trainable (\d+)\)$", out, re.M).group(1))


def test_deep_parameter_count_is_keras_count_params(trained, tmp_path):
    names = ["lstm", "transformer", "ssm", "vit", "autoencoder", "graph", "cnn"]
    paths = []
    for name in names:
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(SPECS[name])
    code, out, err = validate_deep(*paths)
    assert code == 0, err
    summaries = out.split(": model ")[1:]
    assert len(summaries) == len(names)
    for name, summary in zip(names, summaries):
        counted = trained(name).model.count_params()
        assert deep_parameters(summary) == counted, name
        per_layer = sum(int(m.replace(",", "")) for m in re.findall(r"  ([\d,]+)$", summary, re.M))
        assert per_layer == counted, name  # the layer lines add up to the total
    # By hand for the LSTM: embedding 10 × 16; LSTM 4 gates × (16 in + 16 recurrent + 1) × 16; output 16 + 1.
    assert deep_parameters(summaries[0]) == 10 * 16 + 4 * (16 + 16 + 1) * 16 + 17 == 2289


def test_custom_layer_from_an_allowed_module(tmp_path, monkeypatch):
    (tmp_path / "my_layers.py").write_text(
        "import keras\n\n"
        "@keras.saving.register_keras_serializable(package='my_layers')\n"
        "class Gate(keras.layers.Layer):\n"
        "    def build(self, shape):\n"
        "        self.w = self.add_weight(shape=(shape[-1],), initializer='ones')\n"
        "    def call(self, x):\n"
        "        return x * keras.ops.sigmoid(self.w)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "custom.yaml"
    spec.write_text(digits("custom", "  type: graph\n  allow_imports: [my_layers]\n  nodes:\n"
                           "    - {name: flat, layer: Flatten, inputs: [image]}\n"
                           "    - {name: gate, layer: 'my_layers:Gate', inputs: [flat]}"))
    # The spec alone (say, a downloaded one) imports nothing, even at validate --deep.
    code, out, err = validate_deep(spec)
    assert (code, out) == (1, "") and "my_layers" not in sys.modules
    assert err.splitlines() == [f"{spec}:12:19: model.allow_imports[0]: importing 'my_layers' runs its code; a spec "
                                "alone never allows that: add --allow-imports my_layers to the command if you trust it"]
    code, out, err = validate_deep("--allow-imports", "my_layers", spec)
    assert code == 0, err
    assert re.search(r"^  gate +Gate +\(batch, 64\) +64$", out, re.M), out
    assert deep_parameters(out) == 64 + 64 * 10 + 10


def test_a_run_and_its_evaluation_import_custom_layers_only_when_the_command_line_allows(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dlpipe.cli import main

    (tmp_path / "scaled_layers.py").write_text(
        "import pathlib, keras\n"
        f"pathlib.Path({str(tmp_path / 'imported')!r}).touch()  # import-time code: must not run unless allowed\n\n"
        "@keras.saving.register_keras_serializable(package='scaled_layers')\n"
        "class Half(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return x * 0.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "custom.yaml"
    spec.write_text(digits("custom-run", "  type: graph\n  allow_imports: [scaled_layers]\n  nodes:\n"
                           "    - {name: flat, layer: Flatten, inputs: [image]}\n"
                           "    - {name: half, layer: 'scaled_layers:Half', inputs: [flat]}", epochs=1))
    run = tmp_path / "run"
    refused = CliRunner().invoke(main, ["run", str(spec), "--out", str(run)])
    assert (refused.exit_code, refused.output) == (1, (
        f"{spec}:12:19: model.allow_imports[0]: importing 'scaled_layers' runs its code; a spec alone never allows "
        "that: add --allow-imports scaled_layers to the command if you trust it\n"))
    assert not run.exists() and not (tmp_path / "imported").exists()
    done = CliRunner().invoke(main, ["run", str(spec), "--out", str(run), "--allow-imports", "scaled_layers"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "imported").exists()
    evaluated = CliRunner().invoke(main, ["evaluate", str(run)])
    assert (evaluated.exit_code, evaluated.output) == (1, (
        f"error: {run / 'model.keras'}: importing 'scaled_layers' runs its code; a spec alone never allows that: "
        "add --allow-imports scaled_layers to the command if you trust it\n"))
    evaluated = CliRunner().invoke(main, ["evaluate", str(run), "--allow-imports", "scaled_layers"])
    assert evaluated.exit_code == 0, evaluated.output


def test_run_end_to_end_with_a_per_step_model_and_exports(tmp_path):
    """A numeric time series into a causal transformer with a label per step: sequence
    inputs, per-step outputs and dlpipe's own layers through every stage, SavedModel
    export included."""
    spec = tmp_path / "steps.yaml"
    spec.write_text(order("steps", "  {type: transformer, blocks: 1, heads: 2, key_dim: 8, model_dim: 16, "
                          "feed_forward: 32, dropout: 0.0, positions: sinusoidal, causal: true, "
                          "return_sequences: true}", feature="signal", target="a_seen", lr=0.003, epochs=3))
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.9
    verification = json.loads((tmp_path / "run/export/verification.json").read_text())
    assert set(verification) == {"keras", "saved_model"}
    assert all(v["passed"] and v["max_abs_diff"] <= 1e-4 for v in verification.values())


def build_spec(text: str, base: Path):
    from dlpipe.architectures.assemble import build_model
    from dlpipe.data.prepare import prepare

    doc = parse(text, "spec.yaml")
    spec = validate_document(doc)
    return build_model(spec, prepare(spec, base, located_for(doc)), located_for(doc))


def test_several_inputs_meet_in_the_combiner(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    np.savez(tmp_path / "multi.npz", series=rng.normal(size=(n, 10, 2)).astype(np.float32),
             ids=rng.integers(0, 7, size=(n, 10)), age=rng.normal(size=n).astype(np.float32),
             image=rng.normal(size=(n, 8, 8, 1)).astype(np.float32), steps=rng.integers(0, 2, size=(n, 10)),
             label=np.arange(n) % 3)
    header = "name: multi\ntask: classification\ndata:\n  source: {type: npz, path: multi.npz}\n"
    per_step = build_spec(header + "  features: [{name: series, type: sequence}, {name: ids, type: tokens}, "
                          "{name: age, type: numerical}]\n  target: {name: steps}\n"
                          "model: {type: rnn, units: [8], return_sequences: true, head: {units: [4]}}\n", tmp_path)
    # Both sequences are read step by step (2 channels + a 32-wide embedding); the number joins every step.
    assert tuple(per_step.get_layer("sequences").output.shape) == (None, 10, 2 + 32)
    assert tuple(per_step.get_layer("side_features_per_step").output.shape) == (None, 10, 1)
    assert tuple(per_step.get_layer("combined").output.shape) == (None, 10, 8 + 1)
    assert tuple(per_step.output.shape) == (None, 10)  # a probability per step
    cnn = build_spec(header + "  features: [{name: image, type: image}, {name: age, type: numerical}, "
                     "{name: ids, type: tokens}]\n  target: {name: label}\n"
                     "model: {type: cnn, blocks: [{filters: 6}]}\n", tmp_path)
    # Pooled image features, the number, and the token ids as a bag of 16-wide embeddings.
    assert tuple(cnn.get_layer("combined").output.shape) == (None, 6 + 1 + 16)
    assert tuple(cnn.output.shape) == (None, 3)


def test_each_layer_starts_from_its_own_random_weights(tmp_path):
    # Keras repeats the values of an unseeded initializer object used twice.
    model = build_spec("name: init\ntask: classification\ndata:\n  source: {type: builtin, name: iris}\n"
                       "  target: {name: target}\nmodel: {type: mlp, units: [8, 8, 8]}\n", ROOT)
    second, third = (np.asarray(model.get_layer(f"dense_{i}").kernel) for i in (1, 2))
    assert second.shape == third.shape and not np.allclose(second, third)


VARIANTS = {
    "transformer_post_norm_last": order("v1", "  {type: transformer, blocks: 2, heads: 2, key_dim: 4, model_dim: 8, "
                                        "feed_forward: 8, norm: post, positions: none, pooling: last, causal: true}"),
    "transformer_series_max": order("v2", "  {type: transformer, blocks: 1, heads: 1, key_dim: 4, model_dim: 8, "
                                    "feed_forward: 8, positions: sinusoidal, pooling: max}", feature="signal"),
    "vit_mean_post_norm": digits("v3", "  {type: vit, patch_size: 4, blocks: 1, heads: 1, key_dim: 4, model_dim: 8, "
                                 "feed_forward: 8, pooling: mean, norm: post}"),
    "simple_rnn_stacked": order("v4", "  {type: rnn, cell: simple, units: [8, 4], bidirectional: true, dropout: 0.1, "
                                "l2: 0.001}", feature="signal"),
    "conv_autoencoder": digits("v5", "  {type: autoencoder, encoder: conv, filters: [4, 8], latent: 3}"),
    "autoencoder_no_reconstruction": digits("v6", "  {type: autoencoder, units: [8], latent: 3, "
                                            "reconstruction_weight: 0.0}"),
    "graph_attention": order("v7", """\
  type: graph
  nodes:
    - {name: project, layer: Dense, args: {units: 8, kernel_initializer: he_normal, kernel_regularizer: {type: l2, l2: 0.01}}, inputs: [signal]}
    - {name: attend, layer: MultiHeadAttention, args: {num_heads: 2, key_dim: 4}, inputs: [project, project]}
    - {name: residual, layer: Add, inputs: [project, attend]}
    - {name: norm, layer: LayerNormalization, inputs: [residual]}
    - {name: pool, layer: GlobalAveragePooling1D, inputs: [norm]}""", feature="signal"),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_build_run_and_round_trip(name, tmp_path):
    import keras

    model = build_spec(VARIANTS[name], ROOT)
    from dlpipe.data.builtin import load_digits, load_order_pairs

    names = [tensor.name for tensor in model.inputs]
    table = load_digits() if "image" in names else load_order_pairs()
    x = {key: table.columns[key][:8].astype("int32" if key == "tokens" else "float32") for key in names}
    output = model.predict(x, verbose=0)
    assert np.isfinite(output).all() and len(output) == 8
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), output)


def test_every_layer_and_regularizer_name_resolves():
    import keras

    from dlpipe import registry

    for kind in ("layer", "regularizer", "activation", "initializer", "architecture", "dataset"):
        for name in registry.names(kind):
            assert registry.load(kind, name) is not None, (kind, name)
    assert all(issubclass(registry.load("layer", n), keras.layers.Layer) for n in registry.names("layer"))


JAX_BUILD = """
import json, sys
from pathlib import Path
import keras
import numpy as np
from dlpipe.architectures.assemble import build_model
from dlpipe.data.prepare import prepare
from dlpipe.spec.loader import parse
from dlpipe.spec.validation import validate_document

found = {"backend": keras.backend.backend()}
for name, text in json.loads(Path(sys.argv[1]).read_text()).items():
    spec = validate_document(parse(text, name))
    data = prepare(spec, Path(sys.argv[2]), None)
    model = build_model(spec, data)
    x = {k: v[:4] for k, v in data.splits["test"].x.items()}
    output = model.predict(x, verbose=0)
    found[name] = [int(model.count_params()), list(output.shape), bool(np.isfinite(output).all())]
print(json.dumps(found))
"""


def test_every_architecture_builds_and_runs_on_the_jax_backend(trained, tmp_path):
    """Model code is keras.layers / keras.ops only: the same specs build on JAX, with the
    same parameter counts, and run forward."""
    import importlib.util

    if importlib.util.find_spec("jax") is None:  # in the test extra: CI fails rather than skips
        from _system import require

        require(False, "jax is not installed", "pip install 'dlpipe[jax]'")
    one_per_type = ["cnn", "lstm", "transformer", "ssm", "order_blind_mlp", "vit", "autoencoder", "graph"]
    (tmp_path / "specs.json").write_text(json.dumps({name: SPECS[name] for name in one_per_type}))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", JAX_BUILD, str(tmp_path / "specs.json"), str(ROOT)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.pop("backend") == "jax"
    for name, (parameters, shape, finite) in found.items():
        result = trained(name)
        assert parameters == result.model.count_params(), name
        assert shape == [4, *result.output.shape[1:]] and finite, name
