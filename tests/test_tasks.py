"""The task seam (dlpipe/tasks/): every task's facts resolve, its pipeline has the hooks of
the commands it claims, no module outside a task's own files compares task names, and every
key a task does not honour is refused by `dlpipe validate` at its line, naming key and task."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pydantic
import pytest
import yaml

from dlpipe import registry, tasks
from dlpipe.errors import SpecError
from dlpipe.spec import Spec, load_document

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "specs").glob("*.yaml"))
HOOKS = {"evaluate": "reevaluate", "export": "reexport", "deep": "deep_build", "explain": "explain"}
TASK_FILES = ("dlpipe/tasks/", "pipelines/")
"""A task's own files: its description and its pipeline. Only these may compare task names."""


def test_every_task_has_its_metric_table():
    assert {f"metric:{name}" for name in registry.names("task")} == set(registry.metric_kinds())


@pytest.mark.parametrize("name", registry.names("task"))
def test_every_task_states_facts_that_resolve(name):
    task = tasks.get(name)
    assert task.name == name
    metrics = set(registry.names(f"metric:{name}"))
    assert set(task.default_metrics) <= metrics and set(task.unlabelled_drop) <= set(task.default_metrics)
    assert set(task.losses) <= set(registry.names("loss"))
    assert task.losses or task.own_loss, "a task without loss choices says what its own loss is"
    assert task.training_metric is None or task.training_metric in metrics or task.training_metric == "fid"
    if task.supports("tune"):  # a default objective, or the metric names a spec's run writes
        assert task.objective in metrics or (task.objective is None and task.scored is not None)
    if task.baseline:
        assert set(task.baseline[:2]) <= metrics
    if task.loss_factory:
        module, _, attribute = task.loss_factory.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attribute]), attribute))
    module = task.pipeline_module()
    assert callable(module.run)
    sharing = [tasks.get(other) for other in registry.names("task") if tasks.get(other).pipeline == task.pipeline]
    for command, hook in HOOKS.items():
        if task.supports(command):
            assert callable(getattr(module, hook, None)), (name, hook)
        else:  # a pipeline's hook serves some task of it (forecasting shares supervised, without explain)
            assert callable(getattr(module, hook, None)) == any(t.supports(command) for t in sharing), (name, hook)


def _spec_keys(model: type[pydantic.BaseModel], prefix: str = "") -> set[str]:
    """Every dotted key of the spec models (union members' fields merged)."""
    keys = set()
    for field_name, field in model.model_fields.items():
        key = f"{prefix}{field_name}"
        keys.add(key)
        for member in _models(field.annotation):
            keys |= _spec_keys(member, key + ".")
    return keys


def _models(annotation) -> list[type[pydantic.BaseModel]]:
    found = []
    for arg in typing.get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
            found.append(arg)
        elif typing.get_args(arg):
            found += _models(arg)
    return found


SPEC_KEYS = _spec_keys(Spec)


@pytest.mark.parametrize("name", registry.names("task"))
def test_declared_keys_are_keys_of_the_spec(name):
    task = tasks.get(name)
    unknown = [key for key in (*task.honours, *task.refusals, *task.filled) if key not in SPEC_KEYS]
    assert not unknown, f"task {name} declares keys the spec does not have: {unknown}"


def _compares_task_name(node: ast.AST) -> bool:
    """`x.task == ...`, `task in (...)`, `interface["task"] != ...`, `card.get("task") == ...`."""
    if not isinstance(node, ast.Compare) or all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
        return False

    def names_a_task(part) -> bool:
        if isinstance(part, ast.Attribute) and part.attr == "task":
            return True
        if isinstance(part, ast.Name) and part.id == "task":
            return True
        if isinstance(part, ast.Subscript) and isinstance(part.slice, ast.Constant) and part.slice.value == "task":
            return True
        return (isinstance(part, ast.Call) and getattr(part.func, "attr", None) == "get" and bool(part.args)
                and isinstance(part.args[0], ast.Constant) and part.args[0].value == "task")

    return any(names_a_task(part) for part in [node.left, *node.comparators])


def test_no_module_outside_the_tasks_own_files_compares_task_names():
    offenders = []
    for path in sorted([*(ROOT / "dlpipe").rglob("*.py"), *(ROOT / "pipelines").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(TASK_FILES):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _compares_task_name(node):
                offenders.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "ask the task for a fact instead (dlpipe/tasks/):\n" + "\n".join(offenders)


def test_the_scan_finds_a_task_comparison():
    """The scan above must be able to fail."""
    for source in ('spec.task == "detection"', 'interface["task"] in ("regression",)', 'name != self.task',
                   'task not in ("forecasting", "x")', 'card.get("task") == "embedding"'):
        assert _compares_task_name(ast.parse(source, mode="eval").body), source
    for source in ('task.output == "classes"', 'owner is task', 'feature.encoding == "embedding"'):
        assert not _compares_task_name(ast.parse(source, mode="eval").body), source


# Every key a task does not honour is refused ------------------------------------------------

SAMPLES = {
    "backend": "jax",
    "data.features": "[{name: x, type: numerical}]",
    "data.target": "{name: label}",
    "data.target.class_names": "[a, b]",
    "data.target.multi_label": "true",
    "data.target.label_map": "{x: a}",
    "data.target.order": "[a, b]",
    "data.target.threshold": "0.5",
    "data.target.delimiter": "'|'",
    "data.target.on_unknown": "drop",
    "data.targets": "[{name: a, column: x, kind: regression}]",
    "data.split.files": "{test: test.csv}",
    "data.split.time_column": "when",
    "data.split.folds": "3",
    "data.split.fold": "1",
    "data.windows": "{lookback: 4}",
    "data.shuffle_buffer": "100",
    "data.streaming": "{chunk_rows: 50}",
    "prepare.imputation": "{numerical: {type: mean}}",
    "prepare.normalization": "{numerical: {type: minmax}}",
    "prepare.augmentation": "[{type: gaussian_noise, stddev: 0.1}]",
    "model.head": "{units: [8]}",
    "model.return_sequences": "true",
    "model.embedding_dim": "8",
    "model.reconstruction_weight": "0.5",
    "training.loss": "mse",
    "training.strategy": "mirrored",
    "training.schedule": "{type: cosine}",
    "training.class_weight": "balanced",
    "training.sample_weight": "w",
    "training.early_stopping": "{patience: 2}",
    "training.adversarial": "{discriminator_steps: 2}",
    "training.checkpoints": "{monitor: loss}",
    "training.checkpoints.monitor": "loss",
    "training.tensorboard": "false",
    "training.jit_compile": "false",
    "evaluation.splits": "[test]",
    "evaluation.metrics": "[mae]",
    "evaluation.baselines": "false",
    "evaluation.knn_neighbors": "3",
    "evaluation.explain": "{rows: 2}",
    "evaluation.generation": "{feature_extractor: {type: classifier, labels: label}}",
    "compression": "{pruning: {sparsity: 0.5, schedule: {end_epoch: 1}}}",
    "export.tolerance": "{keras: {max_abs_diff: 0.001}}",
    "export.samples": "10",
    "export.tflite": "{representative_samples: 20}",
    "export.intended_use": "research",
    "tuning": "{trials: 2}",
    "distillation": "{teacher: teacher.keras}",
}
"""A value other than the default for each key some task refuses."""


def _refusable(task) -> list[str]:
    """The outermost keys `task` does not read, as the generic check walks them."""
    found = []

    def walk(model: type[pydantic.BaseModel], prefix: str) -> None:
        for field_name, field in model.model_fields.items():
            key = f"{prefix}{field_name}"
            below = any(k.startswith(key + ".") for k in (*task.honours, *task.refusals))
            if task.refused(key) or (not task.honoured(key) and not below):
                found.append(key)
            elif below and not task.refused(key):
                for member in _models(field.annotation)[:1]:
                    walk(member, key + ".")

    walk(Spec, "")
    return found


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_every_key_a_task_does_not_honour_is_refused_at_its_line(template, tmp_path):
    name = yaml.safe_load(template.read_text(encoding="utf-8"))["task"]
    task = tasks.get(name)
    keys = _refusable(task)
    missing = [key for key in keys if key not in SAMPLES]
    assert not missing, f"add a non-default sample value for {missing} to SAMPLES"
    assert keys, f"task {name} honours every key: nothing to refuse"
    has_target = load_document(template)[0].data.target is not None
    for key in keys:
        # A key inside data.target needs a target to sit in.
        given = [] if has_target or not key.startswith("data.target.") else ["data.target={name: label}"]
        with pytest.raises(SpecError) as refused:
            load_document(template, [*given, f"{key}={SAMPLES[key]}"])
        lines = [p for p in refused.value.problems if p.path == key]
        assert len(lines) == 1, (key, [str(p) for p in refused.value.problems])
        problem = lines[0]
        assert problem.file == "--set" and problem.line == len(given) + 1, str(problem)
        assert f"task {name}" in problem.message or f"the {name} task" in problem.message, str(problem)


def test_a_default_value_is_accepted_everywhere(tmp_path):
    """A run's resolved spec.yaml writes every default out: it must validate for every task."""
    for template in TEMPLATES:
        spec, _ = load_document(template)
        resolved = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
        path = tmp_path / template.name
        path.write_text(resolved, encoding="utf-8")
        again, _ = load_document(path)
        assert again == spec
