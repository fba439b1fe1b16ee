"""The registry (dlpipe/registry.py): names are answered without importing anything, every
name the spec layer accepts is registered, and every registered name resolves."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from dlpipe import registry
from dlpipe.spec import checks, spec, training
from dlpipe.spec.model import Model
from dlpipe.spec.prepare import Normalizer

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = [(kind, name) for kind in registry.kinds() for name in registry.names(kind)]
# docs/ARCHITECTURE "Metric names in metrics.json": the user contract.
CONTRACT_METRICS = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "f1_weighted",
                    "roc_auc", "log_loss", "mae", "mse", "rmse", "r2", "map", "map_50", "map_75", "fid",
                    "inception_score"}


def type_tags(union) -> set[str]:
    """The `type` values a discriminated union (Annotated[Union[...], Field(...)]) accepts."""
    members = typing.get_args(typing.get_args(union)[0])
    return {tag for member in members for tag in typing.get_args(member.model_fields["type"].annotation)}


def test_names_are_the_table_keys_in_order():
    for kind in registry.kinds():
        assert registry.names(kind) == tuple(registry.TABLES[kind])
        assert registry.names(kind), f"{kind} has no names"
        for name, target in registry.TABLES[kind].items():
            module, colon, attribute = target.partition(":")
            # Layers keep Keras's class names (Dense, Conv2D): the graph spec names them so.
            assert (name == name.lower() or kind == "layer") and " " not in name
            assert colon and module and attribute.isidentifier(), f"{kind} {name!r}: bad target {target!r}"


def test_an_unknown_kind_or_name_says_what_exists():
    with pytest.raises(KeyError, match="unknown registry kind 'optimiser'; known: optimizer, activation"):
        registry.names("optimiser")
    with pytest.raises(KeyError, match=r"unknown optimizer 'adamm'; did you mean 'adam'\?"):
        registry.target("optimizer", "adamm")
    assert registry.target("optimizer", "adam") == "keras.optimizers:Adam"


def test_the_tables_cannot_be_changed_at_run_time():
    with pytest.raises(TypeError):
        registry.TABLES["optimizer"]["mine"] = "x:y"  # type: ignore[index]


def test_names_and_targets_import_nothing():
    # A fresh process: every module a table names must still be absent afterwards.
    script = (
        "import json, sys\n"
        "from dlpipe import registry\n"
        "for kind in registry.kinds():\n"
        "    for name in registry.names(kind):\n"
        "        registry.target(kind, name)\n"
        "named = {t.partition(':')[0] for k in registry.kinds() for t in registry.TABLES[k].values()}\n"
        "heavy = {'tensorflow', 'keras', 'numpy', 'sklearn', 'pandas', 'jax', 'torch'}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m in named or m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


# Every name the spec accepts is registered (no hand-kept list may drift) ------------------


def test_spec_optimizers_and_architectures_are_registered():
    assert type_tags(training.Optimizer) <= set(registry.names("optimizer"))
    assert type_tags(Model) <= set(registry.names("architecture"))
    assert type_tags(Normalizer) == {"zscore", "minmax", "rescale", "none"}


def test_every_metric_name_of_the_user_contract_is_registered():
    metric_kinds = [kind for kind in registry.kinds() if kind.startswith("metric:")]
    assert CONTRACT_METRICS <= {name for kind in metric_kinds for name in registry.names(kind)}


# Every entry resolves (imports Keras and the stage modules) -------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind, name", ENTRIES, ids=[f"{k}-{n}" for k, n in ENTRIES])
def test_every_registered_name_resolves(kind, name):
    module = registry.target(kind, name).partition(":")[0]
    if module.startswith("dlpipe."):
        try:
            written = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            written = False
        if not written:
            pytest.skip(f"{module} is not written yet")  # remove once every stage module exists
    obj = registry.load(kind, name)  # raises if the module or the attribute is missing
    if kind == "exporter":  # a format object with its own write and load
        assert callable(obj.write) and callable(obj.load), f"exporter {name!r} resolved to {obj!r}"
    else:
        assert callable(obj), f"{kind} {name!r} resolved to {obj!r}, which is not callable"
