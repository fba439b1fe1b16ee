"""docs/spec-reference.md is generated from the spec models (dlpipe/spec/reference.py): the
committed file must be what the generator writes now, and it must cover every field of every
model reachable from Spec. A failure here after adding a spec field means: regenerate it with
`python -m dlpipe.spec.reference` (or `make docs`) and commit the file."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from dlpipe.spec import reference
from dlpipe.spec.spec import Spec

DOC = Path(__file__).resolve().parent.parent / "docs" / "spec-reference.md"


def all_models() -> set[type[BaseModel]]:
    """Every model class reachable from Spec through field annotations (walked here, not
    with the generator's own walk)."""
    found: set[type[BaseModel]] = set()
    pending: list = [Spec]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in found:
                continue
            found.add(item)
            pending += [field.annotation for field in item.model_fields.values()]
        else:
            pending += list(typing.get_args(item))
    return found


def test_the_committed_reference_is_what_the_models_generate():
    assert DOC.read_text(encoding="utf-8") == reference.render(), \
        "docs/spec-reference.md is stale: run `python -m dlpipe.spec.reference` and commit it"


def test_the_shipped_json_schema_is_what_the_models_generate():
    """specs/dlpipe-spec.schema.json: what the templates' yaml-language-server line points at."""
    from dlpipe.spec import SCHEMA_FILE, schema_text

    assert reference.SCHEMA_PATH.name == SCHEMA_FILE
    assert reference.SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), \
        "specs/dlpipe-spec.schema.json is stale: run `python -m dlpipe.spec.reference` and commit it"


def test_the_reference_covers_every_field_of_every_section():
    text = DOC.read_text(encoding="utf-8")
    blocks = dict(re.findall(r'<a id="([^"]+)"></a>\n(.*?)(?=<a id="|\Z)', text, re.S))
    models = all_models()
    assert len(models) > 50 and len(blocks) == len(models)  # one section each, anchors unique
    fields = 0
    for model in models:
        block = blocks[reference.anchor(model)]
        assert f" — {model.__name__}\n" in block
        rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)` \|.*\|$", block, re.M)}
        assert set(rows) == set(model.model_fields), model.__name__
        for name, field in model.model_fields.items():
            row = rows[name].split(" | ")
            assert row[1].strip() and row[2].strip(), (model.__name__, name)  # a type and a default
            if field.is_required():
                assert row[2] == "**required**", (model.__name__, name)
        fields += len(model.model_fields)
    assert fields > 300


def test_types_and_defaults_read_as_yaml():
    from dlpipe.spec.model import Autoencoder

    assert reference.type_text(reference._annotation(Autoencoder.model_fields["encoder"])) == '"dense" or "conv"'
    assert reference.type_text(reference._annotation(Autoencoder.model_fields["latent"])) == "integer (> 0, ≤ 65536)"
    assert reference.default_text(Autoencoder.model_fields["units"]) == "`[128, 64]`"
    assert reference.default_text(Spec.model_fields["name"]) == "**required**"


def _strict_models() -> set[type[BaseModel]]:
    """Every StrictModel subclass defined in dlpipe/spec/ (shared bases such as _Optimizer
    included), plus every model reachable from Spec."""
    import importlib
    import pkgutil

    import dlpipe.spec
    from dlpipe.spec.base import StrictModel

    for module in pkgutil.iter_modules(dlpipe.spec.__path__):
        importlib.import_module(f"dlpipe.spec.{module.name}")
    found: set[type[BaseModel]] = set()
    pending = list(StrictModel.__subclasses__())
    while pending:
        model = pending.pop()
        if model not in found and model.__module__.startswith("dlpipe.spec."):
            found.add(model)
            pending += model.__subclasses__()
    return found | all_models()


def test_every_field_of_every_spec_model_has_a_description():
    """A new spec field must carry an attribute docstring (the string right under it): it is
    the field's description in docs/spec-reference.md and in `dlpipe schema`."""
    from dlpipe.spec.base import _attribute_docstrings

    models = _strict_models()
    assert len(models) > 100
    missing = sorted(f"{model.__module__}.{model.__name__}.{name}" for model in models
                     for name in model.model_fields if not _attribute_docstrings(model).get(name, "").strip())
    assert not missing, "fields without a docstring:\n  " + "\n  ".join(missing)
    assert "| – |" not in DOC.read_text(encoding="utf-8")


def test_field_descriptions_reach_the_json_schema():
    from dlpipe.spec import json_schema

    defs = json_schema()["$defs"]
    assert defs["CsvSource"]["properties"]["delimiter"]["description"]
    assert defs["Adam"]["properties"]["type"]["description"]
