"""The `model` section without TensorFlow: every architecture's spec, the layer graph's
checks (names, cycles, arity, imports), sequence features and target kinds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dlpipe import registry
from dlpipe.errors import SpecError
from dlpipe.spec import Spec
from dlpipe.spec.loader import parse
from dlpipe.spec.model import find_cycle, topological_order
from dlpipe.spec.validation import validate_document

HEADER = """\
name: t
task: {task}
data:
  source: {{type: builtin, name: {dataset}}}
  features: {features}
  target: {{name: {target}}}
"""


def spec_text(model: str, *, task="classification", dataset="order_pairs", features="[{name: tokens, type: tokens}]",
              target="label", extra="") -> str:
    return HEADER.format(task=task, dataset=dataset, features=features, target=target) + \
        "model:\n" + textwrap.indent(textwrap.dedent(model).strip("\n"), "  ") + "\n" + extra


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        validate_document(parse(text, "s.yaml"))
    return [str(p) for p in caught.value.problems]


def valid(text: str) -> Spec:
    return validate_document(parse(text, "s.yaml"))


@pytest.mark.parametrize("model, features", [
    ("type: rnn", "[{name: tokens, type: tokens}]"),
    ("{type: rnn, cell: gru, units: [16, 8], bidirectional: true, return_sequences: true}",
     "[{name: signal, type: sequence}]"),
    ("{type: transformer, norm: post, positions: sinusoidal, causal: true}", "[{name: tokens, type: tokens}]"),
    ("{type: vit, patch_size: 2}", "[{name: image, type: image}]"),
    ("{type: autoencoder, encoder: conv, filters: [8], latent: 4}", "[{name: image, type: image}]"),
    ("{type: autoencoder, units: [32], latent: 4}", "[{name: signal, type: sequence}]"),
    ("{type: graph, nodes: [{name: pool, layer: GlobalAveragePooling1D, inputs: [signal]}]}",
     "[{name: signal, type: sequence}]"),
])
def test_every_architecture_validates_and_round_trips(model, features):
    spec = valid(spec_text(model, features=features))
    assert Spec.model_validate(spec.model_dump()) == spec
    assert spec.model_dump()["model"]["type"] == spec.model.type
    assert list(spec.model_dump()["model"])[0] == "type"  # the resolved spec.yaml reads type first


def test_every_architecture_type_is_registered_and_in_the_union():
    from dlpipe.spec.model import Model
    import typing

    union = typing.get_args(typing.get_args(Model)[0])
    tags = [typing.get_args(m.model_fields["type"].annotation)[0] for m in union]
    assert tags == list(registry.names("architecture"))


def test_transformer_and_vit_share_the_encoder_settings():
    from dlpipe.spec.model import ViT, Transformer, _Encoder

    shared = set(_Encoder.model_fields) - {"type"}
    assert shared <= set(Transformer.model_fields) and shared <= set(ViT.model_fields)
    assert {"blocks", "heads", "key_dim", "feed_forward", "dropout", "norm", "positions"} <= shared


def test_unknown_cell_and_norm_are_located():
    found = problems(spec_text("{type: rnn, cell: lstmm}"))
    assert found == ["s.yaml:8:21: model.cell: expected 'lstm', 'gru' or 'simple', got 'lstmm'; did you mean 'lstm'?"]
    found = problems(spec_text("{type: transformer, norm: middle, activation: gelu2}"))
    assert found == [
        "s.yaml:8:29: model.norm: expected 'pre' or 'post', got 'middle'",
        "s.yaml:8:49: model.activation: unknown activation 'gelu2'; did you mean 'gelu'?",
    ]


def test_sequence_architectures_need_a_sequence_feature():
    found = problems(spec_text("type: rnn", dataset="iris", features="[{name: sepal length (cm), type: numerical}]",
                               target="target"))
    assert found == ["s.yaml:8:9: model.type: a rnn reads at least one feature of type sequence, tokens or text; "
                     "data.features has 0 of that type"]
    found = problems(spec_text("type: vit", features="[{name: tokens, type: tokens}]"))
    assert found == ["s.yaml:8:9: model.type: a vit reads exactly one feature of type image; data.features has 0 of that type"]


def test_cnn_takes_side_features_into_the_head():
    spec = valid(spec_text("{type: cnn, blocks: [{filters: 8}]}", dataset="digits",
                           features="[{name: image, type: image}, {name: extra, type: numerical}]"))
    assert spec.model.type == "cnn"


GRAPH_FEATURES = "[{name: image, type: image}, {name: age, type: numerical}]"


def graph(nodes: str, extra: str = "") -> str:
    return spec_text(f"type: graph\n{extra}nodes:\n" + textwrap.indent(textwrap.dedent(nodes).strip("\n"), "  "),
                     dataset="digits", features=GRAPH_FEATURES)


def test_graph_checks_are_all_reported_and_located():
    text = graph("""
        - {name: a, layer: Dense, args: {units: 8, activation: rellu}, inputs: [c]}
        - {name: b, layer: Dense, args: {units: 8, kernel_initializer: xavier}, inputs: [a]}
        - {name: c, layer: Add, inputs: [b, imagee]}
        - {name: d, layer: Concatenate, inputs: [a]}
        - {name: e, layer: Dense, args: {units: 4, name: x}, inputs: [a, b]}
    """)
    assert problems(text) == [
        "s.yaml:10:60: model.nodes[0].args.activation: unknown activation 'rellu'; did you mean 'relu'?",
        "s.yaml:10:76: model.nodes[0].inputs: the graph has a cycle: a → b → c → a (each node feeds the next)",
        "s.yaml:11:68: model.nodes[1].args.kernel_initializer: unknown initializer 'xavier'; "
        "did you mean 'xavier_normal'?",
        "s.yaml:12:41: model.nodes[2].inputs[1]: unknown input 'imagee'; did you mean 'image'?",
        "s.yaml:13:45: model.nodes[3].inputs: Concatenate merges 2 or more inputs, got 1",
        "s.yaml:14:54: model.nodes[4].args.name: the layer is named after its node; remove args.name",
        "s.yaml:14:66: model.nodes[4].inputs: Dense takes 1 input, got 2; merge them first (Concatenate, Add...)",
    ]


def test_duplicate_node_and_feature_names():
    text = graph("""
        - {name: a, layer: Flatten, inputs: [image]}
        - {name: a, layer: Flatten, inputs: [image]}
        - {name: age, layer: Flatten, inputs: [image]}
    """)
    assert problems(text) == ["s.yaml:11:14: model.nodes[1].name: node name 'a' is used twice",
                              "s.yaml:12:14: model.nodes[2].name: 'age' is a feature's name; give the node another"]


def test_unknown_layer_name_suggests_the_keras_spelling():
    assert problems(graph("- {name: conv, layer: Conv2d, inputs: [image]}")) == [
        "s.yaml:10:27: model.nodes[0].layer: unknown layer 'Conv2d'; did you mean 'Conv2D'?"]


def test_unlisted_import_is_refused_without_importing(tmp_path, monkeypatch):
    (tmp_path / "evil_layers.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = graph("- {name: gate, layer: 'evil_layers:Gate', inputs: [image]}")
    assert problems(text) == [
        "s.yaml:10:27: model.nodes[0].layer: layer 'evil_layers:Gate' comes from user code; importing "
        "'evil_layers' is not allowed unless model.allow_imports lists it"]
    assert "evil_layers" not in sys.modules
    # Listed, it validates — and validation still imports nothing.
    spec = valid(graph("- {name: gate, layer: 'evil_layers:Gate', inputs: [image]}", "allow_imports: [evil_layers]\n"))
    assert spec.model.allow_imports == ["evil_layers"] and "evil_layers" not in sys.modules


def test_a_malformed_import_path_is_refused():
    assert problems(graph("- {name: g, layer: 'os.system:', inputs: [image]}")) == [
        "s.yaml:10:24: model.nodes[0].layer: unknown layer 'os.system:'; a layer from user code is written "
        "module.path:ClassName"]


def test_graph_output_must_be_a_node():
    assert problems(graph("- {name: flat, layer: Flatten, inputs: [image]}", "output: flatt\n")) == [
        "s.yaml:9:11: model.output: unknown node 'flatt'; did you mean 'flat'?"]


def test_graph_nodes_in_any_order_build_in_dependency_order():
    spec = valid(graph("""
        - {name: out, layer: Concatenate, inputs: [flat, age]}
        - {name: flat, layer: Flatten, inputs: [conv]}
        - {name: conv, layer: Conv2D, args: {filters: 4, kernel_size: 3}, inputs: [image]}
    """, "output: out\n"))
    assert [spec.model.nodes[i].name for i in topological_order(spec.model)] == ["conv", "flat", "out"]
    assert find_cycle(spec.model) is None


def test_graph_names_are_checked_at_build_when_features_are_inferred():
    # Without data.features the names are unknown to validate; the build checks them (slow tests).
    text = spec_text("{type: graph, nodes: [{name: d, layer: Dense, args: {units: 2}, inputs: [whatever]}]}",
                     dataset="iris", features="[]", target="target")
    assert valid(text).model.nodes[0].inputs == ["whatever"]


def test_regularizer_names_in_graph_arguments():
    found = problems(graph("- {name: d, layer: Dense, args: {units: 2, kernel_regularizer: {type: l2x, l2: 0.1}}, "
                           "inputs: [age]}"))
    assert found == ["s.yaml:10:75: model.nodes[0].args.kernel_regularizer.type: unknown regularizer 'l2x'; "
                     "did you mean 'l2'?"]
    assert problems(graph("- {name: d, layer: Dense, args: {units: 2, bias_regularizer: 0.1}, inputs: [age]}")) == [
        "s.yaml:10:66: model.nodes[0].args.bias_regularizer: expected a name or {type: name, ...}, got 0.1"]


def test_multi_label_and_per_step_targets():
    regression = spec_text("type: mlp", task="regression", target="positions", features="[{name: signal, type: sequence}]")
    assert problems(regression.replace("target: {name: positions}", "target: {name: positions, multi_label: true}")) == [
        "s.yaml:6:42: data.target.multi_label: task regression learns numbers: multi_label needs task classification"]
    assert problems(spec_text("type: mlp", extra="training: {loss: sparse_categorical_crossentropy}\n")
                    .replace("target: {name: label}", "target: {name: label, multi_label: true}")) == [
        "s.yaml:9:18: training.loss: multi-label targets need a binary loss (one sigmoid per class), not "
        "'sparse_categorical_crossentropy'; use auto, binary_crossentropy or binary_focal_crossentropy"]
    # Per-step targets cannot be stratified: the default turns stratification off.
    spec = valid(spec_text("{type: rnn, return_sequences: true}", target="a_seen"))
    assert spec.data.split.stratify is False
    per_step = spec_text("{type: rnn, return_sequences: true}", target="a_seen")
    assert problems(per_step.replace("target: {name: a_seen}\n", "target: {name: a_seen}\n  split: {stratify: true}\n")) == [
        "s.yaml:7:21: data.split.stratify: stratify needs one class per example; the target holds several "
        "(per step or multi-label)"]


def test_tokens_cannot_be_normalized_by_type_key_is_known():
    # `tokens` and `sequence` are feature types a normalization key may name.
    spec = valid(spec_text("type: rnn", extra="prepare: {normalization: {sequence: {type: zscore}}}\n"))
    assert "sequence" in spec.prepare.normalization


def test_json_schema_lists_layer_names():
    from dlpipe.spec import json_schema

    text = str(json_schema())
    assert "MultiHeadAttention" in text and "allow_imports" in text


def test_validate_imports_no_tensorflow_for_new_architectures(tmp_path):
    spec = tmp_path / "g.yaml"
    spec.write_text(graph("""
        - {name: conv, layer: Conv2D, args: {filters: 4, kernel_size: 3, activation: relu}, inputs: [image]}
        - {name: flat, layer: Flatten, inputs: [conv]}
        - {name: both, layer: Concatenate, inputs: [flat, age]}
    """))
    code = ("import sys; from click.testing import CliRunner; from dlpipe.cli import main; "
            f"r = CliRunner().invoke(main, ['validate', {str(spec)!r}]); "
            "print(r.exit_code, r.output.strip()); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == [f"0 {spec}: valid", "[]"], out.stderr


def test_task_defaults_do_not_leak_from_one_spec_to_the_next():
    # Defaults filled for a classification spec once landed on the shared default objects.
    first = valid("name: a\ntask: classification\ndata: {source: {type: builtin, name: iris}, target: {name: target}}\n"
                  "model: {type: mlp}\n")
    second = valid("name: b\ntask: regression\ndata: {source: {type: builtin, name: diabetes}, "
                   "target: {name: target}}\nmodel: {type: mlp}\n")
    assert (first.data.split.stratify, first.evaluation.metrics) == (True, ["accuracy", "f1_macro"])
    assert (second.data.split.stratify, second.evaluation.metrics) == (False, ["mae", "mse", "rmse", "r2"])
