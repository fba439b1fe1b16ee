"""Baselines: what plain predictors score on the run's own split, with the spec's metrics.

Every supervised run (tasks with a `baselines` fact: classification, regression,
forecasting) fits, on the training split only, and scores on each evaluated split:

    trivial                the majority class (class frequencies as probabilities), the mean,
                           or for a forecast the last value and the seasonal naive forecast
    linear                 logistic regression (one per label for multi-label targets), or
                           ridge regression
    hist_gradient_boosting scikit-learn's HistGradientBoosting classifier or regressor

so a run says whether deep learning helped. Features for scikit-learn (`design`): numbers as
they are (missing values filled with the training mean for the linear model; gradient
boosting takes NaN itself), categories one-hot, ordinal values by their position, text as
TF-IDF of words and word pairs (reduced to 64 SVD components for gradient boosting, which
needs dense input), images, sequences and token ids flattened. A forecast's window is taken
relative to its last value, as the model sees it, and the models learn the change from it.

The result is `{split: {baseline: {metric: value}}}`, written under "baselines" in
metrics.json (pipelines/supervised.py). Metrics that score a baseline themselves (naive_mae)
are left out. Streamed data (only a sample held in memory) and per-step targets get none.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from dlpipe import registry, tasks

MAX_TRAINING_ROWS = 50_000
"""More training rows than this are subsampled (seeded) for the baselines: they are a
reference, and gradient boosting's cost grows with the rows."""

SVD_COMPONENTS = 64


def baseline_scores(spec, data, splits) -> dict:
    """{split: {baseline: {metric: value}}} on the named splits; {} when not computed."""
    task = tasks.get(spec.task)
    train = data.splits["train"]
    if getattr(train, "stream", None) is not None or not len(train):
        return {}
    multi_label = bool(getattr(spec.data.target, "multi_label", False))
    if task.output == "classes" and not multi_label and np.asarray(train.y).ndim != 1:
        return {}  # a class per step: no plain per-example baseline
    names = [n for n in spec.evaluation.metrics if not n.startswith("naive_")]
    n_classes = len(data.class_names) if data.class_names else None
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    # One thread: OpenMP's busy-waiting threads beside TensorFlow's on a loaded machine made
    # gradient boosting on the digits 30× slower here (145 s against 4 s on one thread).
    with threadpool_limits(limits=1):
        predictors = _fit(task, data, spec.seed, multi_label, n_classes)
        out = _score(task, data, splits, predictors, names, n_classes, multi_label)
    print(f"[dlpipe] baselines: {', '.join(predictors)} in {time.perf_counter() - started:.1f} s",
          file=sys.stderr, flush=True)
    return out


def _score(task, data, splits, predictors, names, n_classes, multi_label) -> dict:
    from dlpipe.metrics.evaluate import scores

    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for split in splits:
            part = data.splits[split]
            if not len(part):
                continue
            out[split] = {name: scores(task, names, part.y, predict(part), n_classes, multi_label=multi_label)
                          for name, predict in predictors.items()}
    return out


def summary(spec, metrics: dict, baselines: dict) -> str | None:
    """One line: the first metric of the spec on test (else the last split scored), the model's
    and the best baseline's: "test accuracy 0.9737; best baseline hist_gradient_boosting 0.9649"."""
    names = [n for n in spec.evaluation.metrics if not n.startswith("naive_")]
    splits = [s for s in metrics if s in baselines]
    if not names or not splits:
        return None
    split = "test" if "test" in splits else splits[-1]
    metric = names[0]
    model = metrics[split].get(metric)
    scored = {name: values[metric] for name, values in baselines[split].items()
              if values.get(metric) is not None and np.isfinite(values[metric])}
    if model is None or not scored:
        return None
    larger = registry.entry(f"metric:{spec.task}", metric).direction == "max"
    best = (max if larger else min)(scored, key=scored.get)
    return f"{split} {metric} {model:.4f}; best baseline {best} {scored[best]:.4f}"


# Fitting -----------------------------------------------------------------------------------

def _fit(task, data, seed: int, multi_label: bool, n_classes: int | None) -> dict | None:
    train = data.splits["train"]
    rows = np.arange(len(train))
    if len(rows) > MAX_TRAINING_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_TRAINING_ROWS, replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes of the linear models
        if task.horizon:
            return _forecasters(data, rows, seed)
        design = Design(data.features, {k: v[rows] for k, v in train.x.items()}, seed)
        y = np.asarray(train.y)[rows]
        if task.output == "classes":
            return _classifiers(design, y, seed, multi_label, n_classes)
        return _regressors(design, y, seed)


def _classifiers(design, y, seed, multi_label, n_classes) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    def fitted(make, x):
        """One classifier (or one per label) → predict(split) giving N × K probabilities."""
        columns = y.T.astype(int) if multi_label else [y.astype(int)]
        models = []
        for column in columns:
            present = np.unique(column)
            models.append((present, None if len(present) < 2 else make().fit(x, column)))

        def probabilities(features) -> np.ndarray:
            parts = []
            for present, model in models:
                full = np.zeros((features.shape[0], 2 if multi_label else n_classes))
                if model is None:
                    full[:, present] = 1.0
                else:
                    full[:, model.classes_] = model.predict_proba(features)
                parts.append(full[:, 1:] if multi_label else full)
            return np.concatenate(parts, axis=1)

        return probabilities

    linear = fitted(lambda: LogisticRegression(max_iter=1000), design.linear_train)
    boosted = fitted(lambda: HistGradientBoostingClassifier(random_state=seed), design.dense_train)
    prior = y.mean(axis=0) if multi_label else np.bincount(y.astype(int), minlength=n_classes) / len(y)
    return {"majority_class": lambda split: np.tile(prior, (len(split), 1)),
            "logistic_regression": lambda split: linear(design.linear(split.x)),
            "hist_gradient_boosting": lambda split: boosted(design.dense(split.x))}


def _regressors(design, y, seed) -> dict:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    y = np.asarray(y, dtype=np.float64)
    shape = y.shape[1:]
    flat = y.reshape(len(y), -1)
    ridge = Ridge(alpha=1.0).fit(design.linear_train, flat)
    boosted = [HistGradientBoostingRegressor(random_state=seed).fit(design.dense_train, column) for column in flat.T]
    mean = flat.mean(axis=0)

    def reshape(values: np.ndarray) -> np.ndarray:
        return values.reshape((len(values), *shape))

    return {"mean": lambda split: reshape(np.tile(mean, (len(split), 1))),
            "ridge": lambda split: reshape(ridge.predict(design.linear(split.x))),
            "hist_gradient_boosting": lambda split: reshape(
                np.stack([m.predict(design.dense(split.x)) for m in boosted], axis=1))}


def _forecasters(data, rows, seed) -> dict:
    """Windows (N × lookback × channels, target first) → the next `horizon` target values."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    (name,) = data.splits["train"].x
    train = data.splits["train"]
    windows, y = train.x[name][rows].astype(np.float64), np.asarray(train.y, dtype=np.float64)[rows]
    lookback, horizon = windows.shape[1], y.shape[1]

    def relative(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = x[:, -1:, 0]
        return (x - last[:, :, np.newaxis]).reshape(len(x), -1), last

    features, last = relative(windows)
    change = y - last
    ridge = Ridge(alpha=1.0).fit(features, change)
    boosted = [HistGradientBoostingRegressor(random_state=seed).fit(features, column) for column in change.T]

    def with_model(predict):
        def forecast(split):
            x, last = relative(split.x[name].astype(np.float64))
            return last + predict(x)
        return forecast

    predictors = {
        "last_value": lambda split: np.repeat(split.x[name][:, -1:, 0].astype(np.float64), horizon, axis=1),
    }
    # The seasonal naive forecast repeats the values one season earlier; the season is the
    # lag (horizon … lookback steps) whose repetition fits the training windows best.
    if lookback >= horizon:
        steps = np.arange(horizon)

        def seasonal(x: np.ndarray, season: int) -> np.ndarray:
            return x[:, lookback - season + steps, 0]

        errors = {season: float(np.mean(np.abs(seasonal(windows, season) - y)))
                  for season in range(horizon, lookback + 1)}
        season = min(errors, key=errors.get)
        predictors["seasonal_naive"] = lambda split: seasonal(split.x[name].astype(np.float64), season)
    predictors["ridge"] = with_model(ridge.predict)
    predictors["hist_gradient_boosting"] = with_model(lambda x: np.stack([m.predict(x) for m in boosted], axis=1))
    return predictors


class Design:
    """The features as scikit-learn matrices, fitted on the training rows: `linear` (sparse,
    scaled, missing numbers filled) and `dense` (for gradient boosting)."""

    def __init__(self, features, train_x: dict, seed: int):
        from scipy import sparse
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self.parts = []
        for feature in features:
            values = train_x[feature.input_name]
            if feature.type in ("categorical",):
                encoder = OneHotEncoder(handle_unknown="ignore").fit(_strings(values))
                self.parts.append((feature, "onehot", encoder, None))
            elif feature.type == "text":
                tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000)
                matrix = tfidf.fit_transform(_strings(values).ravel())
                components = min(SVD_COMPONENTS, matrix.shape[1] - 1, matrix.shape[0] - 1)
                svd = TruncatedSVD(components, random_state=seed).fit(matrix) if components >= 1 else None
                self.parts.append((feature, "tfidf", tfidf, svd))
            elif feature.type == "ordinal":
                self.parts.append((feature, "ordinal", {v: i for i, v in enumerate(feature.order)}, None))
            else:
                numbers = _numbers(values)
                mean = np.nanmean(numbers, axis=0) if len(numbers) else np.zeros(numbers.shape[1])
                self.parts.append((feature, "numbers", np.nan_to_num(mean), None))
        self._sparse = sparse
        dense_numbers = self._numeric_block(train_x, fill=True)
        self.scaler = StandardScaler().fit(dense_numbers) if dense_numbers.shape[1] else None
        self.linear_train = self.linear(train_x)
        self.dense_train = self.dense(train_x)

    def _numeric_block(self, x: dict, fill: bool) -> np.ndarray:
        blocks = []
        for feature, kind, fitted, _ in self.parts:
            values = x[feature.input_name]
            if kind == "numbers":
                numbers = _numbers(values)
                if fill:
                    numbers = np.where(np.isnan(numbers), fitted[np.newaxis, :], numbers)
                blocks.append(numbers)
            elif kind == "ordinal":
                blocks.append(np.array([[fitted.get(v, np.nan)] for v in _strings(values).ravel()], dtype=np.float64))
        rows = len(next(iter(x.values())))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((rows, 0))

    def linear(self, x: dict):
        numbers = self._numeric_block(x, fill=True)
        blocks = [self._sparse.csr_matrix(self.scaler.transform(np.nan_to_num(numbers)))] if self.scaler else []
        for feature, kind, fitted, _ in self.parts:
            if kind == "onehot":
                blocks.append(fitted.transform(_strings(x[feature.input_name])))
            elif kind == "tfidf":
                blocks.append(fitted.transform(_strings(x[feature.input_name]).ravel()))
        joined = self._sparse.hstack(blocks).tocsr()
        # Dense unless there is text: scikit-learn's solvers for sparse input only approximate
        # (ridge's differed from the exact solution by 1e-5 relative on the diabetes data).
        return joined if any(kind == "tfidf" for _, kind, _, _ in self.parts) else joined.toarray()

    def dense(self, x: dict) -> np.ndarray:
        blocks = [self._numeric_block(x, fill=False)]
        for feature, kind, fitted, svd in self.parts:
            if kind == "onehot":
                blocks.append(fitted.transform(_strings(x[feature.input_name])).toarray())
            elif kind == "tfidf" and svd is not None:
                blocks.append(svd.transform(fitted.transform(_strings(x[feature.input_name]).ravel())))
        return np.concatenate(blocks, axis=1)


def _strings(values) -> np.ndarray:
    return np.asarray(values, dtype=object).reshape(len(values), -1).astype(str)


def _numbers(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)
