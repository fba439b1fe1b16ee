"""Categorical features in the data stage: text in, vocabulary from the training split only."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dlpipe.data.prepare import prepare
from dlpipe.errors import DataError, SpecError
from dlpipe.spec import check_files, load_document, locate

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_churn_fixture_is_what_its_generator_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_churn", FIXTURES / "make_churn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (FIXTURES / "churn.csv").read_text(encoding="utf-8") == module.text()


def prepared(path: Path):
    spec, document = load_document(path)
    return prepare(spec, path.parent, lambda where, message: SpecError([locate(document, where, message)]))


def test_vocabulary_comes_from_the_training_split_only():
    data = prepared(FIXTURES / "churn.yaml")
    plan, region = (next(f for f in data.features if f.name == name) for name in ("plan", "region"))
    assert (plan.type, plan.encoding, plan.embedding_dim, plan.shape) == ("categorical", "one_hot", None, (1,))
    assert (region.encoding, region.embedding_dim) == ("embedding", 3)
    train = data.splits["train"].x
    assert plan.vocabulary == sorted(set(train["plan"].ravel())) == ["basic", "plus", "pro"]
    assert region.vocabulary == ["east", "north", "south", "west"]
    assert train["plan"].dtype == object and train["plan"].shape == (len(data.splits["train"]), 1)
    assert data.describe()["features"][1] == {"name": "plan", "input": "plan", "type": "categorical", "shape": [1],
                                              "normalization": "none", "vocabulary": ["basic", "plus", "pro"],
                                              "encoding": "one_hot", "embedding_dim": None}


def write_case(tmp_path: Path, csv_text: str, feature: str = "{name: color, type: categorical}") -> Path:
    (tmp_path / "data.csv").write_text(csv_text, encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        version: 1
        name: t
        task: classification
        data:
          source: {{type: csv, path: data.csv}}
          features: [{{name: x, type: numerical}}, {feature}]
          target: {{name: y}}
          split: {{train: 0.5, validation: 0.0, test: 0.5, stratify: false}}
        model: {{type: mlp}}
        """), encoding="utf-8")
    return spec


def test_a_category_seen_only_outside_training_is_not_in_the_vocabulary(tmp_path):
    common = "".join(f"{i},{'red' if i % 2 else 'blue'},{i % 2}\n" for i in range(20))
    rare = "".join(f"{20 + i},{color},{i % 2}\n" for i, color in enumerate(["violet", "teal", "ochre", "umber"]))
    data = prepared(write_case(tmp_path, "x,color,y\n" + common + rare))
    vocabulary = next(f for f in data.features if f.name == "color").vocabulary
    assert vocabulary == sorted(set(data.splits["train"].x["color"].ravel()))
    unseen = {"violet", "teal", "ochre", "umber"} - set(vocabulary)
    assert unseen and unseen <= set(data.splits["test"].x["color"].ravel())


def test_numbers_in_a_categorical_column_become_text(tmp_path):
    rows = "".join(f"{i},{100 + i % 3},{i % 2}\n" for i in range(12))
    data = prepared(write_case(tmp_path, "x,color,y\n" + rows, "{name: color, type: categorical, vocabulary: ['100', '101']}"))
    feature = next(f for f in data.features if f.name == "color")
    assert feature.vocabulary == ["100", "101"]  # as given: 102 is out of vocabulary
    assert set(data.splits["train"].x["color"].ravel()) <= {"100", "101", "102"}


def test_a_missing_category_is_a_located_data_error(tmp_path):
    with pytest.raises(DataError) as failed:
        prepared(write_case(tmp_path, "x,color,y\n1,red,0\n2,,1\n3,blue,0\n4,red,1\n"))
    assert str(failed.value) == (f"{tmp_path / 'data.csv'}: row 3, column 'color': a missing value; 1 row(s) in all "
                                 "(fill them with prepare.imputation, or clean them)")


def test_an_inferred_text_column_suggests_the_categorical_type(tmp_path):
    spec = write_case(tmp_path, "x,color,y\n1,red,0\n2,blue,1\n3,red,0\n4,blue,1\n")
    spec.write_text(spec.read_text().replace("  features: [{name: x, type: numerical}, "
                                             "{name: color, type: categorical}]\n", ""))
    with pytest.raises(SpecError) as failed:
        prepared(spec)
    assert str(failed.value) == (f"{spec}:5:3: data: column 'color' of {tmp_path / 'data.csv'} holds text; list the "
                                 "features you want under data.features (a category per row: "
                                 "{name: color, type: categorical})")


def test_spec_checks_for_categorical_features(tmp_path):
    spec = write_case(tmp_path, "x,color,y\n", "{name: color, type: categorical, encoding: one_hot, "
                      "embedding_dim: 4, vocabulary: [a, b, a]}")
    text = spec.read_text() + "prepare:\n  normalization: {color: {type: zscore}}\n"
    spec.write_text(text)
    assert [f"{p.path}: {p.message}" for p in check_files([spec])] == [
        "data.features[1].embedding_dim: embedding_dim needs encoding embedding, not one_hot",
        "data.features[1].vocabulary[2]: 'a' is listed twice",
        "prepare.normalization.color: 'color' is categorical: it is encoded (one_hot), not normalized",
    ]
