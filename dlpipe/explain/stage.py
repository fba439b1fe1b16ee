"""The explain stage: the methods that fit the model's inputs, run on a run's splits.

`explain_model` serves the run's own stage (pipelines/supervised.py, `evaluation.explain`)
and `dlpipe explain RUN` (dlpipe/explanation.py). It writes, into its folder:

    <method>.json     global importance per feature, local explanations of the chosen rows,
                      and the method's own checks (integrated gradients: completeness per
                      example; image maps: the deletion check; permutation: the spread)
    importance.png    every method's global importance, side by side
    maps.png          image models: the chosen test images under each method's map
    explanations.json what was explained: methods, rows, files (the stage's marker)

What is explained: for classification, the probability of the class the model predicts for
that example (so global importance is "what drives the model's decisions"); for regression,
the predicted value. Gradient methods and SHAP read the first `examples` rows of the test
split (or of `--data`); permutation importance needs labels and reads the validation split.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe.errors import DlpipeError
from dlpipe.rundir import atomic_write_json

METHODS = ("integrated_gradients", "saliency", "permutation", "shap")
TABULAR_TYPES = ("numerical", "categorical", "ordinal")
SEQUENCE_TYPES = ("text", "tokens")
DELETION_FRACTION = 0.1
"""The deletion check blanks this fraction of each image's pixels."""
GLOBAL_TOKENS = 20
"""Tokens listed in a text feature's global importance."""
HALVES_TOP = 10
"""Permutation importance: its top features whose order the two halves of the rows are
compared on (Spearman), the reliability of that order."""


def default_methods(features: list[dict]) -> list[str]:
    """integrated_gradients always; saliency for an image model; permutation for tabular inputs."""
    kinds = {f["type"] for f in features}
    methods = ["integrated_gradients"]
    if "image" in kinds:
        methods.append("saliency")
    if kinds <= set(TABULAR_TYPES):
        methods.append("permutation")
    return methods


def check_available(methods) -> None:
    """A method's missing package is one line before anything is trained."""
    if "shap" in (methods or ()) and importlib.util.find_spec("shap") is None:
        raise DlpipeError("evaluation.explain.methods lists shap, which needs the shap package: "
                          "pip install 'dlpipe[explain]'")


@dataclass
class Subject:
    """What is explained: the model and what the run knows of its inputs and outputs."""

    model: object
    features: list[dict]
    """data.json's feature entries: name, input, type, shape (and vocabularies)."""
    class_names: list[str] | None
    """Classification: the classes in output order; None: regression."""
    seed: int

    @property
    def classes(self) -> bool:
        return self.class_names is not None

    def predict(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities per class (a sigmoid's p becomes [1 − p, p]) or values, N × K."""
        from dlpipe.data.pipeline import to_tensors

        # Direct calls, batch by batch: SHAP asks for ~10⁵ rows at a time, and model.predict
        # would build a tf.data pipeline for each such call.
        rows = len(next(iter(x.values())))
        parts = [np.asarray(self.model(to_tensors({k: v[start:start + 8192] for k, v in x.items()}), training=False))
                 for start in range(0, rows, 8192)]
        out = np.concatenate(parts).astype(np.float64)
        out = out.reshape(len(out), -1)
        if self.classes and out.shape[1] == 1:
            out = np.concatenate([1.0 - out, out], axis=1)
        return out


@dataclass
class Examples:
    """Raw examples to explain: model inputs by input name, and how to name each row."""

    x: dict[str, np.ndarray]
    labels: np.ndarray | None
    """Encoded labels, where known (the deletion check needs them)."""
    names: list[str]
    """Each example's name in the outputs (`test row 17`, `file.csv row 3`)."""
    source: str
    """Where they come from, for the JSON (`test split`, a file path)."""


def row_positions(rows, count: int, where: str) -> list[int]:
    """The local rows: the first `rows` (an int) or the listed positions, each < count."""
    positions = list(range(min(rows, count))) if isinstance(rows, int) else list(rows)
    beyond = [p for p in positions if p >= count]
    if beyond:
        raise DlpipeError(f"explain rows: row {beyond[0]} is beyond the {count} rows of {where} (counted from 0)")
    return positions


def explain_model(subject: Subject, settings, examples: Examples, validation, training, out: Path,
                  methods=None, rows=None, log=print) -> dict:
    """Run each method, write its JSON and the plots into `out`; returns the index written
    to explanations.json. `settings`: an evaluation.explain section (its defaults when the
    spec has none); `methods` / `rows` override it; `validation` / `training`: Splits for
    permutation importance and SHAP's background."""
    from dlpipe.report.explanations import draw_importance, draw_maps

    methods = list(methods or settings.methods or default_methods(subject.features))
    check_available(methods)
    _check_methods(methods, subject.features)
    count = len(next(iter(examples.x.values())))
    if count == 0:
        raise DlpipeError(f"{examples.source}: no examples to explain")
    local = row_positions(settings.rows if rows is None else rows, count, examples.source)
    chosen = sorted(set(range(min(settings.examples, count))) | set(local))
    x = {name: values[chosen] for name, values in examples.x.items()}
    where = {position: i for i, position in enumerate(chosen)}
    global_rows = np.array([where[p] for p in range(min(settings.examples, count))])
    output = subject.predict(x)
    columns = output.argmax(axis=1) if subject.classes else np.zeros(len(output), dtype=int)
    context = _Context(subject, examples, x, chosen, where, global_rows, local, output, columns)
    out.mkdir(parents=True, exist_ok=True)
    written, overall, maps = {}, {}, {}
    for method in methods:
        log(f"[dlpipe] explain: {method}")
        if method == "integrated_gradients":
            result, method_maps = _integrated_gradients(context, settings)
        elif method == "saliency":
            result, method_maps = _saliency(context)
        elif method == "permutation":
            result, method_maps = _permutation(subject, validation, settings), {}
        else:
            result, method_maps = _shap(context, training, settings), {}
        maps.update(method_maps)
        if method_maps and examples.labels is not None:
            result["deletion"] = _deletion(context, method_maps)
        atomic_write_json(out / f"{method}.json", result)
        written[method] = f"{method}.json"
        overall[method] = {f["feature"]: f["importance"] for f in result["global"]["features"]}
        log(f"[dlpipe] explain: {method}: " + ", ".join(
            f"{f['feature']} {f['importance']:.3g}" for f in result["global"]["features"][:5]))
    files = dict(written)
    if len(subject.features) > 1:
        draw_importance(overall, out / "importance.png")
        files["importance"] = "importance.png"
    if maps:
        images = {f["name"]: f for f in subject.features if f["type"] == "image"}
        image = next(iter(images.values()))
        draw_maps(x[image["input"]][[where[p] for p in local]], {k: v[[where[p] for p in local]] for k, v in maps.items()},
                  [examples.names[p] + ": " + _label(subject, columns[where[p]]) for p in local], out / "maps.png")
        files["maps"] = "maps.png"
    index = {"methods": methods, "rows": [examples.names[p] for p in local], "positions": local,
             "source": examples.source, "examples": len(global_rows), "explained": _explained(subject),
             "files": files}
    atomic_write_json(out / "explanations.json", index)
    return index


@dataclass
class _Context:
    subject: Subject
    examples: Examples
    x: dict[str, np.ndarray]
    """The chosen rows' inputs (global rows ∪ local rows)."""
    chosen: list[int]
    where: dict[int, int]
    """Position in the examples → index into `x`."""
    global_rows: np.ndarray
    local: list[int]
    output: np.ndarray
    columns: np.ndarray
    """The explained output per row of `x`: the predicted class, or 0."""


def _check_methods(methods: list[str], features: list[dict]) -> None:
    for method in methods:
        if method not in METHODS:
            raise DlpipeError(f"unknown explain method {method!r}; choose from {', '.join(METHODS)}")
        if method == "saliency" and not any(f["type"] == "image" for f in features):
            raise DlpipeError("saliency maps are drawn over an image input; the model reads no image feature")
        other = [f for f in features if f["type"] not in TABULAR_TYPES]
        if method in ("permutation", "shap") and other:
            raise DlpipeError(f"{method} shuffles tabular features; feature {other[0]['name']!r} is "
                              f"{other[0]['type']}: use integrated_gradients")


def _explained(subject: Subject) -> str:
    return ("the probability of the class the model predicts" if subject.classes
            else "the value the model predicts")


def _label(subject: Subject, column: int) -> str:
    return subject.class_names[int(column)] if subject.classes else "value"


def _prediction(context: _Context, i: int):
    if context.subject.classes:
        return context.subject.class_names[int(context.columns[i])]
    return float(context.output[i, 0])


def _raw_value(values: np.ndarray, kind: str):
    if kind == "image":
        return None
    value = np.asarray(values).reshape(-1)
    if kind in TABULAR_TYPES + SEQUENCE_TYPES and value.size == 1:
        item = value[0]
        return item.decode() if isinstance(item, bytes) else (str(item) if value.dtype == object else float(item))
    return None


def _global(per_feature: np.ndarray, names: list[str], context: _Context) -> dict:
    """Mean |attribution| per feature over the global rows, and per predicted class."""
    rows = per_feature[context.global_rows]
    result = {"features": _ranked(names, np.abs(rows).mean(axis=0), rows.mean(axis=0)),
              "examples": int(len(rows))}
    if context.subject.classes:
        by_class = {}
        for column in np.unique(context.columns[context.global_rows]):
            mask = context.columns[context.global_rows] == column
            by_class[context.subject.class_names[int(column)]] = {
                "examples": int(mask.sum()),
                "features": _ranked(names, np.abs(rows[mask]).mean(axis=0), rows[mask].mean(axis=0))}
        result["by_class"] = by_class
    return result


def _ranked(names, importance, mean) -> list[dict]:
    order = np.argsort(-np.asarray(importance), kind="stable")
    return [{"feature": names[i], "importance": float(importance[i]), "mean": float(mean[i])} for i in order]


def _local(context: _Context, per_feature: np.ndarray, names: list[str], extra=None) -> list[dict]:
    """One entry per local row: prediction, the explained class, attributions by feature
    (largest magnitude first) with the raw value."""
    kinds = {f["name"]: f for f in context.subject.features}
    entries = []
    for position in context.local:
        i = context.where[position]
        attributions = [{"feature": name, "value": _raw_value(context.x[kinds[name]["input"]][i], kinds[name]["type"]),
                         "attribution": float(per_feature[i, j])} for j, name in enumerate(names)]
        attributions.sort(key=lambda a: -abs(a["attribution"]))
        entry = {"row": context.examples.names[position], "position": position, "prediction": _prediction(context, i),
                 "explained": _label(context.subject, context.columns[i]),
                 "output": float(context.output[i, context.columns[i]]), "attributions": attributions}
        if extra is not None:
            entry.update(extra(i))
        entries.append(entry)
    return entries


def _tokens(point, texts: np.ndarray) -> list[list[str]]:
    """The tokens of each text as the model's own vectorizer splits them (padding dropped)."""
    from dlpipe.data.pipeline import to_tensors

    vectorizer = next((layer for layer in point.chain if type(layer).__name__ == "TextVectorization"), None)
    if vectorizer is None:  # token ids given directly: name them by id
        ids = np.asarray(texts).reshape(len(texts), -1).astype(int)
        return [[str(t) for t in row] for row in ids]
    ids = np.asarray(vectorizer(to_tensors({"t": np.asarray(texts, dtype=object).reshape(-1)})["t"]))
    vocabulary = vectorizer.get_vocabulary()
    return [[vocabulary[t] if t < len(vocabulary) else "[UNK]" for t in row if t != 0] for row in ids]


def _sequence_parts(context: _Context, attributor, attributions: dict[str, np.ndarray]):
    """Per-token attributions of text and token features: for each local row (tokens and
    their attributions) and globally (mean |attribution| per token over the global rows)."""
    from dlpipe.explain.attribution import per_position

    found = {}
    for point in attributor.points:
        if point.type not in SEQUENCE_TYPES:
            continue
        positions = per_position(attributions[point.feature])
        tokens = _tokens(point, context.x[point.input])
        totals: dict[str, list[float]] = {}
        for i in context.global_rows:
            for token, value in zip(tokens[i], positions[i]):
                totals.setdefault(token, []).append(abs(float(value)))
        ranked = sorted(totals.items(), key=lambda item: -np.mean(item[1]))[:GLOBAL_TOKENS]
        found[point.feature] = {
            "local": {i: [[token, float(v)] for token, v in zip(tokens[i], positions[i])] for i in
                      (context.where[p] for p in context.local)},
            "global": [{"token": token, "importance": float(np.mean(values)), "count": len(values)}
                       for token, values in ranked]}
    return found


def _integrated_gradients(context: _Context, settings) -> tuple[dict, dict]:
    from dlpipe.explain.attribution import Attributor, per_feature
    from dlpipe.explain.methods import ABSOLUTE_FLOOR, integrated_gradients

    subject = context.subject
    attributor = Attributor(subject.model, subject.features, expand_binary=_binary(subject))
    result = integrated_gradients(attributor, context.x, context.columns, steps=settings.steps,
                                  tolerance=settings.tolerance)
    names = [p.feature for p in attributor.points]
    per = per_feature(result.attributions, attributor.points)
    difference = result.output - result.baseline_output
    error, met = result.error, result.met(settings.tolerance)
    relative = error / np.maximum(np.abs(difference), 1e-12)
    sequences = _sequence_parts(context, attributor, result.attributions)

    def extra(i):
        part = {"baseline_output": float(result.baseline_output[i]), "sum": float(per[i].sum()),
                "completeness_error": float(error[i]), "steps": int(result.steps[i])}
        part.update({f"tokens:{name}": entry["local"][i] for name, entry in sequences.items()})
        return part

    completeness = {
        "rule": "midpoint", "steps": settings.steps, "max_steps_used": int(result.steps.max()),
        "tolerance": settings.tolerance, "absolute_floor": ABSOLUTE_FLOOR, "examples": int(len(error)),
        "met": int(met.sum()), "max_relative_error": float(relative.max()),
        "per_example": [{"row": context.examples.names[p], "output": float(result.output[i]),
                         "baseline_output": float(result.baseline_output[i]), "sum": float(per[i].sum()),
                         "error": float(error[i]), "relative_error": float(relative[i]), "steps": int(result.steps[i]),
                         "met": bool(met[i])} for p, i in context.where.items()],
    }
    global_ = _global(per, names, context)
    for name, entry in sequences.items():
        global_.setdefault("tokens", {})[name] = entry["global"]
    document = {"method": "integrated_gradients", "source": context.examples.source, "explained": _explained(subject),
                "points": {p.feature: p.where for p in attributor.points},
                "baselines": {p.feature: _baseline_text(p) for p in attributor.points},
                "completeness": completeness, "global": global_, "local": _local(context, per, names, extra)}
    maps = {}
    for point in attributor.points:
        if point.type == "image":
            maps["integrated_gradients"] = result.attributions[point.feature].sum(axis=-1)
    if maps:
        document["maps"] = _map_entries(context, maps)
    return document, maps


def _baseline_text(point) -> str:
    if point.layer is None and point.type != "image":
        return "0 (the model does not normalize this feature)"
    return {"numerical": "0 after normalization (the training mean)", "sequence": "0 after normalization",
            "image": "a black image (all pixels 0)",
            "categorical": "the zero vector at the one-hot or embedding output (no category)",
            "ordinal": "0 on the scaled order (the lowest value)",
            "text": "the zero vector at every token's embedding (the example's own padding mask kept)",
            "tokens": "the zero vector at every token's embedding"}.get(point.type, "0 at the attributed layer")


def _binary(subject: Subject) -> bool:
    return subject.classes and int(np.prod(subject.model.output.shape[1:])) == 1


def _map_entries(context: _Context, maps: dict[str, np.ndarray]) -> dict:
    """The local rows' maps (lists of rows of numbers) by method."""
    return {name: {context.examples.names[p]: np.round(values[context.where[p]], 7).tolist() for p in context.local}
            for name, values in maps.items()}


def _saliency(context: _Context) -> tuple[dict, dict]:
    from dlpipe.explain.attribution import Attributor
    from dlpipe.explain.methods import saliency

    subject = context.subject
    attributor = Attributor(subject.model, subject.features, expand_binary=_binary(subject))
    found = saliency(attributor, context.x, context.columns)
    name, entry = next(iter(found.items()))
    maps = {"saliency": entry["saliency"], "gradient_x_input": entry["gradient_x_input"]}
    per = np.stack([maps["gradient_x_input"].reshape(len(context.columns), -1).sum(axis=1)], axis=1)
    document = {"method": "saliency", "source": context.examples.source, "explained": _explained(subject),
                "feature": name,
                "definition": {"saliency": "max over channels of |∂f/∂pixel| at the example",
                               "gradient_x_input": "Σ over channels of pixel × ∂f/∂pixel"},
                "global": {**_global(per, [name], context),
                           "mean_abs_map": {kind: np.abs(values[context.global_rows]).mean(axis=0).round(7).tolist()
                                            for kind, values in maps.items()}},
                "local": _local(context, per, [name]), "maps": _map_entries(context, maps)}
    return document, maps


def _deletion(context: _Context, maps: dict[str, np.ndarray]) -> dict:
    from dlpipe.explain.methods import deletion_check

    image = next(f for f in context.subject.features if f["type"] == "image")
    rows = context.global_rows
    y = context.examples.labels[np.asarray(context.chosen)[rows]]
    return deletion_check(context.subject.predict, image["input"], {k: v[rows] for k, v in context.x.items()},
                          y, {name: values[rows] for name, values in maps.items()}, DELETION_FRACTION,
                          context.subject.seed)


def _tabular(subject: Subject) -> list[tuple[str, str]]:
    return [(f["name"], f["input"]) for f in subject.features]


def _permutation(subject: Subject, validation, settings) -> dict:
    from dlpipe.explain.methods import permutation_importance, rank_correlation

    if validation is None or validation.y is None or not len(validation):
        raise DlpipeError("permutation importance needs labeled validation examples; the run's validation split "
                          "is empty")
    kind = "classes" if subject.classes else "values"
    result = permutation_importance(subject.predict, validation.x, validation.y, _tabular(subject), kind,
                                    settings.repeats, subject.seed)
    names = [name for name, _ in _tabular(subject)]
    order = np.argsort(-result["importance"], kind="stable")
    top = order[:HALVES_TOP]
    halves = {"rows": "the even and the odd positions of the validation split, the same shuffles",
              "features": [names[i] for i in top],
              "spearman": rank_correlation(result["halves"][top, 0], result["halves"][top, 1])}
    return {"method": "permutation", "source": "validation split", "examples": int(len(validation)),
            "loss": "cross-entropy of the true class" if kind == "classes" else "squared error",
            "base_loss": result["base_loss"], "repeats": settings.repeats, "halves": halves,
            "global": {"features": [{"feature": names[i], "importance": float(result["importance"][i]),
                                     "spread": float(result["spread"][i]),
                                     "increases": [float(v) for v in result["increases"][i]]} for i in order],
                       "examples": int(len(validation))}}


def _shap(context: _Context, training, settings) -> dict:
    from dlpipe.explain.methods import shap_values

    subject = context.subject
    rng = np.random.default_rng([subject.seed, 1])
    size = len(training)
    take = np.sort(rng.choice(size, min(settings.background, size), replace=False))
    background = {name: values[take] for name, values in training.x.items()}
    values, expected = shap_values(subject.predict, context.x, background, _tabular(subject), context.columns,
                                   subject.seed)
    names = [name for name, _ in _tabular(subject)]
    document = {"method": "shap", "explainer": "kernel", "source": context.examples.source,
                "explained": _explained(subject), "background": int(len(take)),
                "global": _global(values, names, context),
                "local": _local(context, values, names, lambda i: {"expected_value": float(expected[i])})}
    return document
