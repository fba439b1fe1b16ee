"""The data stage's sources, labeling, splits and missing values, on tiny files written in
tmp_path (nothing large is committed)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.prepare import prepare
from dlpipe.errors import DataError, SpecError
from dlpipe.spec import load_document, locate
from dlpipe.spec.spec import Spec


def prepared(path: Path):
    spec, document = load_document(path)
    return prepare(spec, path.parent, lambda where, message: SpecError([locate(document, where, message)]))


def write_spec(folder: Path, data: str, *, task: str = "classification", extra: str = "") -> Path:
    """A spec whose `data:` section is `data` (YAML, indented by the caller's dedent)."""
    body = textwrap.indent(textwrap.dedent(data).strip(), "  ")
    text = f"version: 1\nname: t\ntask: {task}\ndata:\n{body}\nmodel: {{type: mlp, units: [4]}}\n{extra}"
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n", encoding="utf-8")
    return path


# Unlabeled data -------------------------------------------------------------------------

def test_unlabeled_data_has_no_labels_and_unstratified_seeded_splits(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 2)).round(4)
    write_csv(tmp_path / "x.csv", ["a", "b"], values.tolist())
    # A generation or embedding task has no target; the supervised checks would refuse it,
    # so the Spec is built directly (the data stage must not care which task it serves).
    spec = Spec.model_validate({
        "name": "t", "task": "classification", "seed": 3,
        "data": {"source": {"type": "csv", "path": "x.csv"},
                 "split": {"train": 0.5, "validation": 0.25, "test": 0.25}},
        "model": {"type": "mlp"}})
    assert spec.data.target is None and spec.data.split.stratify is True
    data = prepare(spec, tmp_path, lambda where, message: SpecError([]))
    assert data.target is None and data.class_names is None
    assert [f.name for f in data.features] == ["a", "b"]
    sizes = {name: len(split) for name, split in data.splits.items()}
    assert sizes == {"train": 20, "validation": 10, "test": 10}
    assert all(split.y is None for split in data.splits.values())
    rows = np.concatenate([split.rows for split in data.splits.values()])
    assert sorted(rows.tolist()) == list(range(40))
    train = data.splits["train"]
    np.testing.assert_allclose(train.x["a"][:, 0], values[train.rows, 0].astype(np.float32))
    # zscore statistics come from the training rows only
    np.testing.assert_allclose(data.features[0].mean, values[train.rows, 0].astype(np.float32).astype(np.float64).mean(),
                               rtol=1e-6)
    assert data.describe()["target"] is None
    again = prepare(spec, tmp_path, lambda where, message: SpecError([]))
    assert np.array_equal(again.splits["test"].rows, data.splits["test"].rows)


# labels.json ----------------------------------------------------------------------------

def test_predict_names_classes_from_the_run_directorys_labels_json(tmp_path):
    from dlpipe.errors import DlpipeError
    from dlpipe.prediction import locate_model

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"")
    (run / "run.json").write_text("{}")
    card = {"task": "classification", "class_names": ["0", "1"], "inputs": [],
            "output": {"units": 1, "activation": "sigmoid"}}
    (run / "export" / "model_card.json").write_text(json.dumps(card))
    assert locate_model(run).interface["class_names"] == ["0", "1"]  # no labels.json: the card's
    (run / "labels.json").write_text(json.dumps(["cat", "dog"]))
    assert locate_model(run).interface["class_names"] == ["cat", "dog"]
    assert locate_model(run / "model.keras").interface["class_names"] == ["cat", "dog"]
    (run / "labels.json").write_text(json.dumps({"cat": 0}))
    with pytest.raises(DlpipeError, match="labels.json: expected a JSON list of class names"):
        locate_model(run)


@pytest.mark.slow
def test_a_supervised_run_writes_labels_json_in_index_order():
    import _runs

    root = _runs.tabular()
    labels = json.loads((root / "labels.json").read_text())
    assert labels == json.loads((root / "data.json").read_text())["class_names"] == ["malignant", "benign"]
    assert "<dt>classes</dt><dd>malignant, benign</dd>" in (root / "report.html").read_text()
