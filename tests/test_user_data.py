"""A user's own data end to end: a CSV with numbers, categories, ordered categories and
free text, with gaps in every text column, in a project folder of its own.

- a run's resolved spec.yaml (and `dlpipe tune`'s best.yaml) reruns from another working
  directory to the same metrics.json, byte for byte;
- splits.json names the source rows of each split; the test rows written to CSV, JSON lines
  and Parquet and given to `dlpipe evaluate --data` give metrics.json's test numbers;
- categorical, ordinal and text gaps are imputed inside the model: exports verify, and
  `dlpipe predict` on a row with gaps equals the prediction on the row with the fills.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: churn-mixed
task: classification
seed: 7
data:
  source: {type: csv, path: data/rows.csv}
  features:
    - {name: tenure, type: numerical}
    - {name: plan, type: categorical}
    - {name: size, type: ordinal, order: [small, medium, large]}
    - {name: note, type: text, sequence_length: 4, vocabulary_size: 20}
  target: {name: churned}
  split: {train: 0.6, validation: 0.2, test: 0.2}
prepare:
  imputation:
    plan: {type: constant, value: unknown}   # a gap is a category of its own
    size: {type: most_frequent}
    note: {type: constant, value: "no note"}
model: {type: mlp, units: [16]}
training: {epochs: 4, batch_size: 32}
export: {formats: [keras, saved_model]}
"""

# Categories only (no text, no ordinal): every export format takes it.
SPEC_ALL_FORMATS = """\
version: 1
name: churn-categories
task: classification
seed: 7
data:
  source: {type: csv, path: data/rows.csv}
  features:
    - {name: tenure, type: numerical}
    - {name: plan, type: categorical}
    - {name: size, type: categorical, encoding: embedding, embedding_dim: 2}
  target: {name: churned}
  split: {train: 0.6, validation: 0.2, test: 0.2}
prepare:
  imputation:
    categorical: {type: most_frequent}
    plan: {type: constant, value: unknown}
model: {type: mlp, units: [16]}
training: {epochs: 4, batch_size: 32}
export:
  formats: [keras, saved_model, tflite, onnx]
  tflite: {quantization: [float32]}
"""


def write_rows(path: Path, n: int = 300, seed: int = 0) -> None:
    """Churn as a rule of tenure, plan and size plus noise; the note's words follow the
    label; about 8% of plan, size and note are empty cells."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    size = rng.choice(["small", "medium", "large"], n)
    score = (tenure < 24).astype(int) + (plan == "basic") + (size == "small") + rng.normal(0, 0.3, n)
    label = np.where(score >= 1.5, "yes", "no")
    words = {"yes": ["slow", "broken", "expensive", "late"], "no": ["great", "fast", "cheap", "friendly"]}
    notes = [" ".join(rng.choice(words[value], 3)) for value in label]
    frame = pd.DataFrame({"tenure": tenure, "plan": plan, "size": size, "note": notes, "churned": label})
    for column in ("plan", "size", "note"):
        frame.loc[rng.random(n) < 0.08, column] = None
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@contextlib.contextmanager
def working_directory(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def dlpipe(*args) -> list[str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """project/specs/{churn.yaml, data/rows.csv}, run from the project folder with a relative
    spec path (the data path in the spec is relative to the spec's folder)."""
    root = tmp_path_factory.mktemp("project")
    write_rows(root / "specs" / "data" / "rows.csv")
    (root / "specs" / "churn.yaml").write_text(SPEC)
    (root / "specs" / "categories.yaml").write_text(SPEC_ALL_FORMATS)
    with working_directory(root):
        dlpipe("run", "specs/churn.yaml", "--out", "runs/mixed")
    return root


def test_a_runs_spec_yaml_reruns_from_another_folder(project, tmp_path):
    run = project / "runs" / "mixed"
    resolved = (run / "spec.yaml").read_text()
    assert f"path: {project / 'specs' / 'data' / 'rows.csv'}" in resolved
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with working_directory(elsewhere):
        dlpipe("run", run / "spec.yaml", "--out", "again")
    assert (elsewhere / "again" / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()
    records = [json.loads((folder / "run.json").read_text()) for folder in (run, elsewhere / "again")]
    assert records[0]["data_fingerprint"] == records[1]["data_fingerprint"]
    # The resolved spec of the rerun is the same file: resolving is idempotent.
    assert (elsewhere / "again" / "spec.yaml").read_text() == resolved


def test_best_yaml_reruns_from_another_folder(project, tmp_path):
    pytest.importorskip("optuna")
    with working_directory(project):
        dlpipe("tune", "specs/churn.yaml", "--trials", 2, "--out", "study", "--set", "training.epochs=2")
    study = project / "study"
    best = json.loads((study / "study.json").read_text())["best"]
    assert f"path: {project / 'specs' / 'data' / 'rows.csv'}" in (study / "best.yaml").read_text()
    with working_directory(tmp_path):
        dlpipe("run", study / "best.yaml", "--out", "best")
    trial = Path(best["run_dir"])
    trial = trial if trial.is_absolute() else study / trial
    assert (tmp_path / "best" / "metrics.json").read_bytes() == (trial / "metrics.json").read_bytes()


def test_splits_json_names_each_splits_source_rows(project):
    import pandas as pd

    run = project / "runs" / "mixed"
    record = json.loads((run / "splits.json").read_text())
    assert record["source"] == str(project / "specs" / "data" / "rows.csv") and record["unit"] == "row"
    splits = record["splits"]
    sizes = json.loads((run / "data.json").read_text())["split_sizes"]
    assert {name: len(rows) for name, rows in splits.items()} == sizes == {"train": 180, "validation": 60, "test": 60}
    every = sorted(splits["train"] + splits["validation"] + splits["test"])
    assert every == list(range(len(pd.read_csv(record["source"]))))  # disjoint, and every row once


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_evaluate_on_the_test_rows_gives_the_runs_test_metrics(project, tmp_path, kind):
    import pandas as pd

    if kind == "parquet":
        pytest.importorskip("pyarrow")
    run = project / "runs" / "mixed"
    record = json.loads((run / "splits.json").read_text())
    rows = pd.read_csv(record["source"]).iloc[record["splits"]["test"]]
    assert rows[["plan", "size", "note"]].isna().any().all()  # gaps to impute in every text column
    path = tmp_path / f"test.{kind}"
    {"csv": lambda: rows.to_csv(path, index=False),
     "jsonl": lambda: rows.to_json(path, orient="records", lines=True),
     "parquet": lambda: rows.to_parquet(path)}[kind]()
    folder = Path(dlpipe("evaluate", run, "--data", path)[-1])
    got = json.loads((folder / "metrics.json").read_text())
    expected = json.loads((run / "metrics.json").read_text())["test"]
    assert got == {"data": expected}


def test_evaluate_data_names_a_missing_column_and_an_unknown_ordinal_value(project, tmp_path):
    import pandas as pd

    run = project / "runs" / "mixed"
    rows = pd.read_csv(project / "specs" / "data" / "rows.csv").head(20)
    rows.drop(columns=["note"]).to_csv(tmp_path / "no-note.csv", index=False)
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data", str(tmp_path / "no-note.csv")])
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: {tmp_path / 'no-note.csv'}: no column 'note'; "
                                    "columns are: tenure, plan, size, churned")
    rows.assign(size=["huge"] + list(rows["size"][1:])).to_csv(tmp_path / "huge.csv", index=False)
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data", str(tmp_path / "huge.csv")])
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"error: {tmp_path / 'huge.csv'}: row 2, column 'size': 'huge' is not "
                                            "one of the ordinal values")


def test_gaps_are_imputed_inside_the_model(project, tmp_path):
    """A row with empty plan, size and note predicts exactly as the row holding the fills:
    the constant category, the training split's most frequent size, the constant note."""
    import pandas as pd

    run = project / "runs" / "mixed"
    card = json.loads((run / "export" / "model_card.json").read_text())
    fills = {entry["name"]: entry["fill"][0] for entry in card["inputs"] if "fill" in entry}
    train = pd.read_csv(project / "specs" / "data" / "rows.csv").iloc[
        json.loads((run / "splits.json").read_text())["splits"]["train"]]
    assert fills == {"plan": "unknown", "size": train["size"].value_counts().idxmax(), "note": "no note"}
    assert "unknown" in next(e for e in card["inputs"] if e["name"] == "plan")["vocabulary"]
    rows = pd.DataFrame({"tenure": [10, 10, 60], "plan": [None, "unknown", "pro"],
                         "size": [None, fills["size"], "large"], "note": [None, "no note", "great fast cheap"]})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    for model in (run, run / "export"):  # model.keras, and the SavedModel of the export folder
        lines = dlpipe("predict", model, tmp_path / "rows.csv")
        assert lines[0] == "prediction,probability_no,probability_yes" and len(lines) == 4
        assert lines[1] == lines[2]
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert {fmt: result["passed"] for fmt, result in verification.items()} == {"keras": True, "saved_model": True}


def test_imputed_categories_export_to_every_format(project):
    """Categorical gaps (most frequent, and a category of its own) survive TFLite's lookup
    pre-step and ONNX: the verification on test rows with gaps passes for every format."""
    for module in ("onnx", "onnxruntime", "tf2onnx", "ai_edge_litert"):
        pytest.importorskip(module)
    with working_directory(project):
        dlpipe("run", "specs/categories.yaml", "--out", "runs/categories")
    run = project / "runs" / "categories"
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert {fmt: result["passed"] for fmt, result in verification.items()} == {
        "keras": True, "saved_model": True, "tflite/float32": True, "onnx": True}
    vocabulary = json.loads((run / "export" / "tflite" / "lookup.json").read_text())
    assert vocabulary["plan"][-1] == "" and vocabulary["size"][-1] == ""  # the gap's slot, remapped in the file
