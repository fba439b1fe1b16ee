"""Pydantic's validation errors as dlpipe's messages: the path in the user's data (not in the
union members Pydantic names), and one plain sentence with a did-you-mean where it helps.
Shared by `validation.py` and the tuning section's checks (`search.py`)."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel

from dlpipe.errors import did_you_mean
from dlpipe.spec.spec import Spec


def data_path(loc: tuple, data: Any, error_type: str) -> tuple:
    """Pydantic's loc names union members (`'cnn'`, `'float'`); keep only real keys."""
    path: list = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and isinstance(node, dict) and error_type in ("missing", "extra_forbidden"):
            path.append(part)
            node = None
    return tuple(path)


def _unwrap(annotation):
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _models(annotation) -> list[type[BaseModel]]:
    members = [_unwrap(m) for m in typing.get_args(annotation)]
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _literal_tags(model) -> tuple:
    if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields:
        return typing.get_args(model.model_fields["type"].annotation)
    return ()


def _annotation_at(loc: tuple):
    """The annotation that pydantic's `loc` points at, following Spec's fields."""
    current: Any = Spec
    for part in loc:
        current = _unwrap(current)
        if _is_union(current):
            models = _models(current)
            chosen = [m for m in models if part in _literal_tags(m) or part == m.__name__]
            if chosen:
                current = chosen[0]
                continue  # the loc part named the union member
            if len(models) != 1:
                return None
            current = models[0]
        origin = typing.get_origin(current)
        if origin in (list, tuple):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        else:
            return None
    return _unwrap(current)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    annotation = _annotation_at(loc)
    if _is_union(annotation):
        models = _models(annotation)
        return models[0] if len(models) == 1 else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _tags_at(loc: tuple) -> list[str]:
    annotation = _annotation_at(loc)
    if not _is_union(annotation):
        return []
    return [tag for model in _models(annotation) for tag in _literal_tags(model)]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def message(kind: str, loc: tuple, error: dict, ctx: dict) -> str:
    received = error.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        model = _model_at(loc[:-1])
        fields = [f for f in model.model_fields if f != "type"] if model else []
        hint = did_you_mean(str(key), fields) or (f"; expected one of: {', '.join(fields)}" if fields else "")
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind == "union_tag_invalid":
        tags = [t.strip().strip("'") for t in ctx.get("expected_tags", "").split(",")]
        hint = did_you_mean(str(ctx.get("tag")), tags)
        return f"unknown type {ctx.get('tag')!r}{hint}" + ("" if hint else f"; choose from {', '.join(tags)}")
    if kind == "union_tag_not_found":
        model_tags = _tags_at(loc)
        choices = f" (one of: {', '.join(model_tags)})" if model_tags else ""
        if not isinstance(received, dict):
            return f"expected a mapping with a 'type' key{choices}, got {_shown(received)}"
        return f"missing required key 'type'{choices}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {_shown(received)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {_shown(received)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_shown(received)}"
    if kind == "string_type":
        return f"expected a string, got {_shown(received)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {_shown(received)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_shown(received)}"
    bounds = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
              "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
    if kind in bounds:
        key, sign = bounds[kind]
        bound = ctx.get(key)
        return f"expected a value {sign} {bound if isinstance(bound, int) else format(bound, 'g')}, got {_shown(received)}"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(str(received), options)
        return f"expected {expected}, got {_shown(received)}{hint}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"
    if kind == "string_pattern_mismatch":
        return f"{_shown(received)} does not match {ctx.get('pattern')}"
    return error["msg"]
