"""Fuzzing the spec layer: whatever text arrives, validation ends in located problems or a
Spec — never a crash. 2,000+ examples a run (they take a few seconds: no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlpipe.errors import SpecError
from dlpipe.spec.loader import parse
from dlpipe.spec.spec import Spec
from dlpipe.spec.validation import validate_document

TEMPLATES = [yaml.safe_load(p.read_text()) for p in sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))]
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["adam", "cnn", "mlp", "relu", "auto", "image",
                                                           "zscore", "builtin", "digits", "accuracy", "-1", "1e-3"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=6)


def outcome(text: str) -> Spec | list:
    """A Spec, or the problems; anything else escapes and fails the test."""
    try:
        return validate_document(parse(text, "fuzz.yaml"))
    except SpecError as err:
        assert err.problems, "a SpecError must carry at least one problem"
        for problem in err.problems:
            assert problem.file in ("fuzz.yaml", "--set") and problem.line >= 1 and problem.column >= 1
            assert problem.message and "\n" not in problem.message
        return err.problems


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


@st.composite
def mutated_specs(draw):
    import copy

    spec = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 4))):
        places = [p for p in paths(spec) if p]
        path = draw(st.sampled_from(places))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "typo", "insert"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "typo" and isinstance(path[-1], str):
            key = path[-1]
            cut = draw(st.integers(0, max(len(key) - 1, 0)))
            parent[key[:cut] + key[cut + 1:] + draw(st.sampled_from(["", "s", "_"]))] = parent.pop(key)
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


@FUZZ
@given(mutated_specs())
def test_mutated_templates_never_crash_validation(text):
    outcome(text)


yaml_ish = st.text(alphabet=st.sampled_from(list("abcdey:-[]{},'\"#!&*|>%@`\t\n 0123.")), max_size=80)


@FUZZ
@given(st.one_of(yaml_ish, st.text(max_size=60)))
def test_arbitrary_text_never_crashes_validation(text):
    outcome(text)
