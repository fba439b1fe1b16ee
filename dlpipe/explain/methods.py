"""The explanation methods, each a function of a model (or its Attributor) and raw examples.

    integrated_gradients   path integral of the gradient from the baseline (midpoint rule);
                           completeness (the sum equals f(x) − f(baseline)) checked per example
    saliency               |gradient| and gradient × input at the example (images)
    permutation_importance loss increase when one feature's column is shuffled (labels needed)
    rank_correlation       Spearman's, for how far two importance rankings agree
    shap_values            SHAP's kernel explainer on a background sample (the `explain` extra)
    deletion_check         accuracy after blanking the most attributed pixels vs random ones
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlpipe.errors import DlpipeError

CHUNK_ROWS = 4096
"""Rows (examples × path steps) per forward and backward pass."""
REFINEMENTS = 6
"""Integrated gradients doubles the steps of an example at most this often (64 × steps): a
ReLU network is piecewise linear, and each kink on the path costs the rule an error of
order 1/steps (seen: 3.6 % after 1,024 steps, 0.02 % after 2,048 on one tabular example)."""
ABSOLUTE_FLOOR = 1e-5
"""Completeness errors below this count as met whatever |f(x) − f(baseline)|: float32 sums
of a few thousand terms are not exact to better than that."""


def _take(x: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {name: values[index] for name, values in x.items()}


@dataclass
class IntegratedGradients:
    attributions: dict[str, np.ndarray]
    """Per feature, the shape of its point values (N × ...)."""
    output: np.ndarray
    """f(x) of the explained output, per example."""
    baseline_output: np.ndarray
    """f(baseline) of the explained output, per example."""
    steps: np.ndarray
    """Steps used per example."""

    @property
    def error(self) -> np.ndarray:
        """|Σ attributions − (f(x) − f(baseline))| per example."""
        total = sum(a.reshape(len(a), -1).sum(axis=1) for a in self.attributions.values())
        return np.abs(total - (self.output - self.baseline_output))

    def met(self, tolerance: float) -> np.ndarray:
        return self.error <= np.maximum(tolerance * np.abs(self.output - self.baseline_output), ABSOLUTE_FLOOR)


def _path_integral(attributor, x, values, baseline, columns, steps: int):
    """Integrated gradients of each example with `steps` steps of the midpoint rule.

    Midpoints, not the trapezoid rule: the baseline is a special point (every normalized
    value 0), where a ReLU unit's kink often lies within a hair of it; a gradient taken at
    the endpoint itself then speaks for a whole half step it does not hold on (measured:
    a completeness error of 1.1 % after 1,024 trapezoid steps). The two endpoints are
    evaluated too, weight 0, for f(x) and f(baseline)."""
    n = len(columns)
    alphas = np.concatenate([[0.0, 1.0], (np.arange(steps) + 0.5) / steps]).astype(np.float32)
    weights = np.concatenate([[0.0, 0.0], np.full(steps, 1.0 / steps)])
    points = len(alphas)
    per_chunk = max(1, CHUNK_ROWS // points)
    totals = {name: np.zeros(v.shape, dtype=np.float64) for name, v in values.items()}
    at_x, at_base = np.zeros(n), np.zeros(n)
    for start in range(0, n, per_chunk):
        rows = np.arange(start, min(start + per_chunk, n))
        repeat = np.repeat(rows, points)
        a = np.tile(alphas, len(rows))
        path = {}
        for name, value in values.items():
            shape = (-1,) + (1,) * (value.ndim - 1)
            base, end = baseline[name][repeat], value[repeat]
            path[name] = (base + a.reshape(shape) * (end - base)).astype(np.float32)
        out, grads = attributor.gradients(_take(x, repeat), path, np.asarray(columns)[repeat])
        out = out.reshape(len(rows), points)
        at_base[rows], at_x[rows] = out[:, 0], out[:, 1]
        for name, g in grads.items():
            g = g.reshape(len(rows), points, *g.shape[1:]).astype(np.float64)
            mean = np.tensordot(weights, np.moveaxis(g, 1, 0), axes=1)
            totals[name][rows] = mean * (values[name][rows] - baseline[name][rows])
    return totals, at_x, at_base


def integrated_gradients(attributor, x: dict[str, np.ndarray], columns: np.ndarray, steps: int = 64,
                         tolerance: float = 0.01) -> IntegratedGradients:
    """Integrated gradients (Sundararajan et al., 2017) of output `columns[i]` for each
    example, from the attributor's baseline. An example whose completeness error exceeds
    `tolerance` × |f(x) − f(baseline)| is computed again with twice the steps, at most
    REFINEMENTS times."""
    values = attributor.encode(x)
    baseline = attributor.baseline(values)
    totals, at_x, at_base = _path_integral(attributor, x, values, baseline, columns, steps)
    result = IntegratedGradients({k: v.astype(np.float64) for k, v in totals.items()}, at_x, at_base,
                                 np.full(len(columns), steps))
    for _ in range(REFINEMENTS):
        again = np.flatnonzero(~result.met(tolerance))
        if not len(again):
            break
        finer = int(result.steps[again].max()) * 2
        part = _take(values, again)
        totals, _, _ = _path_integral(attributor, _take(x, again), part, _take(baseline, again),
                                      np.asarray(columns)[again], finer)
        for name in result.attributions:
            result.attributions[name][again] = totals[name]
        result.steps[again] = finer
    return result


def saliency(attributor, x: dict[str, np.ndarray], columns: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per image feature: `saliency` (max over channels of |∂f/∂pixel|) and
    `gradient_x_input` (Σ over channels of pixel × ∂f/∂pixel), at the example itself."""
    values = attributor.encode(x)
    maps: dict[str, dict[str, list]] = {}
    for start in range(0, len(columns), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        _, grads = attributor.gradients(_take(x, rows), _take(values, rows), np.asarray(columns)[rows])
        for point in attributor.points:
            if point.type != "image":
                continue
            g, v = grads[point.feature], values[point.feature][rows]
            entry = maps.setdefault(point.feature, {"saliency": [], "gradient_x_input": []})
            entry["saliency"].append(np.abs(g).max(axis=-1))
            entry["gradient_x_input"].append((g * v).sum(axis=-1))
    return {name: {kind: np.concatenate(parts) for kind, parts in entry.items()} for name, entry in maps.items()}


def loss(kind: str, y: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Per-example loss: cross-entropy of the true class (`classes`), squared error (`values`)."""
    output = np.asarray(output, dtype=np.float64)
    if kind == "classes":
        p = np.clip(output[np.arange(len(y)), np.asarray(y, dtype=int)], 1e-12, 1.0)
        return -np.log(p)
    return ((output.reshape(len(y), -1) - np.asarray(y, dtype=np.float64).reshape(len(y), -1)) ** 2).mean(axis=1)


def permutation_importance(predict, x: dict[str, np.ndarray], y: np.ndarray, features: list[tuple[str, str]],
                           kind: str, repeats: int, seed: int) -> dict[str, np.ndarray]:
    """Mean loss increase (and its standard deviation over `repeats` shuffles) when one
    feature's values are shuffled across the examples, the others kept. `predict(x)` gives
    probabilities per class (`kind` classes) or values; `features`: (name, model input).
    `halves`: each feature's mean increase on the even and on the odd positions alone (the
    same shuffles), features × 2: how far the ranking is a property of the rows used."""
    base_rows = loss(kind, y, predict(x))
    base = float(base_rows.mean())
    increases = np.zeros((len(features), repeats))
    halves = np.zeros((len(features), 2))
    even = np.arange(len(y)) % 2 == 0
    for i, (_, input_name) in enumerate(features):
        rng = np.random.default_rng([seed, i])
        for r in range(repeats):
            shuffled = dict(x)
            shuffled[input_name] = x[input_name][rng.permutation(len(y))]
            rows = loss(kind, y, predict(shuffled)) - base_rows
            increases[i, r] = float(rows.mean())
            halves[i] += [rows[even].mean(), rows[~even].mean() if (~even).any() else np.nan]
    return {"base_loss": base, "importance": increases.mean(axis=1), "spread": increases.std(axis=1),
            "increases": increases, "halves": halves / repeats}


def rank_correlation(a, b) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None where it is undefined
    (fewer than 3 values, or one side constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None

    def ranks(v):
        order = np.argsort(v, kind="stable")
        ranked = np.empty(len(v))
        ranked[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # ties: their mean rank
            same = v == value
            ranked[same] = ranked[same].mean()
        return ranked

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def shap_values(predict, x: dict[str, np.ndarray], background: dict[str, np.ndarray],
                features: list[tuple[str, str]], columns: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values (N × features) of output `columns[i]` for each example, by SHAP's
    model-agnostic kernel explainer on the `background` rows; and the explainer's expected
    value per example. Features are columns of one matrix (object-typed when some hold text)."""
    try:
        import shap
    except ImportError:
        raise DlpipeError("the shap method needs the shap package: pip install 'dlpipe[explain]'") from None
    names = [input_name for _, input_name in features]
    text = any(x[name].dtype == object for name in names)

    def matrix(rows: dict[str, np.ndarray]) -> np.ndarray:
        columns_ = [rows[name].reshape(len(rows[name]), -1)[:, 0] for name in names]
        return np.stack(columns_, axis=1).astype(object if text else np.float32)

    def model_of(table: np.ndarray) -> np.ndarray:
        rows = {name: (table[:, i].astype(str) if x[name].dtype == object else table[:, i].astype(np.float32))
                .reshape(-1, *x[name].shape[1:]) for i, name in enumerate(names)}
        return predict(rows)

    np.random.seed(seed)  # the kernel explainer draws its coalitions from NumPy's global generator
    explainer = shap.KernelExplainer(model_of, matrix(background), keep_index=False)
    table = matrix(x)
    raw = explainer.shap_values(table, silent=True)
    values = np.asarray(raw)
    if values.ndim == 2:  # one output: N × features
        values = values[..., None]
    elif isinstance(raw, list):  # older shap: a list per output of N × features
        values = np.stack(raw, axis=-1)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    chosen = np.asarray(columns, dtype=int)
    return values[np.arange(len(chosen)), :, chosen], expected[chosen]


def deletion_check(predict, image: str, x: dict[str, np.ndarray], y: np.ndarray, maps: dict[str, np.ndarray],
                   fraction: float, seed: int) -> dict:
    """Accuracy with the `fraction` of pixels each map ranks highest (by magnitude) set to
    black (0), against the same number of random pixels per image: a map that finds what the
    model uses lowers accuracy more than chance."""
    images = x[image]
    n, height, width = images.shape[:3]
    count = max(1, int(round(fraction * height * width)))

    def accuracy(masked_pixels: np.ndarray) -> float:
        masked = images.copy()
        rows = np.repeat(np.arange(n), count)
        flat = masked_pixels.reshape(-1)
        masked[rows, flat // width, flat % width] = 0
        out = predict({**x, image: masked})
        out = out if out.shape[1] > 1 else np.concatenate([1 - out, out], axis=1)
        return float((out.argmax(axis=1) == y).mean())

    out = predict(x)
    out = out if out.shape[1] > 1 else np.concatenate([1 - out, out], axis=1)
    result = {"fraction": fraction, "pixels_per_image": count, "examples": int(n),
              "accuracy": float((out.argmax(axis=1) == y).mean())}
    rng = np.random.default_rng(seed)
    result["random"] = accuracy(np.stack([rng.choice(height * width, count, replace=False) for _ in range(n)]))
    for name, values in maps.items():
        ranked = np.argsort(-np.abs(values.reshape(n, -1)), axis=1, kind="stable")[:, :count]
        result[name] = accuracy(ranked)
    return result
