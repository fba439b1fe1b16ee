"""The registry (dlpipe/registry.py): names are answered without importing anything, every
name the spec layer accepts is registered, every entry carries the facts of its kind and
points at an object that exists and takes what its caller passes.

The contract tests here fail (never skip) on an entry that lacks a fact, holds a fact
outside its vocabulary, or names a module or attribute that does not exist."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest

from dlpipe import registry, tasks
from dlpipe.spec import checks, data, spec, training
from dlpipe.spec.export import QUANTIZATIONS, Tolerance, export_keys
from dlpipe.spec.model import Model
from dlpipe.spec.prepare import Normalizer

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = [(kind, name) for kind in registry.kinds() for name in registry.names(kind)]
IDS = [f"{k}-{n}" for k, n in ENTRIES]
OWN = [(k, n) for k, n in ENTRIES if registry.target(k, n).startswith("dlpipe.")]
# docs/ARCHITECTURE "Metric names in metrics.json": the user contract.
CONTRACT_METRICS = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "f1_weighted",
                    "roc_auc", "log_loss", "mae", "mse", "rmse", "r2", "map", "map_50", "map_75", "fid",
                    "inception_score"}
ENTRY_TYPES = {"architecture": registry.Architecture, "exporter": registry.Exporter, "source": registry.Source,
               "application": registry.Application,
               **{kind: registry.Metric for kind in registry.metric_kinds()}}


def type_tags(union) -> set[str]:
    """The `type` values a discriminated union (Annotated[Union[...], Field(...)]) accepts."""
    members = typing.get_args(typing.get_args(union)[0])
    return {tag for member in members for tag in typing.get_args(member.model_fields["type"].annotation)}


FEATURE_TYPES = type_tags(data.Feature)


def test_names_are_the_table_keys_in_order():
    for kind in registry.kinds():
        assert registry.names(kind) == tuple(registry.TABLES[kind])
        assert registry.names(kind), f"{kind} has no names"
        for name, entry in registry.TABLES[kind].items():
            module, colon, attribute = entry.target.partition(":")
            # Layers keep Keras's class names (Dense, Conv2D): the graph spec names them so.
            assert (name == name.lower() or kind in ("layer", "application")) and " " not in name
            assert colon and module and attribute.isidentifier(), f"{kind} {name!r}: bad target {entry.target!r}"


def test_an_unknown_kind_or_name_says_what_exists():
    with pytest.raises(KeyError, match="unknown registry kind 'optimiser'; known: optimizer, activation"):
        registry.names("optimiser")
    with pytest.raises(KeyError, match=r"unknown optimizer 'adamm'; did you mean 'adam'\?"):
        registry.target("optimizer", "adamm")
    with pytest.raises(KeyError, match=r"unknown metric:classification 'precison_macro'; did you mean"):
        registry.entry("metric:classification", "precison_macro")
    assert registry.target("optimizer", "adam") == "keras.optimizers:Adam"
    assert registry.entry("metric:regression", "r2").direction == "max"


def test_the_tables_cannot_be_changed_at_run_time():
    with pytest.raises(TypeError):
        registry.TABLES["optimizer"]["mine"] = registry.Entry("x:y")  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.entry("exporter", "keras").tolerance["keras"] = {"max_abs_diff": 1.0}  # type: ignore[index]


def test_names_and_entries_import_nothing():
    # A fresh process: every module a table names must still be absent afterwards.
    script = (
        "import json, sys\n"
        "from dlpipe import registry\n"
        "for kind in registry.kinds():\n"
        "    for name in registry.names(kind):\n"
        "        registry.entry(kind, name).facts()\n"
        "registry.maximized()\n"
        "named = {registry.target(k, n).partition(':')[0] for k in registry.kinds() for n in registry.names(k)}\n"
        "heavy = {'tensorflow', 'keras', 'numpy', 'sklearn', 'pandas', 'jax', 'torch'}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m in named or m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# Every entry carries the facts of its kind, each inside its vocabulary -----------------------


def test_a_missing_fact_fails_when_the_entry_is_made():
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'direction'"):
        registry.Metric("dlpipe.metrics.classification:accuracy", targets=("label",))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'tolerance'"):
        registry.Exporter("dlpipe.exporters.onnx:FORMAT", output_tolerance={}, cannot_take=(),  # type: ignore[call-arg]
                          extra="onnx", requires=("onnx",))


@pytest.mark.parametrize("kind, name", ENTRIES, ids=IDS)
def test_every_entry_has_its_kinds_facts(kind, name):
    entry = registry.entry(kind, name)
    assert type(entry) is ENTRY_TYPES.get(kind, registry.Entry), f"{kind} {name!r} is a {type(entry).__name__}"
    facts = entry.facts()
    where = f"{kind} {name!r}"
    if isinstance(entry, registry.Metric):
        assert facts["direction"] in ("max", "min"), where
        assert isinstance(entry.targets, tuple) and entry.targets, f"{where}: no targets"
        assert set(entry.targets) <= set(registry.TARGETS) and len(set(entry.targets)) == len(entry.targets), where
        assert isinstance(entry.binary, bool), where
        # multi_output's table is the union of classification's and regression's (an output of each kind)
        assert not entry.binary or kind in ("metric:classification", "metric:multi_output"), \
            f"{where}: only classes have a positive class"
    elif isinstance(entry, registry.Architecture):
        assert isinstance(entry.reads, tuple) and set(entry.reads) <= FEATURE_TYPES, where
        assert isinstance(entry.single, bool) and (entry.reads or not entry.single), where
    elif isinstance(entry, registry.Exporter):
        # Every artifact the format can write has its default bound: a missing one would
        # otherwise surface as a KeyError after a user's training.
        assert set(entry.tolerance) == set(export_keys([name], QUANTIZATIONS)), f"{where}: tolerance keys"
        for key, bound in entry.tolerance.items():
            tolerance = Tolerance(**bound)
            assert tolerance.max_abs_diff is not None or tolerance.agreement is not None, f"{where} {key}"
        # Defaults for one kind of model output: a kind some task gives, keys of this format's
        # artifacts, agreement only where that output carries classes.
        outputs = {tasks.get(task).output: tasks.get(task) for task in registry.names("task")}
        for kind, bounds in entry.output_tolerance.items():
            assert kind in outputs, f"{where}: output_tolerance for {kind!r}, which no task gives"
            assert set(bounds) <= set(entry.tolerance), f"{where}: output_tolerance keys for {kind!r}"
            for key, bound in bounds.items():
                tolerance = Tolerance(**bound)
                assert tolerance.max_abs_diff is not None or tolerance.agreement is not None, f"{where} {key}"
                assert tolerance.agreement is None or outputs[kind].has_classes, f"{where} {kind} {key}"
        assert isinstance(entry.cannot_take, tuple) and set(entry.cannot_take) <= FEATURE_TYPES, where
        assert isinstance(entry.requires, tuple) and all(isinstance(m, str) and m for m in entry.requires), where
        assert (entry.extra is None) == (not entry.requires), f"{where}: an extra installs what it requires"
    elif isinstance(entry, registry.Application):
        # Named as Keras names it; the preprocessing a 0..255 image needs; the size Keras allows.
        assert entry.target == f"keras.applications:{name}", where
        assert entry.preprocessing in ("built_in", "tf", "caffe", "torch"), where
        assert isinstance(entry.min_size, int) and entry.min_size >= 32, where
    elif isinstance(entry, registry.Source):
        assert isinstance(entry.split_files, bool) and isinstance(entry.streams, bool), where
        # A streamed source is a file (read in chunks) or a folder of files (read file by file).
        assert entry.split_files or not entry.streams or name.endswith("_folder"), f"{where}: streamed"
    else:
        assert facts == {"target": entry.target}, where


def test_a_metric_name_has_one_direction_in_every_kind():
    directions: dict[str, set[str]] = {}
    for kind in registry.metric_kinds():
        for name in registry.names(kind):
            directions.setdefault(name, set()).add(registry.entry(kind, name).direction)
    assert {name: found for name, found in directions.items() if len(found) > 1} == {}
    assert registry.maximized() == {name for name, found in directions.items() if found == {"max"}}


def test_every_exporter_extra_is_a_project_extra_the_tests_install():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]

    def installed_by(extra: str) -> set[str]:  # dlpipe[a,b] inside an extra installs a and b too
        found = {extra}
        for requirement in extras[extra]:
            if requirement.startswith("dlpipe["):
                for inner in requirement[len("dlpipe["):-1].split(","):
                    found |= installed_by(inner.strip())
        return found

    for name in registry.names("exporter"):
        extra = registry.entry("exporter", name).extra
        if extra is not None:
            assert extra in extras, f"exporter {name!r}: no extra {extra!r} in pyproject.toml"
            assert extra in installed_by("test"), f"the test extra does not install {extra!r}"
            assert extra in installed_by("all"), f"the all extra does not install {extra!r}"
    # At least one format needs no extra: what `dlpipe validate` suggests instead.
    assert [n for n in registry.names("exporter") if not registry.entry("exporter", n).cannot_take]


# Every name the spec accepts is registered (no hand-kept list may drift) ------------------


def test_spec_optimizers_architectures_and_sources_are_registered():
    assert type_tags(training.Optimizer) <= set(registry.names("optimizer"))
    assert type_tags(Model) == set(registry.names("architecture"))
    assert type_tags(Normalizer) == {"zscore", "minmax", "rescale", "none"}
    # shapes and coco are read by task detection's own loader (dlpipe/data/detection.py).
    assert type_tags(data.Source) - set(registry.names("source")) == {"shapes", "coco"}


def test_every_metric_name_of_the_user_contract_is_registered():
    assert CONTRACT_METRICS <= {name for kind in registry.metric_kinds() for name in registry.names(kind)}


# Every entry points at something that exists ---------------------------------------------


def _defined(path: Path) -> dict[str, ast.AST]:
    """Top-level names a module defines: functions, classes, assignments."""
    found: dict[str, ast.AST] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        found[leaf.id] = node
    return found


@pytest.mark.parametrize("kind, name", OWN, ids=[f"{k}-{n}" for k, n in OWN])
def test_every_own_target_is_defined_where_it_points(kind, name):
    """Read from the source, not imported: fast, and a mistyped module or attribute fails."""
    module, _, attribute = registry.target(kind, name).partition(":")
    found = importlib.util.find_spec(module.rpartition(".")[0])  # the package (imports no Keras)
    assert found is not None and found.submodule_search_locations, f"{kind} {name!r}: no package for {module}"
    files = [Path(folder) / f"{module.rpartition('.')[2]}.py" for folder in found.submodule_search_locations]
    files = [file for file in files if file.is_file()]
    assert files, f"{kind} {name!r}: no module {module} (looked in {found.submodule_search_locations})"
    assert attribute in _defined(files[0]), f"{kind} {name!r}: {module} defines no {attribute}"


# What each kind's caller passes: (positional arguments) or, per name, its own.
CALLS = {
    "metric:classification": ("y", "probabilities"),
    "metric:regression": ("y", "prediction"),
    "metric:forecasting": ("y", "forecast"),
    "metric:multi_output": ("y", "output"),  # an output's labels and its part of the model's output
    "metric:detection": ("ground_truth", "predictions"),
    ("metric:embedding", "reconstruction_mse"): ("original", "reconstruction"),
    ("metric:embedding", "knn_accuracy"): ("train_embeddings", "train_labels", "embeddings", "labels", "neighbors"),
    ("metric:generation", "fid"): ("real_features", "generated_features"),
    ("metric:generation", "inception_score"): ("probabilities",),
    "source": ("source", "base_dir"),
    "dataset": (),
    "architecture": ("spec", "encoded"),
    ("architecture", "centernet"): ("spec", "image_shape", "n_classes"),
}


def _takes(function, arguments: tuple, where: str) -> None:
    """`function` accepts exactly these positional arguments (the rest have defaults)."""
    try:
        inspect.signature(function).bind(*arguments)
    except TypeError as err:
        raise AssertionError(f"{where}: {function.__name__}{inspect.signature(function)} cannot be called with "
                             f"({', '.join(arguments)}): {err}") from None


# Architectures and dlpipe's own graph layers import Keras (tests/test_architectures.py
# resolves every layer name to a Keras layer class).
LIGHT = [(k, n) for k, n in OWN if k not in ("architecture", "layer")]


@pytest.mark.parametrize("kind, name", LIGHT, ids=[f"{k}-{n}" for k, n in LIGHT])
def test_every_light_entry_takes_what_its_caller_passes(kind, name):
    obj = registry.load(kind, name)
    where = f"{kind} {name!r}"
    if kind == "exporter":  # a format object: what the export stage uses of it
        from dlpipe.exporters.base import ExportFormat

        assert isinstance(obj, ExportFormat) and obj.name == name, f"{where} resolved to {obj!r}"
        _takes(obj.write, ("model", "directory", "job"), f"{where} write")
        _takes(obj.load, ("path",), f"{where} load")
    elif kind == "task":  # a Task: its pipeline's run(ctx) (tests/test_tasks.py checks the rest)
        from dlpipe.tasks import Task

        assert isinstance(obj, Task) and obj.name == name, f"{where} resolved to {obj!r}"
        _takes(obj.hook("run"), ("ctx",), f"{where} pipeline run")
    else:
        assert callable(obj), f"{where} resolved to {obj!r}, which is not callable"
        _takes(obj, CALLS.get((kind, name), CALLS.get(kind)), where)


# Every entry resolves (imports Keras and the architectures) -------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind, name", ENTRIES, ids=IDS)
def test_every_registered_name_resolves(kind, name):
    obj = registry.load(kind, name)  # raises if the module or the attribute is missing
    if kind == "exporter":
        assert callable(obj.write) and callable(obj.load), f"exporter {name!r} resolved to {obj!r}"
        return
    if kind == "task":
        assert callable(obj.hook("run")), f"task {name!r}: its pipeline has no run"
        return
    assert callable(obj), f"{kind} {name!r} resolved to {obj!r}, which is not callable"
    if kind == "architecture":
        _takes(obj, CALLS.get((kind, name), CALLS[kind]), f"{kind} {name!r}")
