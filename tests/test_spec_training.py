"""The `training` section: optimizers, schedules, weights, checkpoints, precision, strategy."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml

from dlpipe import registry
from dlpipe.errors import SpecError
from dlpipe.spec import load_spec
from dlpipe.spec.spec import Spec
from dlpipe.spec.training import Optimizer, Schedule

BASE = """\
version: 1
name: t
task: classification
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
model: {type: mlp}
training:
  epochs: 3
"""


def write(tmp_path: Path, training: str = "", base: str = BASE) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(base + training)
    return path


def errors(path: Path, *overrides: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    return [str(p) for p in caught.value.problems]


def _tags(union) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}


def test_every_registered_optimizer_has_a_spec_model_and_back():
    assert _tags(Optimizer) == set(registry.names("optimizer"))


def test_schedule_types():
    assert _tags(Schedule) == {"constant", "step", "piecewise", "exponential", "cosine", "reduce_on_plateau"}


def test_a_full_training_section_validates_and_round_trips(tmp_path):
    path = write(tmp_path, """\
  batch_size: 64
  optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true, weight_decay: 1.0e-4, clipnorm: 1.0}
  schedule: {type: cosine, warmup_epochs: 0.5, min_factor: 0.01, decay_epochs: 2, restarts: {period_multiplier: 2}}
  class_weight: {malignant: 2.0, benign: 1.0}
  early_stopping: {monitor: val_accuracy, patience: 2}
  checkpoints: {monitor: val_loss}
  precision: mixed_bfloat16
  jit_compile: false
  strategy: mirrored
  deterministic: false
  tensorboard: false
""")
    spec = load_spec(path)
    training = spec.training
    assert (training.optimizer.type, training.optimizer.nesterov, training.optimizer.weight_decay) == ("sgd", True, 1e-4)
    assert training.schedule.restarts.period_multiplier == 2.0
    assert training.class_weight == {"malignant": 2.0, "benign": 1.0}
    assert (training.precision, training.jit_compile, training.strategy) == ("mixed_bfloat16", False, "mirrored")
    assert Spec.model_validate(spec.model_dump()) == spec
    # The resolved spec a run writes is accepted again.
    assert Spec.model_validate(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json")))) == spec


@pytest.mark.parametrize("optimizer", registry.names("optimizer"))
def test_each_optimizer_validates_with_its_defaults(tmp_path, optimizer):
    spec = load_spec(write(tmp_path), [f"training.optimizer={{type: {optimizer}}}"])
    assert spec.training.optimizer.type == optimizer


def test_two_clipping_modes_are_one_too_many(tmp_path):
    path = write(tmp_path, "  optimizer: {type: adam, clipnorm: 1.0, global_clipnorm: 2.0}\n")
    assert errors(path) == [f"{path}:10:59: training.optimizer.global_clipnorm: set one of clipnorm, clipvalue, "
                            "global_clipnorm; clipnorm is set too"]


def test_optimizer_parameters_are_checked(tmp_path):
    path = write(tmp_path, "  optimizer: {type: adamw, weight_decay: -1, beta_1: 1.5, nesterov: true}\n")
    assert errors(path) == [
        f"{path}:10:42: training.optimizer.weight_decay: expected a value >= 0, got -1",
        f"{path}:10:54: training.optimizer.beta_1: expected a value < 1, got 1.5",
        f"{path}:10:59: training.optimizer.nesterov: unknown key 'nesterov'; expected one of: learning_rate, "
        "weight_decay, clipnorm, clipvalue, global_clipnorm, beta_1, beta_2, epsilon, amsgrad",
    ]


def test_unknown_optimizer_and_schedule_get_a_suggestion(tmp_path):
    path = write(tmp_path, "  optimizer: {type: adamx}\n  schedule: {type: cosin}\n")
    assert errors(path) == [
        f"{path}:10:14: training.optimizer: unknown type 'adamx'; did you mean 'adamax'?",
        f"{path}:11:13: training.schedule: unknown type 'cosin'; did you mean 'cosine'?",
    ]


def test_piecewise_needs_increasing_boundaries_and_one_factor_each(tmp_path):
    path = write(tmp_path, "  schedule: {type: piecewise, boundaries: [3, 2], factors: [0.1]}\n")
    assert errors(path) == [f"{path}:10:43: training.schedule.boundaries: boundaries must increase; 2 follows 3"]
    path = write(tmp_path, "  schedule:\n    type: piecewise\n    boundaries: [2, 3]\n    factors: [0.1]\n")
    assert errors(path) == [f"{path}:13:14: training.schedule.factors: expected one factor per boundary (2), got 1"]


def test_schedule_checks(tmp_path):
    path = write(tmp_path, "  schedule: {type: cosine, restarts: {}}\n")
    assert errors(path) == [f"{path}:10:38: training.schedule.restarts: restarts need decay_epochs "
                            "(the length of the first cycle)"]
    path = write(tmp_path, "  schedule: {type: reduce_on_plateau, monitor: val_acc}\n")
    assert errors(path) == [f"{path}:10:48: training.schedule.monitor: cannot monitor 'val_acc'; "
                            "did you mean 'val_accuracy'?"]
    path = write(tmp_path, "  schedule: {type: step}\n")
    assert errors(path) == [f"{path}:10:3: training.schedule.every: missing required key 'every'"]
    path = write(tmp_path, "  checkpoints: {monitor: val_accuracy}\n")
    assert errors(path, "data.split={train: 0.8, validation: 0, test: 0.2}") == [
        f"{path}:10:26: training.checkpoints.monitor: monitoring 'val_accuracy' needs a validation split; "
        "data.split.validation is 0"]


def test_class_weight_is_balanced_or_a_mapping(tmp_path):
    path = write(tmp_path, "  class_weight: balance\n")
    assert errors(path) == [f"{path}:10:17: training.class_weight: expected 'balanced' or a mapping of class "
                            "name to weight, got 'balance'; did you mean 'balanced'?"]
    path = write(tmp_path, "  class_weight: {benign: -1}\n")
    assert errors(path) == [f"{path}:10:26: training.class_weight.benign: expected a value >= 0, got -1"]
    # An explicit split: Spec fills a task default into the shared default Split otherwise.
    regression = BASE.replace("classification", "regression").replace("breast_cancer", "diabetes").replace(
        "  target: {name: target}\n", "  target: {name: target}\n  split: {stratify: false}\n")
    path = write(tmp_path, "  class_weight: balanced\n", base=regression)
    assert errors(path) == [f"{path}:11:17: training.class_weight: class_weight weighs classes; task regression "
                            "has none (use training.sample_weight)"]


def test_sample_weight_column_cannot_be_the_target(tmp_path):
    path = write(tmp_path, "  sample_weight: target\n")
    assert errors(path) == [f"{path}:10:18: training.sample_weight: 'target' is the target; it cannot also "
                            "be the sample weight"]


def test_precision_jit_and_strategy_choices(tmp_path):
    path = write(tmp_path)
    assert errors(path, "training.precision=mixed_float32", "training.jit_compile=maybe",
                  "training.strategy=multiworker") == [
        "--set:1:20: training.precision: expected 'auto', 'float32', 'mixed_float16' or 'mixed_bfloat16', "
        "got 'mixed_float32'; did you mean 'mixed_float16'?",
        "--set:2:22: training.jit_compile: expected 'auto', True or False, got 'maybe'",
        "--set:3:19: training.strategy: expected 'auto', 'none', 'mirrored' or 'multi_worker', "
        "got 'multiworker'; did you mean 'multi_worker'?",
    ]
