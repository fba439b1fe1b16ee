"""The spec layer: YAML → a validated `Spec`. Never imports TensorFlow or Keras."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dlpipe.errors import Problem, SpecError
from dlpipe.spec.loader import Document, apply_overrides, parse, read
from dlpipe.spec.spec import Spec
from dlpipe.spec.validation import locate, validate_document

__all__ = ["Spec", "SpecError", "Problem", "load_spec", "load_document", "check_files", "check_text", "json_schema",
           "schema_text", "SCHEMA_FILE"]


def load_document(path: str | Path, overrides: Sequence[str] = ()) -> tuple[Spec, Document]:
    """Read, override and validate one spec file; keep positions for later located errors."""
    doc = read(path)
    apply_overrides(doc, overrides)
    return validate_document(doc), doc


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> Spec:
    return load_document(path, overrides)[0]


def check_files(paths: Sequence[str | Path], overrides: Sequence[str] = ()) -> list[Problem]:
    """Every problem of every file (an empty list when all are valid)."""
    problems: list[Problem] = []
    for path in paths:
        try:
            load_document(path, overrides)
        except SpecError as err:
            problems.extend(err.problems)
    return problems


def check_text(path: str, text: str, overrides: Sequence[str] = (), observed=None) -> list[Problem]:
    """Every problem of one spec given as text (`path` names it in messages). With
    `observed` (a validation_cache.Observations), a valid spec's data is also looked at
    cheaply (spec/datacheck.py: files exist, headers hold the named columns), relative
    paths against `path`'s folder, and every look is recorded there."""
    try:
        doc = parse(text, path)
        apply_overrides(doc, overrides)
        spec = validate_document(doc)
    except SpecError as err:
        return list(err.problems)
    if observed is None:
        return []
    from dlpipe.spec.backends import check_environment
    from dlpipe.spec.datacheck import check_data

    found = [*check_environment(spec, observed), *check_data(spec, Path(path).resolve().parent, observed)]
    return sorted((locate(doc, where, message) for where, message in found), key=lambda p: (p.line, p.column))


def json_schema() -> dict:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dlpipe spec"
    return schema


SCHEMA_FILE = "dlpipe-spec.schema.json"
"""The schema's file name beside a spec: the templates' `# yaml-language-server: $schema=`
line names it, `dlpipe init` writes it beside the copy, and specs/ ships it."""


def schema_text() -> str:
    """The JSON Schema as the files hold it (`dlpipe schema`, specs/dlpipe-spec.schema.json)."""
    import json

    return json.dumps(json_schema(), indent=2) + "\n"
