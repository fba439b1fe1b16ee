"""Data → Spec or located problems (dlpipe/spec/validation.py, checks.py), the templates'
round trip, and the JSON Schema. Expected positions are found in the text, never counted
by hand, so that editing a template does not break these tests."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from dlpipe import registry
from dlpipe.cli import main
from dlpipe.errors import SpecError
from dlpipe.spec import Spec, check_files, load_spec
from dlpipe.spec.loader import apply_overrides, parse
from dlpipe.spec.validation import validate_document

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "specs").glob("*.yaml"))
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "specs"
IMAGE = (ROOT / "specs" / "image-classification.yaml").read_text(encoding="utf-8")
# Without its `tuning` section (tested in test_spec_tuning.py), whose objective would add
# its own problem to every case that changes the task.
TABULAR = (ROOT / "specs" / "tabular-classification.yaml").read_text(encoding="utf-8").split("\n# Hyperparameter search")[0]


def edit(text: str, *replacements: tuple[str, str]) -> str:
    """Replace each `old` (which must occur exactly once, so a template change fails loudly)."""
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def at(text: str, needle: str, after: str = "") -> tuple[int, int]:
    """1-based (line, column) of the first `needle` (after the first `after`) in `text`."""
    start = text.index(after) if after else 0
    offset = text.index(needle, start)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def problems(text: str, *overrides: str) -> list[str]:
    doc = apply_overrides(parse(text, "spec.yaml"), list(overrides))
    with pytest.raises(SpecError) as info:
        validate_document(doc)
    return [str(p) for p in info.value.problems]


def line(text: str, where: str | tuple[str, str], path: str, message: str) -> str:
    """The expected problem line; `where` is a needle, or (needle, text before it)."""
    needle, after = (where, "") if isinstance(where, str) else where
    row, column = at(text, needle, after)
    return f"spec.yaml:{row}:{column}: {path}: {message}"


# The acceptance case ----------------------------------------------------------------------

# The tabular template with three faults: a misspelt key, a negative learning rate, a word
# for a number.
ACCEPTANCE = edit(TABULAR, ("  epochs: 50", "  epoch: 50"),
                  ("learning_rate: 1.0e-3", "learning_rate: -1.0e-3"),
                  ("batch_size: 32", "batch_size: thirty-two"))
ACCEPTANCE_PROBLEMS = [
    line(ACCEPTANCE, "epoch:", "training.epoch", "unknown key 'epoch'; did you mean 'epochs'?"),
    line(ACCEPTANCE, "thirty-two", "training.batch_size", "expected an integer, got 'thirty-two'"),
    line(ACCEPTANCE, "-1.0e-3", "training.optimizer.learning_rate", "expected a value > 0, got -0.001"),
]


def test_three_faults_give_exactly_three_located_problems():
    assert problems(ACCEPTANCE) == ACCEPTANCE_PROBLEMS


def test_the_acceptance_case_through_the_cli_names_the_file(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(ACCEPTANCE, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [p.replace("spec.yaml", str(spec), 1) for p in ACCEPTANCE_PROBLEMS]


# Names: types, registry names, literals ---------------------------------------------------

NAME_CASES = [
    pytest.param(IMAGE, ("type: adam,", "type: adamm,"), "{type: adamm", "training.optimizer",
                 "unknown type 'adamm'; did you mean 'adam'?", id="optimizer-type"),
    pytest.param(IMAGE, ("type: cnn", "type: cn"), "type: cn\n", "model",
                 "unknown type 'cn'; did you mean 'cnn'?", id="model-type"),
    pytest.param(IMAGE, ("type: builtin", "type: builtn"), "{type: builtn", "data.source",
                 "unknown type 'builtn'; did you mean 'builtin'?", id="source-type"),
    pytest.param(IMAGE, ("{name: image, type: image}", "{name: image, type: imag}"), "{name: image",
                 "data.features[0]", "unknown type 'imag'; did you mean 'image'?", id="feature-type"),
    pytest.param(IMAGE, ("type: rescale", "type: rescal"), "{type: rescal", "prepare.normalization.image",
                 "unknown type 'rescal'; did you mean 'rescale'?", id="normalizer-type"),
    pytest.param(TABULAR, ("activation: relu", "activation: rellu"), "rellu", "model.activation",
                 "unknown activation 'rellu'; did you mean 'relu'?", id="activation"),
    pytest.param(IMAGE, ("metrics: [accuracy, f1_macro,", "metrics: [accuracy, f1_macr,"), "f1_macr",
                 "evaluation.metrics[1]", "unknown metric 'f1_macr'; did you mean 'f1_macro'?", id="metric"),
    pytest.param(IMAGE, ("formats: [keras, saved_model]", "formats: [kerass, saved_model]"), "kerass",
                 "export.formats[0]", "unknown export format 'kerass'; did you mean 'keras'?",
                 id="export-format"),
    pytest.param(IMAGE, ("name: digits}", "name: digit}"), "digit}", "data.source.name",
                 "unknown dataset 'digit'; did you mean 'digits'?", id="dataset"),
    pytest.param(IMAGE, ("  batch_size: 64\n", "  batch_size: 64\n  loss: msee\n"), "msee", "training.loss",
                 "unknown loss 'msee'; did you mean 'mse'?", id="loss"),
    pytest.param(IMAGE, ("task: classification", "task: clasification"), "clasification", "task",
                 "expected 'classification', 'regression', 'forecasting', 'detection', 'embedding', 'generation' or 'multi_output', got "
                 "'clasification'; "
                 "did you mean 'classification'?",
                 id="task"),
    pytest.param(IMAGE, ("global_pool: flatten", "global_pool: flaten"), "flaten", "model.global_pool",
                 "expected 'avg', 'max' or 'flatten', got 'flaten'; did you mean 'flatten'?", id="literal"),
]


@pytest.mark.parametrize("template, replacement, where, path, message", NAME_CASES)
def test_an_unknown_name_is_located_with_a_suggestion(template, replacement, where, path, message):
    text = edit(template, replacement)
    assert problems(text) == [line(text, where, path, message)]


def test_an_unknown_name_far_from_any_lists_the_choices_from_the_registry():
    text = edit(IMAGE, ("formats: [keras, saved_model]", "formats: [keras, pickle]"))
    choices = ", ".join(registry.names("exporter"))
    assert problems(text) == [line(text, "pickle", "export.formats[1]",
                                   f"unknown export format 'pickle'; choose from {choices}")]
    text = edit(IMAGE, ("type: adam,", "type: zzz,"))
    [found] = problems(text)
    assert found.startswith(
        line(text, "{type: zzz", "training.optimizer", "unknown type 'zzz'; choose from adam, "))
    assert "sgd" in found.split("choose from ")[1].split(", ")


def test_a_name_with_braces_is_shown_as_written():
    text = edit(IMAGE, ("name: digits}", "name: '{x}'}"))
    choices = ", ".join(registry.names("dataset"))
    assert problems(text) == [
        line(text, "'{x}'", "data.source.name", f"unknown dataset '{{x}}'; choose from {choices}")]


def test_an_unknown_key_lists_the_section_keys_when_nothing_is_close():
    text = edit(IMAGE, ("  batch_size: 64\n", "  batch_size: 64\n  zzzz: 1\n"))
    [found] = problems(text)
    assert found.startswith(
        line(text, "zzzz", "training.zzzz", "unknown key 'zzzz'; expected one of: epochs, "))


# Missing keys, wrong types, bounds --------------------------------------------------------

SHAPE_CASES = [
    pytest.param(IMAGE, ("name: digits-cnn\n", ""), (1, 1), "name", "missing required key 'name'",
                 id="missing-top-level"),
    pytest.param(IMAGE, ("  blocks:\n    - {filters: 32, convs: 2}\n    - {filters: 64, convs: 2}\n", ""),
                 "model:", "model.blocks", "missing required key 'blocks'", id="missing-in-section"),
    pytest.param(IMAGE, ("{filters: 32, convs: 2}", "{convs: 2}"), "{convs: 2}", "model.blocks[0].filters",
                 "missing required key 'filters'", id="missing-in-list-item"),
    pytest.param(IMAGE, ("{type: adam, learning_rate: 1.0e-3}", "{learning_rate: 1.0e-3}"), "{learning_rate",
                 "training.optimizer",
                 f"missing required key 'type' (one of: {', '.join(registry.names('optimizer'))})",
                 id="missing-type"),
    pytest.param(IMAGE, ("{type: adam, learning_rate: 1.0e-3}", "adam"), "adam\n", "training.optimizer",
                 "expected a mapping, got 'adam'", id="scalar-for-mapping"),
    pytest.param(IMAGE, ("epochs: 40", "epochs: '40'"), "'40'", "training.epochs",
                 "expected an integer, got '40'", id="quoted-int"),
    pytest.param(IMAGE, ("epochs: 40", "epochs: 40.5"), "40.5", "training.epochs",
                 "expected an integer, got 40.5", id="float-for-int"),
    pytest.param(IMAGE, ("stratify: true", "stratify: maybe"), "maybe", "data.split.stratify",
                 "expected true or false, got 'maybe'", id="bool"),
    pytest.param(IMAGE, ("metrics: [accuracy, f1_macro, precision_macro, recall_macro]", "metrics: accuracy"),
                 "accuracy\n", "evaluation.metrics", "expected a list, got 'accuracy'", id="scalar-for-list"),
    pytest.param(IMAGE, ("version: 1", "version: 2"), "2\n", "version", "expected 1, got 2", id="version"),
    pytest.param(IMAGE, ("name: digits-cnn", "name: digits cnn"), "digits cnn", "name",
                 "'digits cnn' does not match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", id="name-pattern"),
    pytest.param(IMAGE, ("head: {units: [64], dropout: 0.3}", "head: {units: [64], dropout: 1.5}"), "1.5",
                 "model.head.dropout", "expected a value < 1, got 1.5", id="upper-bound"),
    pytest.param(IMAGE, ("{filters: 64, convs: 2}", "{filters: 0, convs: 2}"), "0, convs",
                 "model.blocks[1].filters", "expected a value > 0, got 0", id="lower-bound"),
    pytest.param(IMAGE, ("  blocks:\n    - {filters: 32, convs: 2}\n    - {filters: 64, convs: 2}\n",
                         "  blocks: []\n"), "[]", "model.blocks", "expected at least 1 item(s), got 0",
                 id="empty-list"),
]


@pytest.mark.parametrize("template, replacement, where, path, message", SHAPE_CASES)
def test_a_missing_key_or_wrong_value_is_located(template, replacement, where, path, message):
    text = edit(template, replacement)
    row, column = where if isinstance(where, tuple) else at(text, where)
    assert problems(text) == [f"spec.yaml:{row}:{column}: {path}: {message}"]


def test_numbers_in_exponent_notation_validate():
    spec = load_spec(ROOT / "specs" / "image-classification.yaml", ["training.optimizer.learning_rate=1e-4"])
    assert spec.training.optimizer.learning_rate == 1e-4
    text = edit(IMAGE, ("learning_rate: 1.0e-3", "learning_rate: 3e-4"))
    assert validate_document(parse(text, "spec.yaml")).training.optimizer.learning_rate == 3e-4


# Cross-field checks (dlpipe/spec/checks.py) -----------------------------------------------

CHECK_CASES = [
    pytest.param(IMAGE, [("test: 0.1, stratify", "test: 0.2, stratify")], "{train:", "data.split",
                 "train + validation + test must be 1, got 0.8 + 0.1 + 0.2 = 1.1", id="split-sum"),
    pytest.param(IMAGE, [("  batch_size: 64\n", "  batch_size: 64\n  loss: mse\n")], "mse\n", "training.loss",
                 "loss 'mse' does not fit task classification; use auto or one of binary_crossentropy, "
                 "binary_focal_crossentropy, categorical_crossentropy, categorical_focal_crossentropy, "
                 "sparse_categorical_crossentropy", id="loss-vs-task"),
    pytest.param(IMAGE, [("f1_macro,", "rmse,")], "rmse", "evaluation.metrics[1]",
                 "metric 'rmse' does not fit task classification; choose from "
                 + ", ".join(registry.names("metric:classification")), id="metric-vs-task"),
    pytest.param(IMAGE, [("monitor: val_loss", "monitor: val_los")], "val_los",
                 "training.early_stopping.monitor",
                 "cannot monitor 'val_los'; did you mean 'val_loss'?", id="monitor-typo"),
    pytest.param(IMAGE, [("monitor: val_loss", "monitor: val_mae")], "val_mae",
                 "training.early_stopping.monitor",
                 "cannot monitor 'val_mae'; choose from loss, accuracy, val_loss, val_accuracy",
                 id="monitor-vs-task"),
    pytest.param(IMAGE, [("validation: 0.1, test: 0.1", "validation: 0.0, test: 0.2")], "val_loss",
                 "training.early_stopping.monitor",
                 "monitoring 'val_loss' needs a validation split; data.split.validation is 0",
                 id="monitor-no-split"),
    pytest.param(IMAGE, [("    image: {type: rescale", "    imag: {type: rescale")], "{type: rescale",
                 "prepare.normalization.imag",
                 "'imag' is neither a feature nor a feature type; did you mean 'image'?",
                 id="normalization-key"),
    pytest.param(IMAGE, [("{name: image, type: image}", "{name: image, type: numerical}")],
                 ("cnn", "type: "), "model.type",
                 "a cnn reads exactly one feature of type image; data.features has 0 of that type",
                 id="cnn-without-image"),
    pytest.param(IMAGE, [("{name: image, type: image}", "{name: label, type: image}")], "label, type",
                 "data.features[0].name", "'label' is the target; it cannot also be a feature",
                 id="target-as-feature"),
    pytest.param(TABULAR, [("  target: {name: target}", "  # no target")], "source:", "data",
                 "missing required key 'target' (task classification learns from labels)", id="no-target"),
    pytest.param(TABULAR, [("task: classification", "task: regression"),
                           ("metrics: [accuracy, f1_macro, roc_auc, log_loss]", "metrics: [mae]")],
                 "true}", "data.split.stratify", "stratify needs classes to stratify by; the regression task has none",
                 id="stratify-vs-task"),
    pytest.param(TABULAR, [("  target: {name: target}", "  target: {name: target, class_names: [a, b]}"),
                           ("task: classification", "task: regression"),
                           ("stratify: true", "stratify: false"),
                           ("metrics: [accuracy, f1_macro, roc_auc, log_loss]", "metrics: [mae]")],
                 "[a, b]", "data.target.class_names", "task regression learns numbers, not classes: class_names does not apply",
                 id="class-names-vs-task"),
]


@pytest.mark.parametrize("template, replacements, where, path, message", CHECK_CASES)
def test_a_cross_field_check_is_located_at_the_field_to_change(template, replacements, where, path, message):
    text = edit(template, *replacements)
    assert problems(text) == [line(text, where, path, message)]


def test_an_embedding_or_a_gan_stratifies_by_its_target_when_it_has_one():
    # Their pipelines split by data.target's classes; without a target there are none.
    for name in ("autoencoder-embeddings", "image-generation-gan"):
        text = (ROOT / "specs" / f"{name}.yaml").read_text(encoding="utf-8")
        with_target = validate_document(apply_overrides(parse(text, "spec.yaml"), [
            "data.target={name: label}", "data.split.stratify=true"]))
        assert with_target.data.split.stratify is True
        found = problems(text, "data.target=null", "data.split.stratify=true")
        assert [p for p in found if "stratify" in p] == [
            "--set:2:21: data.split.stratify: stratify needs data.target: the classes to keep in proportion"]


def test_a_feature_listed_twice_is_reported_with_the_cnn_check():
    text = edit(IMAGE, ("    - {name: image, type: image}", "    - {name: image, type: image}\n"
                                                            "    - {name: image, type: image}"))
    assert problems(text) == [
        line(text, ("image, type", "image}\n"), "data.features[1].name", "feature 'image' is listed twice"),
        line(text, ("cnn", "type: "), "model.type",
             "a cnn reads exactly one feature of type image; data.features has 2 of that type"),
    ]


def test_a_cnn_takes_side_features_beside_its_image():
    # Features the architecture does not read join its output in the head.
    text = edit(IMAGE, ("    - {name: image, type: image}", "    - {name: image, type: image}\n"
                                                            "    - {name: extra, type: numerical}"))
    spec = validate_document(parse(text, "spec.yaml"))
    assert [(f.name, f.type) for f in spec.data.features] == [("image", "image"), ("extra", "numerical")]


def test_every_cross_field_problem_is_reported_together():
    text = edit(IMAGE, ("test: 0.1, stratify", "test: 0.3, stratify"),
                ("monitor: val_loss", "monitor: val_acc"), ("f1_macro,", "r2,"))
    assert [p.split(": ")[1] for p in problems(text)] == [
        "data.split", "training.early_stopping.monitor", "evaluation.metrics[1]"]


# All problems at once ---------------------------------------------------------------------


def test_a_duplicate_key_and_a_type_error_are_both_reported():
    text = edit(IMAGE, ("  batch_size: 64\n", "  batch_size: 64\n  epochs: 3\n"), ("seed: 42", "seed: many"))
    assert problems(text) == [
        line(text, "many", "seed", "expected an integer, got 'many'"),
        line(text, "epochs: 3", "training.epochs",
             f"duplicate key 'epochs' (first given on line {at(text, 'epochs: 40')[0]})"),
    ]


def test_every_kind_of_problem_in_one_file_is_reported_in_file_order():
    path = FIXTURES / "many-problems.yaml"
    text = path.read_text(encoding="utf-8")
    assert [str(p) for p in check_files([path])] == [
        f"{path}:{r}:{c}: {p}: {m}" for (r, c), p, m in [
            (at(text, "!!python"), "seed", "YAML tag '!!python/object/apply:os.system' is not allowed"),
            (at(text, "digitz"), "data.source.name", "unknown dataset 'digitz'; did you mean 'digits'?"),
            (at(text, "sixty-four"), "model.units[1]", "expected an integer, got 'sixty-four'"),
            (at(text, "dropout: 0.2"), "model.dropout", "duplicate key 'dropout' (first given on line "
                                                        f"{at(text, 'dropout: 0.1')[0]})"),
            (at(text, "epoch:"), "training.epoch", "unknown key 'epoch'; did you mean 'epochs'?"),
            (at(text, "{type: adamm"), "training.optimizer", "unknown type 'adamm'; did you mean 'adam'?"),
        ]
    ]


def test_check_files_reports_every_file(tmp_path):
    good, bad = TEMPLATES[0], tmp_path / "bad.yaml"
    bad.write_text(edit(IMAGE, ("epochs: 40", "epochs: -1")), encoding="utf-8")
    found = check_files([bad, good, tmp_path / "missing.yaml", FIXTURES / "many-problems.yaml"])
    assert [p.file for p in found] == [str(bad), str(tmp_path / "missing.yaml")] + [
        str(FIXTURES / "many-problems.yaml")] * 6
    assert check_files(TEMPLATES) == []


# Defaults the task fills in ---------------------------------------------------------------


def test_task_defaults_are_written_into_the_spec():
    text = edit(TABULAR, ("evaluation:\n  metrics: [accuracy, f1_macro, roc_auc, log_loss]\n", ""),
                ("test: 0.2, stratify: true}", "test: 0.2}"))
    spec = validate_document(parse(text, "spec.yaml"))
    assert spec.evaluation.metrics == ["accuracy", "f1_macro"]
    assert spec.data.split.stratify is True
    text = edit(text, ("task: classification", "task: regression"))
    regression = validate_document(parse(text, "spec.yaml"))
    assert regression.evaluation.metrics == ["mae", "mse", "rmse", "r2"]
    assert regression.data.split.stratify is False


# Templates: round trip and JSON Schema ----------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(document)
    return document


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_a_template_round_trips_through_model_dump(template):
    spec = load_spec(template)
    assert Spec.model_validate(spec.model_dump()) == spec
    assert Spec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_the_json_schema_accepts_a_template_and_its_resolved_form(template, schema):
    validator = jsonschema.Draft202012Validator(schema)
    data = parse(template.read_text(encoding="utf-8"), str(template)).data
    assert [e.message for e in validator.iter_errors(data)] == []
    resolved = load_spec(template).model_dump(mode="json")
    assert [e.message for e in validator.iter_errors(resolved)] == []


def test_the_json_schema_rejects_what_validation_rejects(schema):
    validator = jsonschema.Draft202012Validator(schema)
    data = parse(IMAGE, "spec.yaml").data
    data["training"]["epoch"] = 5
    data["training"]["optimizer"]["type"] = "adamm"
    data["model"]["activation"] = "rellu"
    data["evaluation"]["metrics"].append("f1_macr")
    failed = sorted(tuple(e.absolute_path) for e in validator.iter_errors(data))
    assert failed == [("evaluation", "metrics"), ("model",), ("training",), ("training", "optimizer")]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "dlpipe spec"


def test_the_json_schema_describes_fields_with_their_docstrings(schema):
    assert schema["properties"]["seed"]["description"].startswith("Seeds splits, shuffling, initial weights;")
    # Declared (and documented) in a base class, shown in each subclass.
    for optimizer in ("Adam", "SGD"):
        clipnorm = schema["$defs"][optimizer]["properties"]["clipnorm"]
        assert clipnorm["description"] == "Clip each gradient to this L2 norm."
    # Redeclared in a subclass: its own docstring, never the base's.
    sgd_rate = schema["$defs"]["SGD"]["properties"]["learning_rate"]["description"]
    assert sgd_rate.startswith("The base learning rate (higher than Adam's default)")
    from dlpipe.spec.base import _attribute_docstrings
    from dlpipe.spec.training import SGD

    class Redeclared(SGD):
        learning_rate: float = 0.5

    assert "learning_rate" not in _attribute_docstrings(Redeclared)
    assert "clipnorm" in _attribute_docstrings(Redeclared)
    # A model's own docstring describes the model.
    assert schema["$defs"]["EarlyStopping"]["description"].startswith("Stop when `monitor` has not improved")


def test_a_spec_builds_only_the_union_members_it_names(tmp_path):
    """`ByType` (spec/base.py): a first check builds the architecture and optimizer the spec
    names, not the other members; a type no member has is worded from the whole union.
    Fresh interpreters: this process may have built them all already."""
    import subprocess
    import sys

    probe = ("import json, sys; from dlpipe.spec import check_files; from dlpipe.spec import model, training; "
             "problems = check_files([sys.argv[1]]); "
             "print(json.dumps([[p.message for p in problems], {c.__name__: c.__pydantic_complete__ for c in "
             "(model.MLP, model.CNN, model.Transformer, training.Adam, training.SGD, training.Muon)}]))")
    template = ROOT / "specs" / "tabular-classification.yaml"
    found = subprocess.run([sys.executable, "-c", probe, str(template)], capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == [[], {"MLP": True, "CNN": False, "Transformer": False, "Adam": True,
                                             "SGD": False, "Muon": False}]
    text = template.read_text(encoding="utf-8").replace("  type: mlp", "  type: mlpp", 1)
    typo = tmp_path / "typo.yaml"  # a builtin source: no data path to resolve
    typo.write_text(text, encoding="utf-8")
    found = subprocess.run([sys.executable, "-c", probe, str(typo)], capture_output=True, text=True, check=True)
    assert json.loads(found.stdout)[0] == ["unknown type 'mlpp'; did you mean 'mlp'?"]
