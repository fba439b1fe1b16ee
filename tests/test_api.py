"""The Python API (`import dlpipe`): the CLI's commands as functions returning data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import dlpipe
from dlpipe.api import override_strings
from dlpipe.errors import DlpipeError

ROOT = Path(__file__).resolve().parent.parent
TABULAR = ROOT / "specs" / "tabular-classification.yaml"

LIGHT = """\
import json, sys
import dlpipe
names = ("tensorflow", "keras", "pydantic", "yaml", "click", "numpy", "starlette", "mlflow")
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(names))
problems = dlpipe.validate(sys.argv[1], {"training.epochs": 0})
after_validate = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
print(json.dumps({"import": loaded, "validate": after_validate, "problems": [str(p) for p in problems],
                  "api": [hasattr(dlpipe, n) for n in ("run", "load_spec", "validate", "predict", "Run")]}))
"""


def test_import_dlpipe_loads_no_framework_and_validate_none_either():
    done = subprocess.run([sys.executable, "-c", LIGHT, str(TABULAR)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["import"] == [] and seen["validate"] == []
    assert seen["problems"] == ["--set:1:17: training.epochs: expected a value > 0, got 0"]
    assert seen["api"] == [True] * 5


def test_python_m_dlpipe_is_the_command():
    done = subprocess.run([sys.executable, "-m", "dlpipe", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: dlpipe [OPTIONS] COMMAND")
    for command in ("serve", "compare", "run", "predict"):
        assert f"  {command} " in done.stdout
    done = subprocess.run([sys.executable, "-m", "dlpipe", "validate", "nope.yaml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_overrides_as_a_mapping_are_set_strings_of_json_values():
    assert override_strings({"training.epochs": 3, "model.units": [32, 16], "name": "a b", "x": None,
                             "training.optimizer": {"type": "sgd"}}) == [
        "training.epochs=3", "model.units=[32, 16]", 'name="a b"', "x=null", 'training.optimizer={"type": "sgd"}']
    assert override_strings(["training.epochs=3"]) == ["training.epochs=3"]
    with pytest.raises(TypeError, match="got the string"):
        override_strings("training.epochs=3")


def test_load_spec_and_validate():
    spec = dlpipe.load_spec(TABULAR, overrides={"training.epochs": 3, "model.units": [32]})
    assert spec.training.epochs == 3 and spec.model.units == [32]
    assert dlpipe.validate(TABULAR) == []
    problems = dlpipe.validate(TABULAR, {"training.optimizer.learning_rate": -1, "model.unitz": [3]})
    assert [p.path for p in problems] == ["training.optimizer.learning_rate", "model.unitz"]
    with pytest.raises(DlpipeError, match="training.epochs: expected a value > 0"):
        dlpipe.load_spec(TABULAR, {"training.epochs": 0})
    with pytest.raises(DlpipeError, match="not a dlpipe run directory"):
        dlpipe.Run.open(ROOT)


FRESH = """\
import json, sys
import dlpipe
r = dlpipe.run(sys.argv[1], overrides={"training.epochs": 3}, out=sys.argv[2])
heavy = "tensorflow" in sys.modules
rows = [{k: v for k, v in row.items()} for row in json.loads(sys.argv[3])]
print(json.dumps({"status": r.status, "metrics": r.metrics, "history": {k: len(v) for k, v in r.history.items()},
                  "path": str(r.path), "predictions": dlpipe.predict(r, rows),
                  "same": dlpipe.Run.open(r.path).metrics == r.metrics}))
"""


@pytest.mark.slow
def test_dlpipe_run_in_a_fresh_python_gives_the_cli_numbers(tmp_path):
    """`dlpipe.run(spec, overrides=...)` and `dlpipe run spec --set ...` (each in a fresh
    process): the same metrics.json, history and predictions."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(6)
    rows = [{k: float(v) for k, v in row.items()} for row in frame.to_dict("records")]
    done = subprocess.run([sys.executable, "-c", FRESH, str(TABULAR), str(tmp_path / "api"), json.dumps(rows)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    api = json.loads(done.stdout.splitlines()[-1])
    cli = subprocess.run([sys.executable, "-m", "dlpipe", "run", str(TABULAR), "--set", "training.epochs=3",
                          "--out", str(tmp_path / "cli")], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert cli.stdout.splitlines()[-1] == str(tmp_path / "cli")
    assert api["status"] == "completed" and api["same"]
    assert api["metrics"] == json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert api["metrics"]["test"]["accuracy"] > 0.8
    run = dlpipe.Run.open(tmp_path / "cli")
    assert api["history"] == {k: len(v) for k, v in run.history.items()} and len(run.history["loss"]) == 3
    assert run.spec["training"]["epochs"] == 3 and run.record["command"][:2] == ["dlpipe", "run"]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    predicted = subprocess.run([sys.executable, "-m", "dlpipe", "predict", str(tmp_path / "cli"),
                                str(tmp_path / "rows.jsonl"), "--out", str(tmp_path / "p.jsonl")], capture_output=True,
                               text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr
    assert api["predictions"] == [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_spec_given_as_a_mapping_resolves_paths_against_the_current_folder(tmp_path, monkeypatch):
    import yaml

    spec = yaml.safe_load(TABULAR.read_text())
    spec["data"]["source"] = {"type": "csv", "path": "cancer.csv"}
    from sklearn.datasets import load_breast_cancer

    load_breast_cancer(as_frame=True).frame.to_csv(tmp_path / "cancer.csv", index=False)
    monkeypatch.chdir(tmp_path)
    run = dlpipe.run(spec, overrides={"training.epochs": 1, "export.formats": ["keras"]}, out="out")
    assert run.status == "completed" and run.path == Path("out")
    assert Path(run.record["spec_file"]).parent == tmp_path.resolve()
    assert run.spec["data"]["source"]["path"] == str(tmp_path.resolve() / "cancer.csv")
    assert len(run.history["loss"]) == 1
