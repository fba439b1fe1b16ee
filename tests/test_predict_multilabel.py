"""A multi-label classifier is exported and predicted as K independent sigmoids: the model
card says so, and `dlpipe predict` returns the set of classes (p ≥ 0.5) with every class's
probability."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.prediction import Writer, records

INTERFACE = {"task": "classification", "class_names": ["a", "b", "c"],
             "output": {"units": 3, "activation": "sigmoid", "multi_label": True, "threshold": 0.5}}


def test_records_hold_the_set_and_every_probability():
    rows = records(INTERFACE, np.array([[0.9, 0.2, 0.5], [0.1, 0.3, 0.4]]), None, "file")
    assert rows == [{"prediction": ["a", "c"], "probabilities": {"a": 0.9, "b": 0.2, "c": 0.5}},
                    {"prediction": [], "probabilities": {"a": 0.1, "b": 0.3, "c": 0.4}}]
    import io

    handle = io.StringIO()
    writer = Writer(handle, "csv", INTERFACE, False, "file")
    writer.write(rows)
    assert handle.getvalue().splitlines() == ["prediction,probability_a,probability_b,probability_c",
                                              "a|c,0.9,0.2,0.5", ",0.1,0.3,0.4"]


SPEC = """\
version: 1
name: tags
task: classification
seed: 5
data:
  source: {type: csv, path: rows.csv}
  features: [{name: x1, type: numerical}, {name: x2, type: numerical}]
  target: {name: tags, multi_label: true, delimiter: '|'}
  split: {train: 0.7, validation: 0.15, test: 0.15}
model: {type: mlp, units: [32]}
training: {epochs: 40, batch_size: 32, optimizer: {type: adam, learning_rate: 0.01}}
evaluation: {metrics: [accuracy, f1_micro]}
export: {formats: [keras, saved_model]}
"""


def tags(x1: float, x2: float) -> list[str]:
    return [name for name, on in (("left", x1 < 0), ("low", x2 < 0), ("far", x1 * x1 + x2 * x2 > 1.5)) if on]


@pytest.mark.slow
def test_multi_label_run_exports_sigmoid_and_predicts_the_set(tmp_path):
    import keras

    from dlpipe.runner import run_spec

    rng = np.random.default_rng(0)
    points = rng.normal(size=(600, 2)).round(4)
    with open(tmp_path / "rows.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "tags"])
        for x1, x2 in points:
            writer.writerow([x1, x2, "|".join(tags(x1, x2))])
    (tmp_path / "spec.yaml").write_text(SPEC)
    run = run_spec(tmp_path / "spec.yaml", out=tmp_path / "run", command=["pytest"])
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert card["output"]["activation"] == "sigmoid" and card["output"]["multi_label"] is True
    interface = json.loads((run / "export" / "saved_model" / "assets" / "dlpipe_interface.json").read_text())
    assert interface["output"]["activation"] == "sigmoid"

    queries = np.array([[-1.5, -1.5], [0.3, 0.2], [-0.4, 0.5], [1.6, -0.3]])
    with open(tmp_path / "new.csv", "w", newline="") as handle:
        handle.write("x1,x2\n" + "".join(f"{a},{b}\n" for a, b in queries))
    result = CliRunner().invoke(main, ["predict", str(run / "export"), str(tmp_path / "new.csv"),
                                       "--out", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    names = card["class_names"]
    assert sorted(names) == ["far", "left", "low"]
    # The oracle: model.keras's sigmoids on the same rows, thresholded at 0.5.
    model = keras.saving.load_model(run / "model.keras")
    p = model.predict({"x1": queries[:, :1].astype("float32"), "x2": queries[:, 1:].astype("float32")}, verbose=0)
    for line, row in zip(lines, p):
        assert line["prediction"] == [n for n, v in zip(names, row) if v >= 0.5]
        np.testing.assert_allclose([line["probabilities"][n] for n in names], row, atol=1e-5)
    # The model learned the rule: each query's set is the true one.
    assert [sorted(line["prediction"]) for line in lines] == [sorted(tags(*q)) for q in queries]
