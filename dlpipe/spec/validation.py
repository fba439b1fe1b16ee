"""Turn data into a Spec, or into a list of located problems — all of them at once."""

from __future__ import annotations

from pydantic import ValidationError

from dlpipe.errors import Problem, SpecError
from dlpipe.spec.checks import run_checks
from dlpipe.spec.loader import Document, format_path
from dlpipe.spec.messages import data_path, message
from dlpipe.spec.search import check_tuning
from dlpipe.spec.spec import Spec


def validate_document(doc: Document) -> Spec:
    """Validate parsed data; raise SpecError listing every problem with its position."""
    try:
        spec = Spec.model_validate(doc.data)
    except ValidationError as err:
        found = [_problem(doc, e) for e in err.errors(include_url=False)]
        # A value the loader refused (a YAML tag) reads as None; its own problem, at the same
        # place, already says why: "expected an integer, got None" there would be noise.
        refused = {(p.file, p.line, p.column, p.path) for p in doc.problems}
        found = [p for p in found if (p.file, p.line, p.column, p.path) not in refused]
        raise SpecError(_unique_sorted(doc.problems + found)) from None
    found = [*run_checks(spec), *check_tuning(spec)]
    problems = doc.problems + [locate(doc, path, said) for path, said in found]
    if problems:
        raise SpecError(_unique_sorted(problems))
    return spec


def locate(doc: Document, path: tuple, message: str, at_key: bool = False) -> Problem:
    file, line, column = doc.key_position(path) if at_key else doc.value_position(path)
    return Problem(file, line, column, format_path(path), message)


def _unique_sorted(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return sorted(out, key=lambda p: (p.file == "--set", p.file, p.line, p.column))


def _problem(doc: Document, error: dict) -> Problem:
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    path = data_path(loc, doc.data, kind)
    said = message(kind, loc, error, ctx)
    if kind == "missing":
        parent = path[:-1]
        file, line, column = doc.key_position(parent) if parent else (doc.file, 1, 1)
        return Problem(file, line, column, format_path(path), said)
    at_key = kind == "extra_forbidden"
    return locate(doc, path, said, at_key=at_key)


