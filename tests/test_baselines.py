"""Baselines in every supervised run (dlpipe/metrics/baselines.py): the trivial predictor, a
linear model and HistGradientBoosting, fitted on the run's training split and scored on its
own splits with its metrics; checked against scikit-learn called by hand."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dlpipe.data.prepare import prepare
from dlpipe.errors import SpecError
from dlpipe.metrics.baselines import baseline_scores, summary
from dlpipe.spec import load_document, locate

ROOT = Path(__file__).resolve().parent.parent


def prepared(path: Path, overrides=()):
    spec, document = load_document(path, overrides)
    return spec, prepare(spec, path.parent, lambda where, message: SpecError([locate(document, where, message)]))


def test_classification_baselines_equal_scikit_learn_by_hand():
    spec, data = prepared(ROOT / "specs" / "tabular-classification.yaml")
    scores = baseline_scores(spec, data, ["validation", "test"])
    assert set(scores) == {"validation", "test"}
    assert set(scores["test"]) == {"majority_class", "logistic_regression", "hist_gradient_boosting"}
    train, test = data.splits["train"], data.splits["test"]
    matrix = lambda split: np.concatenate([split.x[f.input_name].reshape(len(split), -1) for f in data.features], 1)
    x_train, x_test = matrix(train), matrix(test)
    majority = np.bincount(train.y).argmax()
    assert scores["test"]["majority_class"]["accuracy"] == pytest.approx(np.mean(test.y == majority), abs=1e-12)
    scaler = StandardScaler().fit(x_train)
    logistic = LogisticRegression(max_iter=1000).fit(scaler.transform(x_train), train.y)
    p = logistic.predict_proba(scaler.transform(x_test))
    assert scores["test"]["logistic_regression"]["accuracy"] == pytest.approx(
        sk.accuracy_score(test.y, p.argmax(1)), abs=1e-12)
    assert scores["test"]["logistic_regression"]["log_loss"] == pytest.approx(sk.log_loss(test.y, p), abs=1e-6)
    boosted = HistGradientBoostingClassifier(random_state=spec.seed).fit(x_train, train.y)
    assert scores["test"]["hist_gradient_boosting"]["roc_auc"] == pytest.approx(
        sk.roc_auc_score(test.y, boosted.predict_proba(x_test)[:, 1]), abs=1e-9)
    model = {"test": {"accuracy": 0.9}}
    best = max(scores["test"], key=lambda b: scores["test"][b]["accuracy"])
    assert summary(spec, model, scores) == f"test accuracy 0.9000; best baseline {best} " \
                                           f"{scores['test'][best]['accuracy']:.4f}"


def test_regression_mean_and_ridge():
    from sklearn.linear_model import Ridge

    spec, data = prepared(ROOT / "specs" / "tabular-regression.yaml")
    scores = baseline_scores(spec, data, ["test"])["test"]
    train, test = data.splits["train"], data.splits["test"]
    y_train, y_test = train.y.astype(np.float64), test.y.astype(np.float64)
    assert scores["mean"]["mse"] == pytest.approx(np.mean((y_test - y_train.mean()) ** 2), rel=1e-12)
    matrix = lambda split: np.concatenate([split.x[f.input_name].reshape(len(split), -1) for f in data.features],
                                          1).astype(np.float64)
    scaler = StandardScaler().fit(matrix(train))
    ridge = Ridge(alpha=1.0).fit(scaler.transform(matrix(train)), y_train)
    assert scores["ridge"]["mae"] == pytest.approx(
        sk.mean_absolute_error(y_test, ridge.predict(scaler.transform(matrix(test)))), rel=1e-9)
    assert scores["hist_gradient_boosting"]["r2"] > 0.3 > scores["mean"]["r2"]


def test_forecasting_last_value_is_the_naive_forecast_and_the_season_is_found(tmp_path):
    n = 300
    days = np.datetime64("2020-01-01") + np.arange(n)
    level = 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 12)   # a season of 12 steps, exactly
    (tmp_path / "s.csv").write_text("day,level\n" + "".join(f"{d},{float(v)!r}\n" for d, v in zip(days, level)))
    (tmp_path / "spec.yaml").write_text(textwrap.dedent("""\
        name: season
        task: forecasting
        data:
          source: {type: csv, path: s.csv}
          target: {name: level}
          windows: {lookback: 20, horizon: 3, order_by: day}
          split: {train: 0.6, validation: 0.2, test: 0.2}
        model: {type: mlp}
        evaluation: {metrics: [mae, naive_mae]}
        """))
    spec, data = prepared(tmp_path / "spec.yaml")
    scores = baseline_scores(spec, data, ["test"])["test"]
    assert list(scores) == ["last_value", "seasonal_naive", "ridge", "hist_gradient_boosting"]
    assert all(list(values) == ["mae"] for values in scores.values())   # naive_* scores no baseline
    test = data.splits["test"]
    assert scores["last_value"]["mae"] == pytest.approx(np.mean(np.abs(test.naive - test.y)), rel=1e-6)
    assert scores["seasonal_naive"]["mae"] < 1e-5 < scores["last_value"]["mae"]


def test_multi_label_gets_one_model_per_label(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)).round(3)
    tags = ["|".join(t for t, on in (("left", a < 0), ("low", b < 0)) if on) for a, b in x]
    (tmp_path / "rows.csv").write_text("a,b,tags\n" + "".join(f"{a},{b},{t}\n" for (a, b), t in zip(x, tags)))
    (tmp_path / "spec.yaml").write_text(textwrap.dedent("""\
        name: tags
        task: classification
        data:
          source: {type: csv, path: rows.csv}
          target: {name: tags, multi_label: true, delimiter: '|'}
          split: {train: 0.6, validation: 0.2, test: 0.2}
        model: {type: mlp}
        evaluation: {metrics: [accuracy, f1_micro]}
        """))
    spec, data = prepared(tmp_path / "spec.yaml")
    scores = baseline_scores(spec, data, ["test"])["test"]
    assert scores["logistic_regression"]["accuracy"] >= 0.95 > scores["majority_class"]["accuracy"]


@pytest.mark.slow
def test_a_run_writes_baselines_and_shows_them_and_false_turns_them_off(tmp_path, capsys):
    from report_page import Page, assert_every_baseline_shown

    from dlpipe.runner import run_spec

    spec = ROOT / "specs" / "tabular-classification.yaml"
    run = run_spec(spec, overrides=["training.epochs=3"], out=tmp_path / "on", command=["pytest"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"validation", "test"}
    assert set(metrics["baselines"]["test"]["hist_gradient_boosting"]) == set(metrics["test"])
    page = Page((run / "report.html").read_text())
    assert "Baselines" in page.headings
    assert assert_every_baseline_shown(page.baseline_cells, metrics["baselines"]) == 2 * 3 * 4
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert "baselines" not in card["metrics"]
    err = capsys.readouterr().err
    best = max(metrics["baselines"]["test"], key=lambda b: metrics["baselines"]["test"][b]["accuracy"])
    assert (f"[dlpipe] test accuracy {metrics['test']['accuracy']:.4f}; best baseline {best} "
            f"{metrics['baselines']['test'][best]['accuracy']:.4f}") in err
    run = run_spec(spec, overrides=["training.epochs=1", "evaluation.baselines=false"], out=tmp_path / "off",
                   command=["pytest"])
    assert "baselines" not in json.loads((run / "metrics.json").read_text())
