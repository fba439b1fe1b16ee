"""Checks of the `tuning` section, run by `dlpipe validate` (spec/validation.py) before any
trial: the objective is a metric the spec computes; every searched key is a key of the spec
(did-you-mean on the whole path); bounds are sane; every bound and choice, written into the
spec as `--set` would write it, is a value the spec accepts at that key.

The last needs the whole of validation (the spec models and the cross-field checks), so it
lives here, above both, and not beside the section's models in tuning.py.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from typing import Annotated, Union

from pydantic import BaseModel

from dlpipe import tasks
from dlpipe.spec.tuning import (Choice, Int, Objective, _shown, _steps, _yaml, bound_values, grid_values,
                                metric_direction)


def check_tuning(spec):
    """(path, message) for every problem of the `tuning` section."""
    if spec.tuning is None or not tasks.get(spec.task).supports("tune"):  # refused as a whole in checks.py
        return
    tuning = spec.tuning
    yield from _check_objective(spec, tuning.objective)
    search = tuning.search or {}
    valid_keys = []
    for key, param in search.items():
        where = ("tuning", "search", key)
        problems = list(_check_key(type(spec), key)) + list(_check_param(param))
        for sub, message in problems:
            yield (where + sub, message)
        if not problems:
            valid_keys.append(key)
        if tuning.sampler.type == "grid" and not problems and grid_values(param) is None:
            yield (where + ("type",),
                   f"the grid sampler needs a finite set of values; {param.type} "
                   + ("needs a 'step'" if param.type == "uniform" else "has none")
                   + ", or use type choice or int")
    yield from _check_domains(spec, {key: search[key] for key in valid_keys})


def _check_objective(spec, objective: Objective):
    from dlpipe import registry
    from dlpipe.errors import did_you_mean

    task, path = tasks.get(spec.task), ("tuning", "objective")
    scored = task.scored(spec) if task.scored is not None else None  # names that depend on the spec
    if objective.weights is not None:
        if objective.metric is not None:
            yield (path + ("weights",), "give metric or weights, not both")
        if objective.direction is None:
            yield (path + ("direction",), "a weighted sum has no direction of its own; give direction: "
                                          "maximize or minimize")
        for name in objective.weights:
            if name not in (scored or spec.evaluation.metrics or []):
                known = scored or spec.evaluation.metrics or []
                hint = did_you_mean(name, known) or f"; a run computes {', '.join(known)}"
                yield (path + ("weights", name), f"{name!r} is not a metric a run computes{hint}")
    metric = objective.metric
    if metric is None and objective.weights is None and scored is not None:
        example = scored[0] if scored else "<output>/<metric>"
        yield (path, f"task {spec.task} has several outputs: name one output's metric "
                     f"(metric: {example}) or weigh several (weights: {{{example}: 1.0}})")
        return
    if metric is None:
        if objective.weights is not None:
            yield from _check_validation_split(spec)
        return
    fitting = scored if scored is not None else registry.names(f"metric:{spec.task}")
    if metric not in fitting:
        hint = did_you_mean(metric, fitting) if scored is not None else ""
        yield (path + ("metric",),
               f"metric {metric!r} does not fit task {spec.task}{hint or '; choose from ' + ', '.join(fitting)}")
        return
    computed = scored if scored is not None else spec.evaluation.metrics or []
    if metric not in computed:
        yield (path + ("metric",),
               f"{metric!r} is not in evaluation.metrics ({', '.join(computed)}); add it there "
               "so that every trial computes it")
    natural = metric_direction(metric)
    if objective.direction is not None and objective.direction != natural:
        yield (path + ("direction",),
               f"{metric} is to be {natural}d; direction {objective.direction} would keep the worst trial")
    yield from _check_validation_split(spec)


def _check_validation_split(spec):
    if "validation" not in spec.evaluation.splits:
        yield (("evaluation", "splits"), "tuning ranks trials on the validation split; list validation here")
    if spec.data.split.validation == 0:
        yield (("data", "split", "validation"),
               "tuning ranks trials on the validation split, which is empty; give it a fraction > 0")


def _check_param(param):
    if isinstance(param, Choice):
        seen: dict[str, int] = {}
        for i, value in enumerate(param.values):
            text = json.dumps(value, sort_keys=True)
            if text in seen:
                yield (("values", i), f"{value!r} is listed twice (first at values[{seen[text]}])")
            seen.setdefault(text, i)
        return
    if not param.low < param.high:
        yield (("high",), f"high must be greater than low, got low {param.low!r} and high {param.high!r}")
        return
    step = getattr(param, "step", None)
    if step is not None and _steps(param.low, param.high, step) is None:
        yield (("step",), f"high − low ({param.high - param.low:g}) must be a multiple of step {step:g}")
    if isinstance(param, Int) and param.log:
        if param.low < 1:
            yield (("low",), f"a log-scaled int needs low >= 1, got {param.low}")
        if param.step != 1:
            yield (("step",), "a log-scaled int takes step 1")


# Key paths ----------------------------------------------------------------------------------


def _members(annotation) -> list:
    """Annotated/Optional/Union → the concrete alternatives (None dropped)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [m for a in typing.get_args(annotation) if a is not type(None) for m in _members(a)]
    return [annotation]


def _walk(root, path: tuple) -> tuple[int, str, list[str]] | None:
    """None if `path` names a key of the spec model `root`; else (depth of the first bad
    part, why, the names that would have been valid there)."""
    options = [root]
    for depth, part in enumerate(path):
        following, names, kinds = [], [], set()
        for annotation in options:
            for member in _members(annotation):
                origin = typing.get_origin(member)
                if isinstance(member, type) and issubclass(member, BaseModel):
                    kinds.add("mapping")
                    names += [n for n in member.model_fields if n not in names]
                    if isinstance(part, str) and part in member.model_fields:
                        following.append(member.model_fields[part].annotation)
                elif origin in (list, tuple):
                    kinds.add("list")
                    if isinstance(part, int):
                        following.append(typing.get_args(member)[0])
                elif origin is dict:
                    kinds.add("dict")
                    if isinstance(part, str):
                        following.append(typing.get_args(member)[1])
                else:
                    kinds.add("value")
        if not following:
            if "mapping" in kinds and isinstance(part, str):
                return depth, "unknown", names
            if "list" in kinds:
                return depth, "list", []
            return depth, "value", []
        options = following
    return None


def _check_key(root, key: str):
    from dlpipe.spec.loader import _split_key, format_path

    path = _split_key(key)
    if path is None:
        yield ((), f"{key!r} is not a spec key; write a dotted path such as training.optimizer.learning_rate")
        return
    if path[0] == "tuning":
        yield ((), "the tuning section itself cannot be searched")
        return
    found = _walk(root, path)
    if found is None:
        return
    depth, why, names = found
    parent = format_path(path[:depth]) or "the spec"
    if why == "unknown":
        match = difflib.get_close_matches(str(path[depth]), names, n=1, cutoff=0.6)
        if match:
            corrected = path[:depth] + (match[0],) + path[depth + 1:]
            hint = f"; did you mean {format_path(corrected)!r}?"
        else:
            hint = f"; {parent} has: {', '.join(names)}"
        yield ((), f"unknown spec key {format_path(path)!r}{hint}")
    elif why == "list":
        yield ((), f"{parent} is a list; name an item as {parent}[0], or search the whole list with a choice")
    else:
        yield ((), f"{parent} is a single value; it has no key {path[depth]!r}")


# Values against the spec ---------------------------------------------------------------------


def _check_domains(spec, search: dict):
    """Each bound or choice, written into the resolved spec as `--set KEY=VALUE` would
    write it (as each trial does), must give a valid spec at KEY. Problems elsewhere
    (split fractions that no longer add up) depend on the other parameters: such trials
    are pruned with the reason instead."""
    from dlpipe.spec.loader import _split_key, format_path

    base = spec.model_dump(mode="json", exclude={"tuning"})
    for key, param in search.items():
        path = _split_key(key)
        # A new `type` keeps the other keys of the spec's variant (adam's beta_1 under sgd):
        # problems anywhere in that mapping count.
        scope = path[:-1] if path[-1] == "type" and len(path) > 1 else path
        for where, value in bound_values(param):
            found = _errors_at(spec, base, scope, [f"{key}={_yaml(value)}"])
            if not found:
                continue
            message = found[0]
            if isinstance(value, float) and "expected an integer" in message:
                message += "; use type int for an integer key"
            if scope != path:
                message += (f"; to try other types, search {format_path(scope)} itself with a choice "
                            "of whole mappings")
            yield (("tuning", "search", key) + where, f"{_shown(value)} does not fit: {message}")


def _errors_at(spec, base: dict, path: tuple, overrides: list[str]) -> list[str]:
    """Problems at or under `path` of the spec `base` with `overrides` applied."""
    import copy

    from pydantic import ValidationError

    from dlpipe.spec.checks import run_checks
    from dlpipe.spec.loader import Document, apply_overrides, format_path
    from dlpipe.spec.messages import data_path, message

    doc = Document(file="tuning", data=copy.deepcopy(base))
    apply_overrides(doc, overrides)
    if doc.problems:
        return [p.message for p in doc.problems]
    try:
        variant = type(spec).model_validate(doc.data)
    except ValidationError as err:
        found = []
        for error in err.errors(include_url=False):
            at = data_path(tuple(error["loc"]), doc.data, error["type"])
            if at[: len(path)] == path:
                said = message(error["type"], tuple(error["loc"]), error, error.get("ctx") or {})
                found.append(f"{format_path(at)}: {said}")
        return found
    return [f"{format_path(at)}: {message}" for at, message in run_checks(variant) if at[: len(path)] == path]


