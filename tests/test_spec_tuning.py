"""The `tuning` section: search keys, bounds, value domains, objective — no TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dlpipe import registry
from dlpipe.cli import main
from dlpipe.spec import Spec, SpecError, load_spec
from dlpipe.spec.tuning import LogUniform, Uniform, grid_size, grid_values
from dlpipe.tuning import space

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "specs" / "tabular-classification.yaml"

BASE = """\
version: 1
name: bc
task: classification
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
  split: {train: 0.7, validation: 0.1, test: 0.2, stratify: true}
model: {type: mlp, units: [16]}
"""


def write_spec(tmp_path: Path, tuning: str, base: str = BASE) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(base + textwrap.dedent(tuning), encoding="utf-8")
    return path


def problems(path: Path, overrides=()) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path, overrides)
    return [str(p) for p in caught.value.problems]


def test_misspelled_key_is_located_with_the_corrected_path(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            training.optimizr.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
            model.unitz: {type: choice, values: [[8], [16]]}
        """)
    assert problems(path) == [
        f"{path}:11:38: tuning.search.training.optimizr.learning_rate: unknown spec key "
        "'training.optimizr.learning_rate'; did you mean 'training.optimizer.learning_rate'?",
        f"{path}:12:18: tuning.search.model.unitz: unknown spec key 'model.unitz'; did you mean 'model.units'?",
    ]


def test_validate_command_reports_the_misspelled_key(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            training.optimizr.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
        """)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"{path}:11:38: tuning.search.training.optimizr.learning_rate: unknown spec key "
        "'training.optimizr.learning_rate'; did you mean 'training.optimizer.learning_rate'?")


def test_tune_stops_on_a_misspelled_key_before_any_trial(tmp_path):
    """In a fresh interpreter: exit 1, the located message, no study directory, and neither
    TensorFlow nor Optuna imported."""
    path = write_spec(tmp_path, """\
        tuning:
          search:
            training.optimizr.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
        """)
    out = tmp_path / "study"
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dlpipe.cli import main\n"
        f"r = CliRunner().invoke(main, ['tune', {str(path)!r}, '--out', {str(out)!r}])\n"
        "print(r.exit_code)\n"
        "print(r.output, end='')\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'optuna') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines == [
        "1",
        f"{path}:11:38: tuning.search.training.optimizr.learning_rate: unknown spec key "
        "'training.optimizr.learning_rate'; did you mean 'training.optimizer.learning_rate'?",
        "[]",
    ]
    assert not out.exists()


@pytest.mark.parametrize("key, message", [
    ("model.units.0", None),
    ("model.units[0]", None),
    ("prepare.normalization.numerical", None),
    ("training.optimizer.momentum", None),  # a key of sgd; checked against the spec's adam below
    ("model", None),
    ("training.epochs.x", "training.epochs is a single value; it has no key 'x'"),
    ("model.units.width", "model.units is a list; name an item as model.units[0], "
                          "or search the whole list with a choice"),
    ("tuning.trials", "the tuning section itself cannot be searched"),
    ("model..units", "'model..units' is not a spec key; write a dotted path such as "
                     "training.optimizer.learning_rate"),
    ("trainig.epochs", "unknown spec key 'trainig.epochs'; did you mean 'training.epochs'?"),
    ("zzz", "unknown spec key 'zzz'; the spec has: version, name, description, task, seed, backend, data, "
            "prepare, model, training, evaluation, compression, export, distillation, tuning, tracking, allow_unsafe_deserialization"),
])
def test_key_paths_are_walked_through_the_spec_model(key, message):
    from dlpipe.spec.search import _check_key

    found = [m for _, m in _check_key(Spec, key)]
    assert found == ([message] if message else [])


def test_bounds_and_steps_are_checked(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            model.dropout: {type: uniform, low: 0.4, high: 0.2}
            training.epochs: {type: int, low: 2, high: 9, step: 2}
            model.units[0]: {type: int, low: 0, high: 64, log: true}
            training.batch_size: {type: choice, values: [16, 32, 16]}
        """)
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "tuning.search.model.dropout.high: high must be greater than low, got low 0.4 and high 0.2",
        "tuning.search.training.epochs.step: high − low (7) must be a multiple of step 2",
        "tuning.search.model.units[0].low: a log-scaled int needs low >= 1, got 0",
        "tuning.search.training.batch_size.values[2]: 16 is listed twice (first at values[0])",
    ]


def test_loguniform_needs_a_positive_low(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            training.optimizer.learning_rate: {type: loguniform, low: 0.0, high: 1.0e-2}
        """)
    assert problems(path) == [
        f"{path}:11:63: tuning.search.training.optimizer.learning_rate.low: expected a value > 0, got 0.0"]


def test_each_bound_and_choice_must_fit_the_key(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            model.dropout: {type: uniform, low: 0.0, high: 1.5}
            training.batch_size: {type: uniform, low: 16, high: 64}
            model.units: {type: choice, values: [[32], [0]]}
            training.optimizer.momentum: {type: uniform, low: 0.0, high: 0.9}
            model.activation: {type: choice, values: [relu, gelu, reluu]}
        """)
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "tuning.search.model.dropout.high: 1.5 does not fit: model.dropout: expected a value < 1, got 1.5",
        "tuning.search.training.batch_size.low: 16.0 does not fit: training.batch_size: expected an "
        "integer, got 16.0; use type int for an integer key",
        "tuning.search.training.batch_size.high: 64.0 does not fit: training.batch_size: expected an "
        "integer, got 64.0; use type int for an integer key",
        "tuning.search.model.units.values[1]: [0] does not fit: model.units[0]: expected a value > 0, got 0",
        "tuning.search.training.optimizer.momentum.low: 0.0 does not fit: training.optimizer.momentum: "
        "unknown key 'momentum'; expected one of: learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, "
        "beta_1, beta_2, epsilon, amsgrad",
        "tuning.search.training.optimizer.momentum.high: 0.9 does not fit: training.optimizer.momentum: "
        "unknown key 'momentum'; expected one of: learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, "
        "beta_1, beta_2, epsilon, amsgrad",
        "tuning.search.model.activation.values[2]: 'reluu' does not fit: model.activation: unknown "
        "activation 'reluu'; did you mean 'relu'?",
    ]


def test_a_type_alone_is_checked_with_the_rest_of_its_mapping(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            training.optimizer.type: {type: choice, values: [adam, adamw, sgd]}
        """)
    # The resolved adam carries keys the others cannot take: adamw needs a number for
    # weight_decay (adam's is null), sgd has no beta_1.
    found = [p.split(": ", 1)[1] for p in problems(path)]
    hint = "; to try other types, search training.optimizer itself with a choice of whole mappings"
    assert found == [
        "tuning.search.training.optimizer.type.values[1]: 'adamw' does not fit: training.optimizer.weight_decay: "
        "expected a number, got None" + hint,
        "tuning.search.training.optimizer.type.values[2]: 'sgd' does not fit: training.optimizer.beta_1: "
        "unknown key 'beta_1'; expected one of: learning_rate, weight_decay, clipnorm, clipvalue, "
        "global_clipnorm, momentum, nesterov" + hint]


def test_whole_mappings_and_keys_inside_them(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          search:
            training.optimizer: {type: choice, values: [{type: adam}, {type: sgd, momentum: 0.9}]}
            training.optimizer.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-1}
        """)
    spec = load_spec(path)
    dims = space.dimensions(spec.tuning.search)
    assert [d.key for d in dims] == ["training.optimizer", "training.optimizer.learning_rate"]
    values = {"training.optimizer": {"type": "sgd", "momentum": 0.9},
              "training.optimizer.learning_rate": 0.05}
    trial = load_spec(path, space.trial_overrides(spec, [], dims, values))
    assert trial.training.optimizer.type == "sgd"
    assert trial.training.optimizer.momentum == 0.9
    assert trial.training.optimizer.learning_rate == 0.05


def test_combinations_are_left_to_the_trials(tmp_path):
    """0.3 is a valid validation fraction; with train 0.7 and test 0.2 it sums to 1.2,
    which the trial reports (pruned, with the reason), not validation."""
    path = write_spec(tmp_path, """\
        tuning:
          search:
            data.split.validation: {type: choice, values: [0.1, 0.3]}
        """)
    spec = load_spec(path)
    dims = space.dimensions(spec.tuning.search)
    with pytest.raises(SpecError) as caught:
        load_spec(path, space.trial_overrides(spec, [], dims, {"data.split.validation": 0.3}))
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "data.split: train + validation + test must be 1, got 0.7 + 0.3 + 0.2 = 1.2"]


def test_objective_defaults_follow_the_task(tmp_path):
    spec = load_spec(write_spec(tmp_path, "tuning: {}\n"))
    assert spec.tuning.objective.model_dump() == {"metric": "accuracy", "weights": None, "split": "validation",
                                                  "direction": "maximize"}
    regression = BASE.replace("task: classification", "task: regression").replace(
        "breast_cancer", "diabetes").replace("stratify: true", "stratify: false")
    spec = load_spec(write_spec(tmp_path, "tuning: {}\n", base=regression))
    assert spec.tuning.objective.model_dump() == {"metric": "mse", "weights": None, "split": "validation",
                                                  "direction": "minimize"}
    assert space.progress_key(spec) == ("val_loss", 1.0)


@pytest.mark.parametrize("metric, direction", [("precision_micro", "maximize"), ("recall_weighted", "maximize"),
                                               ("top_3_accuracy", "maximize"), ("log_loss", "minimize")])
def test_objective_direction_is_the_metrics_registry_fact(tmp_path, metric, direction):
    # precision_micro, recall_weighted and top_k_accuracy were once missing from a hand-kept
    # list of maximized metrics, and a tune on them kept the worst trial.
    path = write_spec(tmp_path, f"evaluation: {{metrics: [accuracy, {metric}]}}\n"
                                f"tuning: {{objective: {{metric: {metric}}}}}\n")
    assert load_spec(path).tuning.objective.direction == direction
    assert direction.startswith(registry.entry("metric:classification", metric).direction)


def test_objective_must_be_computed_and_fit_the_task(tmp_path):
    path = write_spec(tmp_path, """\
        evaluation: {metrics: [accuracy]}
        tuning:
          objective: {metric: roc_auc, direction: minimize}
        """)
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "tuning.objective.metric: 'roc_auc' is not in evaluation.metrics (accuracy); add it there so "
        "that every trial computes it",
        "tuning.objective.direction: roc_auc is to be maximized; direction minimize would keep the worst trial",
    ]
    path = write_spec(tmp_path, "tuning: {objective: {metric: mse}}\n")
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "tuning.objective.metric: metric 'mse' does not fit task classification; choose from "
        + ", ".join(registry.names("metric:classification"))]
    path = write_spec(tmp_path, "tuning: {objective: {split: test}}\n")
    assert problems(path) == [
        f"{path}:9:29: tuning.objective.split: expected 'validation', got 'test'"]


def test_tuning_needs_a_validation_split(tmp_path):
    base = BASE.replace("train: 0.7, validation: 0.1", "train: 0.8, validation: 0.0")
    path = write_spec(tmp_path, "tuning: {}\n", base=base)
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "data.split.validation: tuning ranks trials on the validation split, which is empty; "
        "give it a fraction > 0"]


def test_grid_sampler_needs_finite_values(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          sampler: {type: grid}
          search:
            training.optimizer.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
            model.dropout: {type: uniform, low: 0.0, high: 0.5}
            training.epochs: {type: int, low: 1, high: 3}
        """)
    assert [p.split(": ", 1)[1] for p in problems(path)] == [
        "tuning.search.training.optimizer.learning_rate.type: the grid sampler needs a finite set of "
        "values; loguniform has none, or use type choice or int",
        "tuning.search.model.dropout.type: the grid sampler needs a finite set of values; uniform needs "
        "a 'step', or use type choice or int",
    ]


def test_grid_values_and_default_trials(tmp_path):
    path = write_spec(tmp_path, """\
        tuning:
          sampler: {type: grid}
          search:
            model.dropout: {type: uniform, low: 0.1, high: 0.3, step: 0.1}
            training.batch_size: {type: int, low: 16, high: 64, step: 16}
            model.units: {type: choice, values: [[8], [16, 16]]}
        """)
    spec = load_spec(path)
    search = spec.tuning.search
    assert [grid_values(p) for p in search.values()] == [[0.1, 0.2, 0.3], [16, 32, 48, 64], [[8], [16, 16]]]
    assert grid_size(search) == 24
    assert spec.tuning.trials == 24  # the grid sampler's default: the whole grid
    assert load_spec(write_spec(tmp_path, "tuning: {}\n")).tuning.trials == 20


def test_default_search_space():
    spec = load_spec(TEMPLATE, ["tuning={}"])
    assert spec.tuning.search == {
        "training.optimizer.learning_rate": LogUniform(type="loguniform", low=1e-4, high=1e-2),
        "model.dropout": Uniform(type="uniform", low=0.0, high=0.5),
        "training.batch_size": space.Choice(type="choice", values=[16, 32, 64]),
    }
    cnn = load_spec(ROOT / "specs" / "image-classification.yaml", ["tuning={}"])
    assert list(cnn.tuning.search) == ["training.optimizer.learning_rate", "model.head.dropout",
                                       "training.batch_size"]


def test_resolved_spec_round_trips():
    spec = load_spec(TEMPLATE)
    assert spec.tuning.objective.direction == "minimize"
    assert Spec.model_validate(spec.model_dump()) == spec
    assert Spec.model_validate(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json")))) == spec


def test_template_run_is_unchanged_by_its_tuning_section():
    with_tuning = load_spec(TEMPLATE)
    without = load_spec(TEMPLATE, ["tuning=null"])
    assert with_tuning.model_dump(exclude={"tuning"}) == without.model_dump(exclude={"tuning"})
    assert without.tuning is None


def test_override_values_are_written_as_yaml():
    from dlpipe.spec.tuning import _yaml

    assert _yaml(1e-05) == "1.0e-05"  # json.dumps gives 1e-05, which YAML 1.1 reads as a string
    assert yaml.safe_load(_yaml(1e-05)) == 1e-05
    assert _yaml([64, 64]) == "[64, 64]"
    assert _yaml({"type": "sgd", "momentum": 0.9}) == "{type: sgd, momentum: 0.9}"
    assert _yaml("1") == "'1'"


def test_choices_that_optuna_cannot_store_are_encoded():
    dims = {d.key: d for d in space.dimensions({
        "a": space.Choice(type="choice", values=[16, 32]),
        "b": space.Choice(type="choice", values=[[8], [16, 16]]),
        "c": space.Choice(type="choice", values=[True, 1]),
    })}
    assert not dims["a"].encoded and dims["a"].choices() == [16, 32]
    assert dims["b"].choices() == ["[8]", "[16, 16]"] and dims["b"].decode("[16, 16]") == [16, 16]
    assert dims["c"].choices() == ["true", "1"] and dims["c"].decode("true") is True
