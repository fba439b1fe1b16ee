"""docs/spec-reference.md, written from the spec's Pydantic models: every key of every
section with its type, default and description (the attribute docstring under the field).

    python -m dlpipe.spec.reference            rewrite docs/spec-reference.md and
                                               specs/dlpipe-spec.schema.json
    python -m dlpipe.spec.reference --check    exit 1 when a committed file is stale
    make docs                                  the same as the first

A test regenerates it and compares, so a new spec field fails the suite until the file is
regenerated. Nothing here is written by hand: a missing description is fixed at the field.
"""

# No `from __future__ import annotations`: annotations are read as Pydantic keeps them.

import json
import sys
import types
import typing
from collections import deque
from pathlib import Path

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dlpipe.spec.base import StrictModel, _attribute_docstrings
from dlpipe.spec.paths import PathKind
from dlpipe.spec.spec import Spec

DEFAULT_PATH = Path(__file__).resolve().parent.parent.parent / "docs" / "spec-reference.md"
SCHEMA_PATH = Path(__file__).resolve().parent.parent.parent / "specs" / "dlpipe-spec.schema.json"
"""The JSON Schema the templates' editor line points at; written beside the reference."""


def anchor(model: type) -> str:
    return model.__name__.lower()


def models_in(annotation) -> list[type[BaseModel]]:
    """The model classes an annotation can hold, in order (through Annotated, unions, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        for model in models_in(arg):
            if model not in found:
                found.append(model)
    return found


def sections(root: type[BaseModel] = Spec) -> list[tuple[str, type[BaseModel]]]:
    """(dotted path where first reached, model) for every model reachable from `root`, each
    once, depth first: a section's sub-sections follow it."""
    order: list[tuple[str, type[BaseModel]]] = []
    seen: set[type] = set()

    def visit(path: str, model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        order.append((path, model))
        for name, field in model.model_fields.items():
            for inner in models_in(field.annotation):
                visit(f"{path}.{name}" if path else name, inner)

    visit("", root)
    return order


def _variant(model: type[BaseModel]) -> str | None:
    """The `type: X` value that selects this variant of a discriminated union, if any."""
    field = model.model_fields.get("type")
    if field is not None and typing.get_origin(field.annotation) is typing.Literal:
        values = typing.get_args(field.annotation)
        if len(values) == 1:
            return str(values[0])
    return None


_PATH_TEXT = {"file": "a file's path", "folder": "a folder's path", "pattern": "a file's path or a glob",
              "any": "a file's or folder's path", "run": "a dlpipe run folder's path",
              "preset": "a KerasHub preset's name, handle or folder path"}


def _constraints(metadata) -> list[str]:
    out = []
    for item in metadata:
        for kind, attribute, symbol in ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"),
                                        (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "≤")):
            if isinstance(item, kind):
                out.append(f"{symbol} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            out.append(f"at least {item.min_length} item{'s' if item.min_length > 1 else ''}")
        if isinstance(item, annotated_types.MaxLen):
            out.append(f"at most {item.max_length} items")
        if isinstance(item, FieldInfo):
            out += _constraints(item.metadata)
        if isinstance(item, PathKind):
            out.append(_PATH_TEXT[item.kind] + "".join(f" or `{word}`" for word in item.words))
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matching `{pattern}`")
    return out


def type_text(annotation) -> str:
    """A type as a reader of YAML sees it: `int (> 0)`, `"dense" or "conv"`, `list of float`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        variant = _variant(annotation)
        label = f"{annotation.__name__}" + (f" (type: {variant})" if variant else "")
        return f"[{label}](#{anchor(annotation)})"
    if origin is typing.Annotated:
        inner, constraints = type_text(args[0]), _constraints(args[1:])
        return f"{inner} ({', '.join(constraints)})" if constraints else inner
    if origin is typing.Literal:
        return " or ".join(json.dumps(value) for value in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(arg) for arg in args)
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is tuple:
        return "list of " + ", ".join(type_text(arg) for arg in args if arg is not Ellipsis)
    if origin is dict:
        return f"mapping of {type_text(args[0])} to {type_text(args[1])}"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        changed = value.model_dump(mode="json", exclude_defaults=True)
        return "its defaults" if not changed else f"`{json.dumps(changed, ensure_ascii=False)}`"
    if value is None:
        return "`null`"
    if isinstance(value, (list, dict)) and any(isinstance(v, BaseModel) for v in
                                                (value.values() if isinstance(value, dict) else value)):
        value = json.loads(json.dumps(value, default=lambda m: m.model_dump(mode="json")))
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(root: type[BaseModel] = Spec) -> str:
    lines = [
        "# Spec reference",
        "",
        "Every key a dlpipe spec can hold: its type, its default, what it does. Generated from the",
        "Pydantic models in `dlpipe/spec/` by `python -m dlpipe.spec.reference` (or `make docs`): do",
        "not edit by hand; change the field's docstring and regenerate. `dlpipe schema` prints the",
        "same models as JSON Schema. A key that names a section links to it; a section whose",
        "`type` picks one of several variants is listed once per variant.",
        "",
    ]
    found = sections(root)
    lines += ["## Sections", ""]
    for path, model in found:
        variant = _variant(model)
        where = f"`{path}`" if path else "the top level"
        lines.append(f"- [{model.__name__}](#{anchor(model)}): {where}" + (f", `type: {variant}`" if variant else ""))
    lines.append("")
    for path, model in found:
        variant = _variant(model)
        title = (path or "top level") + (f" (type: {variant})" if variant else "")
        lines += [f'<a id="{anchor(model)}"></a>', "", f"## {title} — {model.__name__}", ""]
        if _own_doc(model):
            lines += [_own_doc(model), ""]
        described = _attribute_docstrings(model)
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            text = described.get(name, "")
            if not text and name == "type" and variant:
                text = f"Selects this variant: `type: {variant}`."
            inner = models_in(field.annotation)
            if not text and len(inner) == 1 and _own_doc(inner[0]):
                text = _own_doc(inner[0])
            lines.append(f"| `{name}` | {_cell(type_text(_annotation(field)))} | {_cell(default_text(field))} | "
                         f"{_cell(text) or '–'} |")
        lines.append("")
    return "\n".join(lines)


def _own_doc(model: type[BaseModel]) -> str:
    """The class's own docstring on one line ('' when it only inherits one)."""
    doc = vars(model).get("__doc__")
    return " ".join(doc.split()) if doc else ""


def _annotation(field: FieldInfo):
    """The field's annotation with its constraints put back (Pydantic moves them to metadata)."""
    if field.metadata:
        return typing.Annotated[(field.annotation, *field.metadata)]
    return field.annotation


def main(argv: list[str]) -> int:
    from dlpipe.spec import schema_text

    generated = {DEFAULT_PATH: render(), SCHEMA_PATH: schema_text()}
    if "--check" in argv:
        stale = [path for path, text in generated.items() if path.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path} is stale: run `python -m dlpipe.spec.reference`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
