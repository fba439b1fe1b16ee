"""Explanations (dlpipe/explain/, `dlpipe explain`, `evaluation.explain`, `predict --explain`).

Oracles: a generated table whose label depends on 2 of its 10 features (every method must
rank those two first); integrated gradients' completeness (attributions sum to
f(x) − f(baseline)); the deletion check (blanking the most attributed pixels hurts more than
blanking random ones); `predict --explain` equals the run's own local explanation of the same
row; the report's numbers equal the JSON files'. No TensorFlow above the slow tests.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.errors import SpecError
from dlpipe.spec import load_document

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


def refusals(template: str, *overrides: str) -> list[str]:
    with pytest.raises(SpecError) as refused:
        load_document(SPECS / template, list(overrides))
    return [f"{p.path}: {p.message}" for p in refused.value.problems]


# The spec (no TensorFlow) ----------------------------------------------------------------

def test_explain_section_validates_for_classification_and_regression():
    for template in ("tabular-classification.yaml", "tabular-regression.yaml", "image-classification.yaml",
                     "text-classification.yaml"):
        spec, _ = load_document(SPECS / template, ["evaluation.explain={rows: [0, 4], steps: 32}"])
        assert spec.evaluation.explain.rows == [0, 4] and spec.evaluation.explain.steps == 32
        assert type(spec).model_validate(spec.model_dump()) == spec


def test_tasks_without_explanations_refuse_the_section_in_one_line():
    assert refusals("time-series-forecasting.yaml", "evaluation.explain={rows: 2}") == [
        "evaluation.explain: the forecasting task does not use this key (tasks classification and regression do); "
        "remove it"]


@pytest.mark.parametrize("template, override, message", [
    ("text-classification.yaml", "evaluation.explain={methods: [permutation]}",
     "evaluation.explain.methods[0]: permutation shuffles tabular features (one numerical, categorical, ordinal "
     "value each); feature 'review' is text: use integrated_gradients"),
    ("text-classification.yaml", "evaluation.explain={methods: [saliency]}",
     "evaluation.explain.methods[0]: saliency maps are drawn over an image input; the model reads no image feature"),
    ("image-classification.yaml", "evaluation.explain={methods: [saliency, saliency]}",
     "evaluation.explain.methods[1]: 'saliency' is listed twice"),
    ("tabular-classification.yaml", "evaluation.explain={rows: [3, 3]}",
     "evaluation.explain.rows[1]: row 3 is listed twice"),
    ("tabular-classification.yaml", "evaluation.explain={methods: [lime]}",
     "evaluation.explain.methods[0]: expected 'integrated_gradients', 'saliency', 'permutation' or "
     "'shap', got 'lime'"),
])
def test_methods_that_do_not_fit_are_refused_at_their_line(template, override, message):
    assert message in refusals(template, override)


def test_a_multi_label_target_is_not_covered():
    found = refusals("tabular-classification.yaml", "data.target.multi_label=true", "evaluation.explain={rows: 2}")
    assert ("evaluation.explain: explanations cover one label or value per example; a multi-label target is not "
            "covered yet") in found


@pytest.mark.parametrize("value, message", [("0", "expected a positive count"), ("a,b", "expected a count (3)"),
                                            ("-1,2", "expected a positive count")])
def test_rows_option_is_a_count_or_positions(value, message, tmp_path):
    result = CliRunner().invoke(main, ["explain", str(tmp_path), "--rows", value])
    assert result.exit_code == 2 and message in result.output


def test_a_task_without_explain_is_refused_before_tensorflow(tmp_path):
    spec, _ = load_document(SPECS / "time-series-forecasting.yaml")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    (tmp_path / "model.keras").write_bytes(b"")
    code = ("import sys; from dlpipe.cli import main\n"
            "try: main(['explain', sys.argv[1]])\n"
            "except SystemExit as e: print(e.code, sorted(m for m in sys.modules if m.startswith('tensorflow'))[:1])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["1", "[]"], done.stdout + done.stderr
    assert done.stderr.strip() == (f"error: {tmp_path}: dlpipe explain does not support the forecasting task yet "
                                   "(it supports classification, regression)")


# The report section, read back ----------------------------------------------------------

class Section(HTMLParser):
    """What the report's explanations section shows, by its data attributes."""

    def __init__(self):
        super().__init__()
        self.figures, self.importance, self.local, self.tokens = [], {}, [], []
        self.halves = None
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and a.get("id"):
            self.figures.append(a["id"])
        if "data-importance" in a:
            self.importance[(a["data-method"], a["data-feature"])] = float(a["data-importance"])
        if a.get("class") == "local-explanation":
            self._current = {"method": a["data-method"], "row": a["data-row"], "attributions": {}}
            self.local.append(self._current)
        if tag == "tr" and "data-attribution" in a and self._current is not None:
            self._current["attributions"][a["data-feature"]] = float(a["data-attribution"])
        if "data-halves" in a:
            self.halves = float(a["data-halves"])
        if tag == "span" and "data-token" in a:
            self.tokens.append((a["data-token"], float(a["data-attribution"])))


def read_section(report: Path) -> Section:
    parser = Section()
    parser.feed(report.read_text(encoding="utf-8"))
    return parser


def read(folder: Path, method: str) -> dict:
    return json.loads((folder / f"{method}.json").read_text(encoding="utf-8"))


def top(document: dict, count: int = 2) -> set[str]:
    return {f["feature"] for f in document["global"]["features"][:count]}


# Slow: real runs -------------------------------------------------------------------------

TWO_OF_TEN = """\
version: 1
name: two-of-ten
task: classification
seed: 42
data:
  source: {type: csv, path: data.csv}
  features: [%s, {name: colour, type: categorical}]
  target: {name: label}
  split: {train: 0.7, validation: 0.15, test: 0.15, stratify: true}
prepare:
  normalization:
    numerical: {type: zscore}
model: {type: mlp, units: [32]}
training:
  epochs: 20
  batch_size: 32
  optimizer: {type: adam, learning_rate: 3.0e-3}
evaluation:
  explain: {methods: [integrated_gradients, permutation, shap], examples: 30, background: 20, rows: 3}
export: {formats: [keras]}
"""


def two_of_ten(folder: Path, rows: int = 1000) -> Path:
    """Nine numbers and a colour; the label depends on x3 and the colour only."""
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=(rows, 9))
    colours = rng.choice(["red", "green", "blue", "grey"], size=rows)
    effect = {"red": 3.0, "green": -3.0, "blue": 1.5, "grey": -1.5}
    label = (2.5 * numbers[:, 3] + np.array([effect[c] for c in colours]) + 0.3 * rng.normal(size=rows) > 0)
    with open(folder / "data.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"x{i}" for i in range(9)] + ["colour", "label"])
        for row, colour, y in zip(numbers, colours, label.astype(int)):
            writer.writerow([f"{v:.5f}" for v in row] + [colour, y])
    spec = folder / "spec.yaml"
    spec.write_text(TWO_OF_TEN % ", ".join(f"{{name: x{i}, type: numerical}}" for i in range(9)))
    return spec


@pytest.mark.slow
def test_every_method_ranks_the_two_features_the_label_depends_on(tmp_path):
    pytest.importorskip("shap")
    from dlpipe.runner import run_spec

    run = run_spec(two_of_ten(tmp_path), out=tmp_path / "run", command=["pytest"])
    folder = run / "explanations"
    index = json.loads((folder / "explanations.json").read_text())
    assert index["methods"] == ["integrated_gradients", "permutation", "shap"]
    documents = {method: read(folder, method) for method in index["methods"]}
    for method, document in documents.items():
        assert top(document) == {"x3", "colour"}, (method, document["global"]["features"][:3])
    ig = documents["integrated_gradients"]
    assert ig["points"]["colour"] == "output of layer colour_one_hot"
    assert ig["points"]["x3"] == "output of layer x3_zscore"
    completeness = ig["completeness"]
    assert completeness["met"] == completeness["examples"] == 30
    for example in completeness["per_example"]:
        assert example["error"] <= max(0.01 * abs(example["output"] - example["baseline_output"]), 1e-5)
        assert example["sum"] == pytest.approx(example["output"] - example["baseline_output"], rel=0.011, abs=1e-5)
    permutation = documents["permutation"]["global"]["features"][0]
    assert permutation["spread"] > 0 and len(permutation["increases"]) == 5
    halves = documents["permutation"]["halves"]  # all 10 features' order, on the even and the odd rows
    assert halves["features"] == [f["feature"] for f in documents["permutation"]["global"]["features"]]
    assert -1 <= halves["spearman"] <= 1

    # The report shows the chart and three local explanations per method, with the JSON's numbers.
    section = read_section(run / "report.html")
    assert "global-importance-chart" in section.figures
    assert section.halves == halves["spearman"]
    for method, document in documents.items():
        for feature in document["global"]["features"]:
            assert section.importance[(method, feature["feature"])] == feature["importance"]
    local = [entry for entry in section.local if entry["method"] == "integrated_gradients"]
    assert [entry["row"] for entry in local] == ["test row 0", "test row 1", "test row 2"]
    for shown, entry in zip(local, ig["local"]):
        assert shown["attributions"] == {a["feature"]: a["attribution"] for a in entry["attributions"]}
    assert len([entry for entry in section.local if entry["method"] == "shap"]) == 3

    # predict --explain on the test rows names the features the run's own explanation does.
    from dlpipe.data.prepare import prepare
    from dlpipe.finished import open_run

    finished = open_run(run, "explain")
    test = prepare(finished.spec, finished.base_dir, finished.located).splits["test"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({name: (values[i, 0].item() if values.dtype != object else values[i, 0])
                                        for name, values in test.x.items()}) + "\n" for i in range(3)))
    out = tmp_path / "predicted.jsonl"
    result = CliRunner().invoke(main, ["predict", str(run), str(rows), "--explain", "--out", str(out)])
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    for record, entry in zip(predicted, ig["local"]):
        assert record["prediction"] == entry["prediction"]
        expected = entry["attributions"][:3]
        assert [e["feature"] for e in record["explanation"]] == [a["feature"] for a in expected]
        np.testing.assert_allclose([e["attribution"] for e in record["explanation"]],
                                   [a["attribution"] for a in expected], rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_image_maps_pass_the_deletion_check(tmp_path):
    from dlpipe.runner import run_spec

    run = run_spec(SPECS / "image-classification.yaml", out=tmp_path / "run", command=["pytest"],
                   overrides=["training.epochs=8", "training.early_stopping=null",
                              "evaluation.explain={examples: 180, rows: 3}"])
    folder = run / "explanations"
    ig, saliency = read(folder, "integrated_gradients"), read(folder, "saliency")
    test_images = json.loads((run / "data.json").read_text())["split_sizes"]["test"]
    for document, maps in ((ig, ["integrated_gradients"]), (saliency, ["gradient_x_input"])):
        deletion = document["deletion"]
        assert deletion["examples"] == test_images and deletion["pixels_per_image"] == 6
        for name in maps:  # blanking what the map points at hurts more than blanking at random
            assert deletion[name] < deletion["random"] <= deletion["accuracy"] + 0.02, deletion
    assert ig["completeness"]["met"] == test_images
    assert set(saliency["maps"]) == {"saliency", "gradient_x_input"}
    assert np.asarray(saliency["maps"]["saliency"]["test row 0"]).shape == (8, 8)
    section = read_section(run / "report.html")
    assert {"attribution-maps"} <= set(section.figures)
    assert len([e for e in section.local if e["method"] == "integrated_gradients"]) == 3


@pytest.mark.slow
def test_text_is_attributed_per_token(tmp_path):
    from dlpipe.runner import run_spec

    run = run_spec(SPECS / "text-classification.yaml", out=tmp_path / "run", command=["pytest"],
                   overrides=["training.epochs=3", "evaluation.explain={examples: 12, rows: 3}"])
    ig = read(run / "explanations", "integrated_gradients")
    assert ig["points"]["review"] == "output of layer review_embedding"
    assert ig["completeness"]["met"] == ig["completeness"]["examples"] == 12
    for entry in ig["local"]:
        tokens = entry["tokens:review"]
        assert tokens and all(isinstance(token, str) for token, _ in tokens)
        # Each token's share adds up to the feature's attribution.
        assert sum(v for _, v in tokens) == pytest.approx(entry["attributions"][0]["attribution"], rel=1e-6, abs=1e-9)
    assert ig["global"]["tokens"]["review"]
    section = read_section(run / "report.html")
    assert len(section.tokens) == sum(len(entry["tokens:review"]) for entry in ig["local"])


@pytest.mark.slow
def test_explain_command_on_a_regression_run_and_new_rows(tmp_path):
    from dlpipe.runner import run_spec

    run = run_spec(SPECS / "tabular-regression.yaml", out=tmp_path / "run", command=["pytest"],
                   overrides=["training.epochs=10"])
    assert not (run / "explanations").exists()
    result = CliRunner().invoke(main, ["explain", str(run), "--method", "integrated_gradients",
                                       "--method", "permutation", "--rows", "0,5"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(run / "explanations") and lines[0].startswith("integrated_gradients\t")
    ig = read(run / "explanations", "integrated_gradients")
    assert [entry["row"] for entry in ig["local"]] == ["test row 0", "test row 5"]
    assert ig["completeness"]["met"] == ig["completeness"]["examples"]
    assert isinstance(ig["local"][0]["prediction"], float)
    section = read_section(run / "report.html")
    assert "global-importance-chart" in section.figures and len(section.local) == 2

    data = json.loads((run / "data.json").read_text())
    names = [f["name"] for f in data["features"]]
    rows = tmp_path / "new.csv"
    rows.write_text(",".join(names) + "\n" + "\n".join(",".join(str(0.01 * (i + j)) for j in range(len(names)))
                                                        for i in range(4)) + "\n")
    result = CliRunner().invoke(main, ["explain", str(run), "--data", str(rows), "--rows", "2"])
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.parent == run / "explanations" and folder.name.startswith("data-")
    ig = read(folder, "integrated_gradients")
    assert ig["source"] == str(rows) and [e["row"] for e in ig["local"]] == ["new.csv row 2", "new.csv row 3"]
    assert read_section(folder / "report.html").local
    result = CliRunner().invoke(main, ["explain", str(run), "--rows", "0,500"])
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("explain rows: row 500 is beyond the 89 rows of the test split "
                                          "(counted from 0)")


@pytest.mark.slow
def test_a_linear_model_gets_its_exact_attributions():
    """f = w·[z, one-hot(colour)] + b: integrated gradients from the zero point gives each
    normalized number w_i z_i and the colour the weight of its category, exactly."""
    import keras

    from dlpipe.explain.attribution import Attributor, per_feature
    from dlpipe.explain.methods import integrated_gradients

    number = keras.Input((1,), name="size")
    colour = keras.Input((1,), name="colour", dtype="string")
    z = keras.layers.Normalization(mean=2.0, variance=4.0, name="size_zscore")(number)
    index = keras.layers.StringLookup(vocabulary=["red", "blue"], num_oov_indices=1, name="colour_lookup")(colour)
    one_hot = keras.layers.CategoryEncoding(3, output_mode="one_hot", name="colour_one_hot")(index)
    dense = keras.layers.Dense(1, name="out")
    model = keras.Model({"size": number, "colour": colour}, dense(keras.layers.Concatenate()([z, one_hot])))
    dense.set_weights([np.array([[1.5], [0.0], [0.7], [-2.0]], dtype=np.float32), np.array([0.3], dtype=np.float32)])
    features = [{"name": "size", "input": "size", "type": "numerical"},
                {"name": "colour", "input": "colour", "type": "categorical"}]
    attributor = Attributor(model, features)
    assert [p.where for p in attributor.points] == ["output of layer size_zscore", "output of layer colour_one_hot"]
    x = {"size": np.array([[4.0], [0.0], [2.0]], dtype=np.float32),
         "colour": np.array([["red"], ["blue"], ["green"]], dtype=object)}
    result = integrated_gradients(attributor, x, np.zeros(3, dtype=int), steps=4)
    np.testing.assert_allclose(per_feature(result.attributions, attributor.points),
                               [[1.5, 0.7], [-1.5, -2.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(result.baseline_output, [0.3, 0.3, 0.3], atol=1e-6)
    assert result.met(1e-6).all() and (result.steps == 4).all()


@pytest.mark.slow
def test_shap_and_permutation_importance_agree_on_an_additive_model(tmp_path):
    """f = Σ w_j z_j + b, twelve standard-normal features, no training: permutation
    importance's expected squared-error increase is 2 w_j² (a feature's shuffled copy is
    independent of it) and SHAP's mean |φ_j| is |w_j| E|z_j| (φ_j = w_j (z_j − the
    background mean)), so both rank the features by |w_j|. The stage's two methods, on
    their own rows (validation split; test rows and a training background), must agree:
    Spearman ≥ 0.8 on permutation importance's top 10 (benchmarks/explain_agreement.py
    measures the same on the tabular template)."""
    pytest.importorskip("shap")
    import keras
    from scipy.stats import spearmanr

    from dlpipe.data.prepared import Split
    from dlpipe.explain.stage import Examples, Subject, explain_model
    from dlpipe.spec.evaluation import Explain

    weights = np.array([3.0, -2.5, 2.0, 1.6, -1.3, 1.0, 0.8, -0.6, 0.45, 0.3, 0.2, -0.1])
    names = [f"x{j}" for j in range(len(weights))]
    inputs = {name: keras.Input((1,), name=name) for name in names}
    scaled = [keras.layers.Normalization(mean=0.0, variance=1.0, name=f"{name}_zscore")(inputs[name]) for name in names]
    dense = keras.layers.Dense(1, name="out")
    model = keras.Model(inputs, dense(keras.layers.Concatenate()(scaled)))
    dense.set_weights([weights.reshape(-1, 1).astype(np.float32), np.array([0.5], dtype=np.float32)])
    features = [{"name": name, "input": name, "type": "numerical"} for name in names]
    rng = np.random.default_rng(3)

    def split(rows: int) -> Split:
        z = rng.normal(size=(rows, len(names))).astype(np.float32)
        return Split({name: z[:, [j]] for j, name in enumerate(names)}, z @ weights + 0.1 * rng.normal(size=rows),
                     np.arange(rows))

    train, validation, test = split(100), split(300), split(40)
    settings = Explain(methods=["permutation", "shap"], examples=40, repeats=10, background=20, rows=1)
    explain_model(Subject(model, features, None, 7), settings,
                  Examples(test.x, test.y, [f"test row {i}" for i in range(40)], "the test split"), validation,
                  train, tmp_path, log=lambda line: None)
    found = {m: {f["feature"]: f["importance"] for f in read(tmp_path, m)["global"]["features"]}
             for m in ("permutation", "shap")}
    top = sorted(names, key=lambda n: -found["permutation"][n])[:10]
    assert top[:3] == ["x0", "x1", "x2"], found["permutation"]
    agreement = spearmanr([found["permutation"][n] for n in top], [found["shap"][n] for n in top]).statistic
    assert agreement >= 0.8, (agreement, found)
    # On 300 rows of an additive model the order is the model's: the two halves of the rows agree.
    halves = read(tmp_path, "permutation")["halves"]
    assert halves["features"] == top and halves["spearman"] >= 0.8, halves
