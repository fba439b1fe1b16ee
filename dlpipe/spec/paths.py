"""Spec values that name files and folders: marked where they are declared, found by walking.

A field holding a path is declared with `FilePath`, `FolderPath` or `AnyPath` (a str
carrying a `PathKind` marker that Pydantic ignores), so the code that needs every path of a
spec — the resolved spec a run writes (`resolved`), `dlpipe validate`'s cheap look at the
data (spec/datacheck.py) — walks the models instead of keeping a list by hand that would
drift from them.

A relative path is relative to the spec file's folder. A resolved spec (a run's spec.yaml,
`dlpipe tune`'s best.yaml) lives in another folder, so `resolved` writes every path
absolute: the resolved spec then names the very files the run read, whatever folder it is
run from.
"""

# No `from __future__ import annotations` here: the markers must stay objects inside the
# annotations Pydantic reads.

import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel

from dlpipe.kerashub import is_folder


@dataclass(frozen=True)
class PathKind:
    """What a path names: `file`, `folder`, `pattern` (a file or a glob of files), `any`
    (a file or a folder), `run` (a folder holding a finished dlpipe run) or `preset` (a
    KerasHub preset folder; a value written without a path's `/`, `.` or `~` is a preset
    name or handle instead: dlpipe/kerashub.py). `words` are values of the same key that
    name no path (`weights: imagenet`): never resolved or looked for."""

    kind: str
    words: tuple[str, ...] = ()


FilePath = Annotated[str, PathKind("file")]
FolderPath = Annotated[str, PathKind("folder")]
PatternPath = Annotated[str, PathKind("pattern")]
AnyPath = Annotated[str, PathKind("any")]
RunPath = Annotated[str, PathKind("run")]
PresetPath = Annotated[str, PathKind("preset")]
"""A KerasHub preset: a folder's path, or a name or handle KerasHub resolves (no path)."""


def _kind_in(annotation, metadata=(), within: str = "str") -> PathKind | None:
    """The PathKind of a str inside `annotation` (through Annotated and unions) when `within`
    is "str", or of a dict's str values when it is "dict": `dict[str, str] | FilePath` (an
    inline label_map or its file) marks the file, not the dict's values."""
    if within == "str":
        for item in metadata:
            if isinstance(item, PathKind):
                return item
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _kind_in(args[0], args[1:], within)
    if origin is dict:
        return _kind_in(args[1]) if within == "dict" else None
    if origin in (typing.Union, types.UnionType):
        return next((found for found in (_kind_in(arg, (), within) for arg in args) if found), None)
    return None


_KINDS: dict[tuple[type, str, str], PathKind | None] = {}


def _field_kind(model: type[BaseModel], name: str, within: str = "str") -> PathKind | None:
    key = (model, name, within)
    if key not in _KINDS:
        field = model.model_fields[name]
        _KINDS[key] = _kind_in(field.annotation, field.metadata, within)
    return _KINDS[key]


def path_values(model: BaseModel, at: tuple = ()) -> Iterator[tuple[tuple, str, str]]:
    """(spec path, value, kind) of every path a validated spec (or part of one) holds."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = (*at, name)
        found = _field_kind(type(model), name, "dict" if isinstance(value, dict) else "str")
        kind = found.kind if found is not None else None
        if kind is not None and isinstance(value, str):
            if value not in found.words and (kind != "preset" or is_folder(value)):
                yield where, value, kind
        elif kind is not None and isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and item not in found.words:
                    yield (*where, key), item, kind
        elif isinstance(value, BaseModel):
            yield from path_values(value, where)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from path_values(item, (*where, i))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from path_values(item, (*where, key))


def absolute(path: str, base_dir: Path) -> str:
    """`path` as the data stage reads it: `~` expanded, relative to `base_dir`, `..` folded
    (links are kept as named: the run records the path the spec gave)."""
    expanded = Path(path).expanduser()
    return os.path.normpath(expanded if expanded.is_absolute() else Path(base_dir) / expanded)


def resolved(spec: BaseModel, base_dir: Path) -> BaseModel:
    """A copy of `spec` whose every path is absolute (resolved against `base_dir`, the spec
    file's folder). Absolute paths are kept; a spec without relative paths is returned as is."""
    for where, value, _ in list(path_values(spec)):
        if absolute(value, base_dir) != value:
            spec = _replaced(spec, where, absolute(value, base_dir))
    return spec


def _replaced(node, where: tuple, value):
    """`node` with the value at `where` replaced (models are frozen: copies along the way)."""
    key, rest = where[0], where[1:]
    if isinstance(node, BaseModel):
        current = getattr(node, key)
        return node.model_copy(update={key: value if not rest else _replaced(current, rest, value)})
    if isinstance(node, dict):
        return {**node, key: value if not rest else _replaced(node[key], rest, value)}
    items = list(node)
    items[key] = value if not rest else _replaced(items[key], rest, value)
    return type(node)(items)
