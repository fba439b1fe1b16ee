"""Task multi_output: several targets in one spec (dlpipe/tasks/multi_output.py).

Fast: `dlpipe validate` refuses, each at its line, an output name used twice, a loss that
does not fit its output's kind, an unknown metric or loss (did-you-mean), data.targets in
another task and data.target in this one. Slow: the template trains; each output's metrics
in metrics.json equal scikit-learn's, computed here from the saved model's predictions on
the test rows of splits.json against labels read from scikit-learn's own copy of the data;
every export gives every output and verifies; `dlpipe predict` writes one column group per
output; `dlpipe evaluate` writes the same numbers again; on backend jax, without TensorFlow,
the template trains, is evaluated, exported and predicted, each output's test metrics close
to the TensorFlow run's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main
from test_backend import AFTER_TRAINING

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "specs" / "multi-output.yaml"

SPEC = """\
version: 1
name: two-outputs
task: multi_output
data:
  source: {type: builtin, name: wine}
  targets:
    - {name: cultivar, column: target, kind: classification}
    - {name: alcohol, column: alcohol, kind: regression}
model: {type: mlp}
"""


def at(tmp_path: Path, text: str, line: int, value: str) -> str:
    """`FILE:LINE:COL` of `value` on 1-based `line` of `text`, as validate prints it."""
    return f"{tmp_path / 'spec.yaml'}:{line}:{text.splitlines()[line - 1].index(value) + 1}"


def validate(tmp_path: Path, text: str, *sets: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "--no-cache", str(path), *[a for s in sets for a in ("--set", s)]])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def test_the_template_and_a_plain_spec_validate(tmp_path):
    assert validate(tmp_path, TEMPLATE.read_text(encoding="utf-8"))[0] == 0
    assert validate(tmp_path, TEMPLATE.read_text(encoding="utf-8"), "backend=jax") == (0, [f"{tmp_path / 'spec.yaml'}: valid"])
    code, lines = validate(tmp_path, SPEC)
    assert code == 0, lines


def test_an_output_name_used_twice_is_refused_at_its_line(tmp_path):
    text = SPEC.replace("{name: alcohol,", "{name: cultivar,")
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 8, 'cultivar')}: data.targets[1].name: output name 'cultivar' is used twice "
                     "(first at data.targets[0]); every output needs its own name"]


def test_a_loss_that_does_not_fit_its_output_is_refused_at_its_line(tmp_path):
    text = SPEC.replace("kind: regression}", "kind: regression, loss: categorical_crossentropy}")
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 8, 'categorical')}: data.targets[1].loss: loss 'categorical_crossentropy' is a "
                     "classification loss; it does not fit regression output 'alcohol': use auto, mse, mae, huber, "
                     "log_cosh"]
    text = SPEC.replace("kind: classification}", "kind: classification, loss: mse}")
    code, lines = validate(tmp_path, text)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"{at(tmp_path, text, 7, 'mse')}: data.targets[0].loss: loss 'mse' is a regression loss")


def test_unknown_names_get_a_did_you_mean_at_their_line(tmp_path):
    text = SPEC.replace("kind: regression}", "kind: regression, loss: hubber, metrics: [rsme]}")
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 8, 'hubber')}: data.targets[1].loss: unknown loss 'hubber'; did you mean 'huber'?",
                     f"{at(tmp_path, text, 8, 'rsme')}: data.targets[1].metrics[0]: metric 'rsme' does not score "
                     "regression output 'alcohol'; did you mean 'rmse'?"]
    text = SPEC.replace("kind: regression}", "kind: regresion}")
    code, lines = validate(tmp_path, text)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"{at(tmp_path, text, 8, 'regresion')}: "), lines
    assert "data.targets[1].kind" in lines[0] and "'regression'" in lines[0], lines


def test_a_classification_metric_on_a_regression_output_is_refused(tmp_path):
    text = SPEC.replace("kind: regression}", "kind: regression, metrics: [accuracy]}")
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 8, 'accuracy')}: data.targets[1].metrics[0]: metric 'accuracy' does not score "
                     "regression output 'alcohol'; choose from mae, mse, rmse, r2, mape"]


def test_targets_and_target_belong_to_their_own_tasks(tmp_path):
    code, lines = validate(tmp_path, SPEC, "data.target={name: target}")
    assert code == 1
    assert lines == ["--set:1:13: data.target: task multi_output reads its targets from data.targets (one entry per "
                     "output); data.target does not apply"]
    code, lines = validate(tmp_path, SPEC.replace("task: multi_output", "task: classification"),
                           "data.target={name: target}")
    assert code == 1
    assert lines == [f"{at(tmp_path, SPEC, 7, '-')}: data.targets: the classification task does not use this key "
                     "(task multi_output does); remove it"]
    text = SPEC.split("  targets:")[0] + "model: {type: mlp}\n"
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 5, 'source')}: data: missing required key 'targets' (task multi_output learns "
                     "one output per entry: {name, column, kind})"]


def test_a_target_column_cannot_be_a_feature(tmp_path):
    text = SPEC.replace("  targets:", "  features: [{name: ash, type: numerical}, {name: alcohol, type: numerical}]\n  targets:")
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 9, 'alcohol, kind')}: data.targets[1].column: 'alcohol' is a feature; a column "
                     "cannot be both a feature and a target"]


# The template, trained: every output against scikit-learn, every export, predict, evaluate ---

FORMATS = "export.formats=[keras,saved_model,onnx,tflite]"
OUTPUT_COLUMNS = ["cultivar/prediction", "cultivar/probability_class_0", "cultivar/probability_class_1",
                  "cultivar/probability_class_2", "alcohol/prediction"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("multi-output") / "run"
    result = CliRunner().invoke(main, ["run", str(TEMPLATE), "--set", "training.epochs=30", "--set", FORMATS,
                                       "--set", "training.progress=none", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _wine_test_rows(run: Path):
    """(features by model input, cultivar labels, alcohol values) of the run's test rows, read
    from scikit-learn's own copy of the data (not through dlpipe's data stage)."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    rows = json.loads((run / "splits.json").read_text())["splits"]["test"]
    features = json.loads((run / "data.json").read_text())["features"]
    x = {f["input"]: wine[f["name"]].to_numpy("float32")[rows].reshape(-1, 1) for f in features}
    assert sorted(f["name"] for f in features) == sorted(set(wine.columns) - {"target", "alcohol"})
    return x, wine["target"].to_numpy()[rows], wine["alcohol"].to_numpy("float64")[rows]


@pytest.mark.slow
def test_each_outputs_metrics_equal_scikit_learns(trained):
    from sklearn import metrics as sk

    from dlpipe.modelfile import load_keras_model

    x, cultivar, alcohol = _wine_test_rows(trained)
    output = load_keras_model(trained / "model.keras")(x, training=False)
    probabilities = np.asarray(output["cultivar"], dtype=np.float64)
    predicted = np.asarray(output["alcohol"], dtype=np.float64).reshape(-1)
    expected = {
        "cultivar/accuracy": sk.accuracy_score(cultivar, probabilities.argmax(axis=1)),
        "cultivar/f1_macro": sk.f1_score(cultivar, probabilities.argmax(axis=1), average="macro"),
        "cultivar/log_loss": sk.log_loss(cultivar, probabilities, labels=[0, 1, 2]),
        "alcohol/mae": sk.mean_absolute_error(alcohol, predicted),
        "alcohol/rmse": np.sqrt(sk.mean_squared_error(alcohol, predicted)),
        "alcohol/r2": sk.r2_score(alcohol, predicted),
    }
    metrics = json.loads((trained / "metrics.json").read_text())
    assert set(metrics["test"]) == set(expected)
    for name, value in expected.items():
        assert metrics["test"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert metrics["test"]["cultivar/accuracy"] >= 0.85  # seen: 0.97 after 30 epochs; the majority class 0.22
    # Baselines per output, under the same names: the mean predicts alcohol with r2 <= 0.
    baselines = metrics["baselines"]["test"]
    assert set(baselines["majority_class"]) == {"cultivar/accuracy", "cultivar/f1_macro", "cultivar/log_loss"}
    assert set(baselines["mean"]) == {"alcohol/mae", "alcohol/rmse", "alcohol/r2"}
    assert baselines["mean"]["alcohol/r2"] <= 0.0
    # The confusion matrix of the classification output, counted by scikit-learn too.
    counts = json.loads((trained / "evaluation/test/cultivar/confusion_matrix.json").read_text())["counts"]
    assert counts == sk.confusion_matrix(cultivar, probabilities.argmax(axis=1), labels=[0, 1, 2]).tolist()
    # Each output's plots, and the report that shows them beside every output's metric.
    assert {"cultivar_confusion_matrix.png", "alcohol_residuals.png"} <= {p.name for p in (trained / "plots").iterdir()}
    report = (trained / "report.html").read_text()
    assert "cultivar confusion matrix" in report and "alcohol residuals" in report and "alcohol/mae" in report


@pytest.mark.slow
def test_every_export_gives_every_output_and_verifies(trained):
    from dlpipe.prediction import locate_model

    verification = json.loads((trained / "export/verification.json").read_text())
    test = json.loads((trained / "metrics.json").read_text())["test"]
    assert set(verification) == {"keras", "saved_model", "onnx", "tflite/float32"}
    for key, entry in verification.items():
        assert entry["passed"], (key, entry)
        assert set(entry["outputs"]) == {"cultivar", "alcohol"}, key
        assert entry["max_abs_diff"] <= 1e-4 and entry["agreement"] == 1.0, (key, entry)
        # Scored from its own runtime on the test split: metrics.json's numbers, to float32's precision.
        assert entry["test_metrics"] == pytest.approx(test, rel=1e-4, abs=1e-5), key
    x, _, _ = _wine_test_rows(trained)
    paths = {"keras": "keras/model.keras", "saved_model": "saved_model", "onnx": "onnx/model.onnx",
             "tflite": "tflite/model_float32.tflite"}
    reference = None
    for kind, path in paths.items():  # each loaded with its own runtime, as dlpipe predict does
        output = locate_model(trained / "export" / path).predictor()(x)
        assert set(output) == {"cultivar", "alcohol"}, kind
        assert output["cultivar"].shape == (len(x["ash"]), 3) and output["alcohol"].shape == (len(x["ash"]), 1)
        reference = reference or output
        for name in output:
            np.testing.assert_allclose(output[name], reference[name], atol=1e-4, err_msg=f"{kind} {name}")


@pytest.mark.slow
def test_predict_writes_a_column_group_per_output(trained, tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    rows = json.loads((trained / "splits.json").read_text())["splits"]["test"]
    source = tmp_path / "wines.csv"
    wine.drop(columns=["target", "alcohol"]).iloc[rows].to_csv(source, index=False)
    for model in ("", "export/onnx/model.onnx", "export/tflite/model_float32.tflite"):
        out = tmp_path / f"predictions{len(model)}.csv"
        result = CliRunner().invoke(main, ["predict", str(trained / model), str(source), "--out", str(out)])
        assert result.exit_code == 0, result.output
        with open(out, newline="") as handle:
            table = list(csv.reader(handle))
        assert table[0] == OUTPUT_COLUMNS, model
        assert len(table) == len(rows) + 1
        body = np.asarray([[float(v) for v in row[1:4] + row[4:]] for row in table[1:]])
        assert np.allclose(body[:, :3].sum(axis=1), 1.0, atol=1e-5)  # the cultivar's probabilities
        assert all(row[0] == f"class_{int(np.argmax([float(v) for v in row[1:4]]))}" for row in table[1:])
        assert 10.0 < body[:, 3].mean() < 16.0  # alcohol in % by volume
    jsonl = tmp_path / "predictions.jsonl"
    assert CliRunner().invoke(main, ["predict", str(trained), str(source), "--out", str(jsonl)]).exit_code == 0
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert list(first) == OUTPUT_COLUMNS


@pytest.mark.slow
def test_evaluate_writes_the_runs_numbers_again(trained):
    result = CliRunner().invoke(main, ["evaluate", str(trained)])
    assert result.exit_code == 0, result.output
    (folder,) = (trained / "evaluations").iterdir()
    again, first = (json.loads((path / "metrics.json").read_text()) for path in (folder, trained))
    for split in ("validation", "test"):
        assert again[split] == pytest.approx(first[split], rel=1e-6)
    assert again["baselines"] == first["baselines"]


@pytest.mark.slow
def test_the_template_trains_on_jax_without_tensorflow_like_on_tensorflow(trained, tmp_path):
    """backend: jax, in a process where TensorFlow cannot be imported: the template trains on
    dict-of-targets numpy batches, is evaluated, exported (keras) and predicted; each output's
    test metrics are close to the TensorFlow run's (same rows, same epochs; another shuffle
    order and initialisation), and its .keras file gives the same outputs on TensorFlow."""
    from sklearn.datasets import load_wine

    from dlpipe.modelfile import load_keras_model
    from test_backend import without_tensorflow

    run, source, predicted = tmp_path / "run", tmp_path / "wines.csv", tmp_path / "predicted.csv"
    rows = json.loads((trained / "splits.json").read_text())["splits"]["test"]
    load_wine(as_frame=True).frame.drop(columns=["target", "alcohol"]).iloc[rows].to_csv(source, index=False)
    sets = [a for s in ("backend=jax", "training.epochs=30", "export.formats=[keras]", "training.progress=none",
                        "evaluation.baselines=false")  # baselines: backend-free, checked above (and seconds)
            for a in ("--set", s)]
    commands = [["run", str(TEMPLATE), *sets, "--out", str(run)], ["evaluate", str(run)],
                ["export", str(run), "--format", "keras"], ["predict", str(run), str(source), "--out", str(predicted)]]
    result = without_tensorflow(AFTER_TRAINING.format(commands=commands), env={"DLPIPE_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "jax" and "tensorflow" not in record["versions"]
    assert (run / "splits.json").read_text() == (trained / "splits.json").read_text()
    on_jax, on_tensorflow = (json.loads((path / "metrics.json").read_text())["test"] for path in (run, trained))
    assert set(on_jax) == set(on_tensorflow)
    # Seen (30 epochs): accuracy 1.000 on both; alcohol MAE 0.388 on jax, 0.385 on TensorFlow.
    assert on_jax["cultivar/accuracy"] >= 0.9 and abs(on_jax["cultivar/accuracy"] - on_tensorflow["cultivar/accuracy"]) <= 0.06
    assert abs(on_jax["alcohol/mae"] - on_tensorflow["alcohol/mae"]) <= 0.1 and on_jax["alcohol/r2"] >= 0.3
    (folder,) = (run / "evaluations").iterdir()  # dlpipe evaluate on jax: the run's numbers again
    assert json.loads((folder / "metrics.json").read_text())["test"] == pytest.approx(on_jax, rel=1e-6)
    verification = json.loads((run / "export/verification.json").read_text())
    assert set(verification) == {"keras"} and verification["keras"]["passed"]
    assert set(verification["keras"]["outputs"]) == {"cultivar", "alcohol"}
    # The JAX run's model.keras on TensorFlow (this process) gives what dlpipe predict gave on JAX.
    x, cultivar, _ = _wine_test_rows(run)
    output = load_keras_model(run / "model.keras")(x, training=False)
    with open(predicted, newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == OUTPUT_COLUMNS and len(table) == len(rows) + 1
    body = np.asarray([[float(v) for v in row[1:]] for row in table[1:]])
    np.testing.assert_allclose(body[:, :3], np.asarray(output["cultivar"]), atol=1e-5)
    np.testing.assert_allclose(body[:, 3], np.asarray(output["alcohol"]).reshape(-1), rtol=1e-5)
    assert np.mean(body[:, :3].argmax(axis=1) == cultivar) == pytest.approx(on_jax["cultivar/accuracy"])


def test_tune_objectives_name_an_outputs_metric_at_their_line(tmp_path):
    text = SPEC + "tuning:\n  objective: {weights: {cultivar/accuracy: 1.0, alcohol/mea: -1.0}}\n"
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines == [f"{at(tmp_path, text, 11, '-1.0')}: tuning.objective.weights.alcohol/mea: unknown metric "
                     "'mea'; did you mean 'mse'?"]
    text = SPEC + "tuning:\n  objective: {weights: {cultivar/accuracy: 1.0, alcohol/mape: -1.0}}\n"
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert [line.split(": ", 1)[1] for line in lines] == [
        "tuning.objective.direction: a weighted sum has no direction of its own; give direction: maximize or minimize",
        "tuning.objective.weights.alcohol/mape: 'alcohol/mape' is not a metric a run computes; "
        "did you mean 'alcohol/mae'?"]
    code, lines = validate(tmp_path, SPEC + "tuning: {trials: 2}\n")
    assert code == 1
    assert lines[0].endswith("tuning.objective: task multi_output has several outputs: name one output's metric "
                             "(metric: cultivar/accuracy) or weigh several (weights: {cultivar/accuracy: 1.0})")
    assert validate(tmp_path, SPEC + "tuning:\n  objective: {metric: alcohol/r2}\n")[0] == 0


@pytest.mark.slow
def test_tune_ranks_trials_by_a_weighted_sum_of_outputs(tmp_path):
    import optuna

    spec = tmp_path / "tune.yaml"
    spec.write_text(SPEC + "tuning:\n  objective: {weights: {cultivar/accuracy: 1.0, alcohol/mae: -2.0}, "
                           "direction: maximize}\n  search:\n"
                           "    training.optimizer.learning_rate: {type: choice, values: [0.001, 0.03]}\n"
                           "  sampler: {type: grid}\n", encoding="utf-8")
    out = tmp_path / "study"
    result = CliRunner().invoke(main, ["tune", str(spec), "--out", str(out), "--set", "training.epochs=3",
                                       "--set", "export.formats=[]", "--set", "training.progress=none"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "study.json").read_text())
    assert summary["objective"] == {"metric": None, "weights": {"cultivar/accuracy": 1.0, "alcohol/mae": -2.0},
                                    "split": "validation", "direction": "maximize"}
    trials = optuna.load_study(study_name="two-outputs", storage=f"sqlite:///{out / 'study.db'}").trials
    assert len(trials) == 2
    for trial in trials:  # each trial's value: the weighted sum of its run's validation metrics
        scores = json.loads((out / "trials" / f"trial-{trial.number:04d}" / "metrics.json").read_text())["validation"]
        assert trial.value == pytest.approx(scores["cultivar/accuracy"] - 2.0 * scores["alcohol/mae"], rel=1e-12)
    assert summary["best"]["value"] == max(t.value for t in trials)
    assert "validation 1 × cultivar/accuracy + -2 × alcohol/mae" in result.stderr
