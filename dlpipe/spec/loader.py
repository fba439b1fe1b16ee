"""YAML → plain data, with the line and column of every key and value.

PyYAML's composer gives nodes with marks; we build the Python values ourselves so that
each one keeps its position, duplicate keys are caught (PyYAML silently keeps the last),
and only plain YAML is accepted: a tag such as `!!python/object` is an error, never code.

`--set a.b.c=value` overrides are applied on top, the value parsed as YAML, each with a
position of its own (`--set:N:COL`, N counting the overrides from 1) so that an error in an
override is reported where it was typed.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from dlpipe.errors import Problem, SpecError
from dlpipe.limits import SPEC_INT_MAX, TooLarge, read_spec_bytes
from dlpipe.yamlbounds import Unbounded, check_bounds

Key = tuple  # a path into the data: ("model", "blocks", 1, "filters")
Position = tuple[str, int, int]  # (file, line, column), 1-based

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_SCALAR_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 and 1.0e3 as numbers. YAML 1.1 (PyYAML) reads them as
    text, its floats needing a dot and a signed exponent; YAML 1.2, JSON and users do not."""


# libyaml, where PyYAML was built with it, gives the same nodes and marks 20× faster (about
# 20 ms of each `dlpipe validate` of two templates). Its error messages differ, so a text
# it refuses is parsed again in Python for PyYAML's message and position.
_FastLoader = type("_FastLoader", (yaml.CSafeLoader,), {}) if yaml.__with_libyaml__ else None

for _loader in (_Loader, _FastLoader):
    if _loader is not None:  # on the subclasses only: yaml's own loaders are left as they are
        _loader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
            list("-+0123456789."),
        )


def _compose(text: str):
    """The YAML node tree of `text` (None when empty); raises PyYAML's YAMLError, or
    Unbounded before composing a tree that would not fit in memory or on the stack."""
    if _FastLoader is not None:
        try:
            check_bounds(yaml.parse(text, Loader=_FastLoader))
            return yaml.compose(text, Loader=_FastLoader)
        except (yaml.YAMLError, UnicodeError):  # UnicodeError: a lone surrogate from argv
            pass
    check_bounds(yaml.parse(text, Loader=_Loader))
    return yaml.compose(text, Loader=_Loader)


def _shown_tag(tag: str) -> str:
    """`tag:yaml.org,2002:python/object` → `!!python/object`, as it was typed."""
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


@dataclass
class Document:
    """Parsed spec data plus where each piece came from."""

    file: str
    data: Any = None
    values: dict[Key, Position] = field(default_factory=dict)
    keys: dict[Key, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    """Problems found while parsing (duplicate keys, tags); validation reports them with
    its own, so that one run shows everything."""

    def value_position(self, path: Key) -> Position:
        """Where the value at `path` was written, or the nearest enclosing one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return (self.file, 1, 1)

    def key_position(self, path: Key) -> Position:
        """Where the key of `path` was written (falls back to its value's position)."""
        return self.keys.get(path) or self.value_position(path)


def format_path(path: Key) -> str:
    """`("model", "blocks", 1, "filters")` → `model.blocks[1].filters`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Builder:
    def __init__(self, file: str, position_of=None):
        self.file = file
        self.problems: list[Problem] = []
        self.values: dict[Key, Position] = {}
        self.keys: dict[Key, Position] = {}
        self._constructor = SafeConstructor()
        # Overrides place their nodes at the --set position instead of the node's own mark.
        self._position_of = position_of or (
            lambda mark: (self.file, mark.line + 1, mark.column + 1)
        )

    def problem(self, mark, message: str, path: Key = ()) -> None:
        file, line, column = self._position_of(mark)
        self.problems.append(Problem(file, line, column, format_path(path), message))

    def build(self, node, path: Key = ()) -> Any:
        self.values[path] = self._position_of(node.start_mark)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                self.problem(node.start_mark, f"YAML tag {_shown_tag(node.tag)!r} is not allowed", path)
                return None
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: Key) -> dict | None:
        if node.tag != _MAP_TAG:
            self.problem(node.start_mark, f"YAML tag {_shown_tag(node.tag)!r} is not allowed", path)
            return None
        own_keys = [k for k, _ in node.value if k.tag != _MERGE_TAG]
        try:
            self._constructor.flatten_mapping(node)  # resolves `<<: *anchor` merges
        except ConstructorError as err:
            self.problem(err.problem_mark or node.start_mark, err.problem or str(err), path)
            return None
        result: dict[str, Any] = {}
        first_seen: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                self.problem(key_node.start_mark, f"keys must be names (strings), got {shown!r}", path)
                continue
            key = key_node.value
            if key in first_seen:
                if key_node in own_keys and first_seen[key] in own_keys:
                    line = self._position_of(first_seen[key].start_mark)[1]
                    self.problem(key_node.start_mark,
                                 f"duplicate key {key!r} (first given on line {line})", path + (key,))
                    continue
                if key_node not in own_keys:
                    continue  # a merged-in key never overrides one written in place
            first_seen[key] = key_node
            self.keys[path + (key,)] = self._position_of(key_node.start_mark)
            result[key] = self.build(value_node, path + (key,))
        return result

    def _scalar(self, node: ScalarNode, path: Key) -> Any:
        if node.tag not in _PLAIN_SCALAR_TAGS:
            self.problem(node.start_mark, f"YAML tag {_shown_tag(node.tag)!r} is not allowed", path)
            return None
        value = self._constructor.construct_object(node, deep=True)
        if node.tag.endswith(":timestamp"):
            return node.value  # dates stay text; no spec field is a date object
        # No value of a spec is endless or undefined, nor an integer beyond 32 bits (an
        # epoch count of 2^63 would overflow in NumPy long after validation passed).
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node.start_mark, f"expected a finite number, got {node.value}", path)
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not -SPEC_INT_MAX - 1 <= value <= SPEC_INT_MAX:
            self.problem(node.start_mark, f"integers in a spec lie between {-SPEC_INT_MAX - 1:,} and "
                         f"{SPEC_INT_MAX:,}, got {node.value}", path)
            return None
        return value


_OPENED = {"while parsing a flow sequence": "'['", "while parsing a flow mapping": "'{'",
           "while scanning a quoted scalar": "quote"}


def _yaml_problem(file: str, err: yaml.YAMLError, text: str = "") -> Problem:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    context, opened_at = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context in _OPENED and opened_at is not None and mark is not None:
        # The parser gives up where it met the end of the file or the next key; what
        # needs fixing is the bracket or quote that was never closed: point there.
        gave_up = "" if file == "--set" else f" at line {line}, column {column}"
        return Problem(file, opened_at.line + 1, opened_at.column + 1, "",
                       f"invalid YAML: the {_OPENED[context]} opened here is not closed "
                       f"({err.problem}{gave_up})")
    if isinstance(err, yaml.reader.ReaderError):  # a control character: no mark, an offset
        before = text[: err.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
    # A ReaderError has no `problem`; its str() goes on with '  in "<file>", position N'.
    message = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "'\\t'" in message or "\t" in message:
        message = "a tab character cannot indent YAML; use spaces"
    context = getattr(err, "context", None)
    if context and "\t" not in message and "tab" not in message:
        message = f"{message} ({context})"
    return Problem(file, line, column, "", f"invalid YAML: {message}")


def parse(text: str, file: str) -> Document:
    """Parse one YAML text; raises SpecError with every located problem."""
    try:
        node = _compose(text)
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(file, err, text)]) from None
    except Unbounded as err:
        raise SpecError([Problem(file, err.mark.line + 1, err.mark.column + 1, "", err.message)]) from None
    if node is None:
        raise SpecError([Problem(file, 1, 1, "", "the spec is empty")])
    builder = _Builder(file)
    data = builder.build(node)
    if not isinstance(data, dict):
        raise SpecError(builder.problems or [
            Problem(file, 1, 1, "", "a spec must be a mapping of sections (name: ..., data: ...)")])
    return Document(file=file, data=data, values=builder.values, keys=builder.keys,
                    problems=builder.problems)


def read(path: str | Path) -> Document:
    """Read and parse a spec file."""
    path = Path(path)
    try:
        text = decode(read_spec_bytes(path))
    except FileNotFoundError:
        raise SpecError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(str(path), 1, 1, "", "is a directory, not a spec file")]) from None
    except TooLarge as err:
        raise SpecError([Problem(str(path), 1, 1, "", str(err))]) from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise SpecError([Problem(str(path), 1, 1, "", f"cannot read: {reason}")]) from None
    return parse(text, str(path))


def decode(data: bytes) -> str:
    """A spec's bytes as text, newlines translated as `Path.read_text` does."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _split_key(key: str) -> Key | None:
    """`model.blocks[1].filters` or `model.blocks.1.filters` → a path; None if malformed."""
    parts: list = []
    pos = 0
    for match in _PART.finditer(key):
        if match.start() != pos and key[pos:match.start()] != ".":
            return None
        name, index = match.groups()
        parts.append(int(index) if index is not None else (int(name) if name.isdigit() else name))
        pos = match.end()
    return tuple(parts) if parts and pos == len(key) else None


def apply_overrides(doc: Document, overrides: list[str] | tuple[str, ...]) -> Document:
    """Apply `--set KEY=VALUE` overrides in order; problems are added to `doc.problems`."""
    problems = doc.problems
    for number, override in enumerate(overrides, start=1):
        key_text, sep, value_text = override.partition("=")
        path = _split_key(key_text.strip()) if sep else None
        if path is None:
            problems.append(Problem("--set", number, 1, "",
                                    f"expected KEY=VALUE such as training.epochs=5, got {override!r}"))
            continue
        value_column = len(key_text) + 2
        builder = _Builder("--set", position_of=lambda mark, n=number, c=value_column: ("--set", n, c))
        try:
            node = _compose(value_text)
        except yaml.YAMLError as err:
            bad = _yaml_problem("--set", err)
            problems.append(Problem("--set", number, value_column, format_path(path), bad.message))
            continue
        except Unbounded as err:  # an alias bomb or endless nesting typed on the command line
            problems.append(Problem("--set", number, value_column + err.mark.column, format_path(path), err.message))
            continue
        value = builder.build(node, path) if node is not None else None
        problems.extend(builder.problems)
        if builder.problems:
            continue
        # On a copy: an override that fails half-way (a missing list) must leave no
        # mappings it created on the way behind.
        trial = Document(doc.file, copy.deepcopy(doc.data), doc.values, dict(doc.keys))
        problem = _assign(trial, path, value, number)
        if problem:
            problems.append(problem)
            continue
        doc.data, doc.keys = trial.data, trial.keys
        for stale in [k for k in doc.values if k[: len(path)] == path]:
            del doc.values[stale]
        for stale in [k for k in doc.keys if k[: len(path)] == path]:
            del doc.keys[stale]
        doc.values.update(builder.values)
        doc.keys[path] = ("--set", number, 1)
    return doc


def _assign(doc: Document, path: Key, value: Any, number: int) -> Problem | None:
    node = doc.data
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, dict) and isinstance(part, str):
            if not isinstance(node.get(part), (dict, list)):
                if part in node and node[part] is not None:
                    where = format_path(path[: depth + 1])
                    return Problem("--set", number, 1, format_path(path),
                                   f"cannot set a key inside {where}, which is {type(node[part]).__name__}")
                node[part] = {}
                doc.keys[path[: depth + 1]] = ("--set", number, 1)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return Problem("--set", number, 1, format_path(path),
                           f"{format_path(path[: depth + 1])} does not exist")
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        node[last] = value
    else:
        return Problem("--set", number, 1, format_path(path), f"{format_path(path)} does not exist")
    return None
