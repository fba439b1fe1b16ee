"""Bounds on the node tree a YAML text would compose to, computed from its events alone.

The spec loader builds values from PyYAML's node tree, copying an aliased node at each alias
so that every copy keeps positions of its own; a "billion laughs" (anchors of nine aliases of
the previous one) would be built 9^depth times over, and deep nesting exceeds Python's
recursion limit in the composer. `check_bounds` walks the event stream once (PyYAML's parser
is iterative), so refusing such a text costs the same at any depth. Only PyYAML is imported:
the CLI refuses a hostile spec before loading Pydantic (`refusal`).
"""

from __future__ import annotations

import yaml

from dlpipe.limits import YAML_MAX_ALIAS_VALUES, YAML_MAX_DEPTH


class Unbounded(Exception):
    """The YAML nests too deep or its aliases expand too far; `mark` is where."""

    def __init__(self, mark, message: str):
        super().__init__(message)
        self.mark, self.message = mark, message


def check_bounds(events) -> None:
    """Refuse, from the event stream alone, YAML whose node tree would nest deeper than
    YAML_MAX_DEPTH or whose aliases would add more than YAML_MAX_ALIAS_VALUES values.

    The composer shares an aliased node, but the spec loader copies it at each alias (each copy
    gets its own positions), so a "billion laughs" (anchors of nine aliases of the previous
    one) would be built 9^depth times over. Here each anchor's expanded size and height are
    summed as its events close, in one pass over the text, so the refusal costs the same at
    any depth. Also refused: an alias inside its own anchor (`&a [*a]`), an endless value."""
    stack: list[list] = []  # per open collection: [anchor, expanded size, height below it]
    sizes: dict[str, tuple[int, int]] = {}  # anchor → (expanded size, height)
    added = 0

    def close(anchor, size: int, height: int, mark) -> None:
        if anchor is not None:
            sizes[anchor] = (size, height)
        if stack:
            stack[-1][1] += size
            stack[-1][2] = max(stack[-1][2], height + 1)
        if len(stack) + height > YAML_MAX_DEPTH:
            raise Unbounded(mark, f"the YAML nests deeper than {YAML_MAX_DEPTH} levels; a spec needs far fewer")

    for event in events:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(stack) >= YAML_MAX_DEPTH:
                raise Unbounded(event.start_mark,
                                 f"the YAML nests deeper than {YAML_MAX_DEPTH} levels; a spec needs far fewer")
            stack.append([event.anchor, 1, 0])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size, height = stack.pop()
            close(anchor, size, height, event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            close(event.anchor, 1, 0, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            if any(frame[0] == event.anchor for frame in stack):
                raise Unbounded(event.start_mark, f"alias *{event.anchor} lies inside its own anchor "
                                 f"&{event.anchor}: the value would never end")
            if event.anchor not in sizes:
                continue  # the composer reports an undefined alias with its own words
            size, height = sizes[event.anchor]
            added += size
            if added > YAML_MAX_ALIAS_VALUES:
                raise Unbounded(event.start_mark, f"alias *{event.anchor}: the aliases would repeat more than "
                                 f"{YAML_MAX_ALIAS_VALUES:,} values; a spec needs far fewer "
                                 "(an anchor that repeats other anchors grows exponentially)")
            close(None, size, height, event.start_mark)


def refusal(text: str, loaders) -> tuple[int, int, str] | None:
    """(line, column, message) when `text` is over a bound, checked with the first of
    `loaders` that parses it; None when it is within bounds or is not YAML (the loader
    reports that with its own words)."""
    for loader in loaders:
        try:
            check_bounds(yaml.parse(text, Loader=loader))
        except Unbounded as err:
            return err.mark.line + 1, err.mark.column + 1, err.message
        except (yaml.YAMLError, UnicodeError):
            continue
        return None
    return None
