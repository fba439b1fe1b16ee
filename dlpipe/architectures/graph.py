"""A free layer graph: Keras layers by name, wired by node and feature names.

Nodes are built in dependency order (the spec may list them in any order). A layer Keras
refuses — an unknown argument, tensors whose shapes do not fit — becomes a spec error at
the node's line. Layers from user code are imported only from modules the spec lists in
`allow_imports`.
"""

from __future__ import annotations

import importlib

import keras

from dlpipe import imports, registry
from dlpipe.architectures import BuildProblem
from dlpipe.architectures.inputs import Encoded
from dlpipe.spec.model import ATTENTION_LAYERS, MERGE_LAYERS, Graph, graph_problems, topological_order


def build(spec: Graph, encoded: Encoded) -> keras.KerasTensor:
    tensors: dict[str, keras.KerasTensor] = {}
    by_feature: dict[str, str] = {}
    for input_name, tensor in encoded.tensors.items():
        for name in (encoded.features[input_name].name, input_name):
            tensors[name] = tensor
            by_feature[name] = input_name
    # The spec layer checks names when data.features lists them; with features inferred
    # from the data, this is the first time they are known.
    for path, message in graph_problems(spec, sorted(by_feature)):
        raise BuildProblem(("model", *path), message)
    modules = _allowed_modules(spec)
    for i in topological_order(spec):
        node = spec.nodes[i]
        layer = _make_layer(node, i, modules)
        sources = [tensors[name] for name in node.inputs]
        encoded.taken.update(by_feature[name] for name in node.inputs if name in by_feature)
        try:
            if node.layer in MERGE_LAYERS or node.layer == "Attention" or node.layer == "AdditiveAttention":
                tensors[node.name] = layer(sources)
            else:
                tensors[node.name] = layer(*sources)
        except (ValueError, TypeError) as err:
            shapes = ", ".join(str(tuple(t.shape[1:])) for t in sources)
            raise BuildProblem(("model", "nodes", i), f"node {node.name!r} ({node.layer}) cannot take inputs "
                               f"of shape {shapes}: {one_line(err)}") from err
    return tensors[spec.output or spec.nodes[-1].name]


def _allowed_modules(spec: Graph) -> dict[str, object]:
    modules = {}
    needed = {node.layer.partition(":")[0] for node in spec.nodes if ":" in node.layer}
    for k, name in enumerate(spec.allow_imports):
        if name not in needed:
            continue  # listed but unused: nothing is imported
        if not imports.is_allowed(name):  # the spec asks; only the command line allows
            raise BuildProblem(("model", "allow_imports", k), imports.refusal(name))
        try:
            modules[name] = importlib.import_module(name)
        except ImportError as err:
            raise BuildProblem(("model", "allow_imports", k), f"cannot import {name!r}: {err}") from err
    return modules


def _make_layer(node, i: int, modules: dict):
    if ":" in node.layer:
        module_name, _, class_name = node.layer.partition(":")
        if module_name not in modules:  # the spec checks refuse this first; never import it here
            raise BuildProblem(("model", "nodes", i, "layer"), f"importing {module_name!r} is not allowed")
        cls = getattr(modules[module_name], class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
            raise BuildProblem(("model", "nodes", i, "layer"),
                               f"{module_name} has no Keras layer class named {class_name!r}")
    else:
        cls = registry.load("layer", node.layer)
    args = {key: _resolve(key, value) for key, value in node.args.items()}
    try:
        return cls(name=node.name, **args)
    except (ValueError, TypeError) as err:
        raise BuildProblem(("model", "nodes", i, "args"), f"node {node.name!r} ({node.layer}): {one_line(err)}") from err


def _resolve(key: str, value):
    """Activation, initializer and regularizer names through dlpipe's tables (so that e.g.
    `xavier_uniform` works); everything else goes to Keras as written."""
    if value is None:
        return None
    if key in ("activation", "recurrent_activation"):
        return registry.load("activation", value)
    if key.endswith("_initializer"):
        return registry.load("initializer", value)()
    if key.endswith("_regularizer"):
        if isinstance(value, dict):
            options = {k: v for k, v in value.items() if k != "type"}
            return registry.load("regularizer", value["type"])(**options)
        return registry.load("regularizer", value)()
    return value


def one_line(err: Exception) -> str:
    """Keras wraps layer errors in several lines of context; keep the sentence that says
    what is wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    skip = ("Exception encountered", "Arguments received", "•", "Call arguments received")
    useful = [line for line in lines if not line.startswith(skip)]
    return (useful or lines or [type(err).__name__])[0]
