"""report.html: one self-contained page about a run, readable offline.

Everything is inside the file: the style sheet, and every plot as a base64 PNG. No
script, no link to anything outside. The page is assembled from the run directory
(spec.yaml, run.json, data.json, history.csv, metrics.json, evaluation/, plots/,
explanations/, export/verification.json), so `dlpipe run`, `dlpipe evaluate` and
`dlpipe explain` build it the same way.

Every number of metrics.json is in the metrics table: shown rounded, exact in the cell's
`title` (a tooltip), and addressed by `data-split` / `data-metric` for tools and tests.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from html import escape
from pathlib import Path
from typing import Any

import yaml

from dlpipe.report.style import STYLE, format_number  # noqa: F401  (format_number: also this module's)
from dlpipe.rundir import atomic_write_text

PLOTS = {
    "learning_curves.png": "Learning curves: training and validation after each epoch.",
    "confusion_matrix.png": "Confusion matrix: rows are true classes, columns predictions.",
    "roc_curve.png": "ROC curve.",
    "pr_curve.png": "Precision-recall curve.",
    "residuals.png": "Predicted against true values, and the residuals.",
    "misclassified.png": "The most confident mistakes.",
    "detections.png": "Test images: detected boxes (solid, class and score) over the true boxes (dashed).",
}
"""Known plots in the order shown, with a caption; any other PNG in plots/ follows."""

MAX_FEATURES_SHOWN = 40
OPEN_TABLE_ROWS = 15
"""Longer tables (features, layers) start folded."""
SPLIT_ORDER = ("train", "validation", "test")

def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i >= numeric_from else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _folded(summary: str, rows: int, content: str) -> str:
    state = " open" if rows <= OPEN_TABLE_ROWS else ""
    return f"<details{state}><summary>{escape(summary)}</summary>{content}</details>"


def _in_order(splits) -> list[str]:
    """train, validation, test first (metrics.json stores them sorted by name)."""
    return sorted(splits, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


def _definitions(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items if v not in (None, "")) + "</dl>"


# Sections -------------------------------------------------------------------------------


def _spec_section(spec: dict, spec_text: str) -> str:
    model, training = spec.get("model", {}), spec.get("training", {})
    optimizer = training.get("optimizer", {})
    stopping = training.get("early_stopping")
    items = [
        ("task", escape(str(spec.get("task")))),
        ("seed", escape(str(spec.get("seed")))),
        ("data source", escape(json.dumps(spec.get("data", {}).get("source")))),
        ("model", escape(str(model.get("type")))),
        ("optimizer", escape(f"{optimizer.get('type')}, learning rate {optimizer.get('learning_rate')}")),
        ("epochs / batch size", escape(f"{training.get('epochs')} / {training.get('batch_size')}")),
        ("loss", escape(str(training.get("loss")))),
        ("early stopping", escape(f"{stopping['monitor']}, patience {stopping['patience']}") if stopping else "off"),
        ("metrics", escape(", ".join(spec.get("evaluation", {}).get("metrics") or []))),
        ("export formats", escape(", ".join(spec.get("export", {}).get("formats") or []))),
    ]
    if model.get("type") == "backbone":
        items.insert(4, ("backbone", escape(_fine_tuning(model, training.get("epochs")))))
    return ("<h2>Spec</h2>" + _definitions(items)
            + f"<details><summary>The resolved spec (spec.yaml)</summary><pre>{escape(spec_text)}</pre></details>")


def _fine_tuning(model: dict, epochs) -> str:
    """A backbone's start and schedule in words (the learning curves plot `phase` and
    `trainable_params` per epoch)."""
    start = (f"run {model['from_run']}" if model.get("from_run")
             else f"{model.get('application')} ({model.get('weights')})")
    tune = model.get("fine_tune") or {}
    frozen, unfreeze = tune.get("freeze_epochs", 0), tune.get("unfreeze", "all")
    trained = "all of it trains" if unfreeze == "all" else f"its top {unfreeze} layers train"
    factor = tune.get("learning_rate_factor", 1.0)
    if frozen and epochs is not None and frozen >= epochs:
        return f"{start}; frozen for every epoch (a fixed feature extractor)"
    when = f"frozen for epochs 1–{frozen}, then {trained} from epoch {frozen + 1}" if frozen else \
        f"{trained} from epoch 1"
    return f"{start}; {when} at {factor:g}× the learning rate; batch norm {tune.get('batch_norm', 'frozen')}"


def _data_section(data: dict | None, labels: list[str] | None = None) -> str:
    if not data:
        return "<h2>Data</h2><p class='muted'>No data.json.</p>"
    sizes = data.get("split_sizes", {})
    items = [
        ("source", escape(str(data.get("origin")))),
        ("examples", escape(", ".join(f"{name} {sizes[name]:,}" for name in _in_order(sizes)))),
        ("target", escape(str(data.get("target")))),
        ("classes", escape(", ".join(labels or data.get("class_names") or []))),
        ("fingerprint", f"<code>{escape(str(data.get('fingerprint')))}</code>"),
    ]
    features = data.get("features", [])
    rows = [[escape(f["name"]), escape(f["type"]), escape("×".join(map(str, f["shape"]))), escape(f["normalization"])]
            for f in features[:MAX_FEATURES_SHOWN]]
    more = (f"<p class='muted'>… and {len(features) - MAX_FEATURES_SHOWN} more features (data.json lists all).</p>"
            if len(features) > MAX_FEATURES_SHOWN else "")
    table = _table(["name", "type", "shape", "normalization"], rows, numeric_from=99) + more
    return "<h2>Data</h2>" + _definitions(items) + _folded(f"{len(features)} features", len(rows), table)


def model_summary(model) -> dict:
    """Layers (name, kind, output shape, parameters) and parameter totals of a Keras model."""
    layers = []
    for layer in model.layers:
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        layers.append({"name": layer.name, "type": type(layer).__name__, "output_shape": shape,
                       "parameters": int(layer.count_params()) if layer.built else 0})
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"name": model.name, "layers": layers, "parameters": int(model.count_params()),
            "trainable": trainable, "non_trainable": int(model.count_params()) - trainable}


def _model_section(summary: dict | None) -> str:
    if not summary:
        return ""
    rows = [[escape(l["name"]), escape(l["type"]), escape(l["output_shape"]), format_number(l["parameters"])]
            for l in summary["layers"]]
    totals = (f"<p>{format_number(summary['parameters'])} parameters: {format_number(summary['trainable'])} "
              f"trainable, {format_number(summary['non_trainable'])} not.</p>")
    table = _table(["layer", "type", "output shape", "parameters"], rows, numeric_from=3)
    return "<h2>Model</h2>" + totals + _folded(f"{len(rows)} layers", len(rows), table)


def _pruning_section(record: dict | None) -> str:
    """compression.pruning: the sparsity reached, overall and per pruned kernel (run.json)."""
    pruning = (record or {}).get("pruning")
    if not pruning:
        return ""
    rows = [[escape(name), format_number(layer["weights"]), f"{layer['sparsity']:.2%}"]
            for name, layer in pruning["layers"].items()]
    text = (f"<p>{pruning['sparsity']:.2%} of {format_number(pruning['weights'])} pruned weights are zero "
            f"(target {pruning['target']:.0%}, {escape(pruning['scope'])} magnitude); exports carry them as exact zeros.</p>")
    table = _table(["kernel", "weights", "sparsity"], rows)
    return "<h2>Pruning</h2>" + text + _folded(f"{len(rows)} pruned kernels", len(rows), table)


def _quantization_section(record: dict | None) -> str:
    """compression.quantization_aware: what the metrics measure, and each simulated input range (run.json)."""
    quantization = (record or {}).get("quantization_aware")
    if not quantization:
        return ""
    rows = [[escape(name), format_number(low), format_number(high)]
            for name, (low, high) in quantization["input_ranges"].items()]
    text = (f"<p>Trained with int8 simulated from epoch {quantization['start_epoch']}. The metrics at the top are that "
            "simulation: kernels on the int8 grid, each quantized layer's input rounded to 8 bits between the "
            "minimum and maximum int8 calibration finds on the same "
            f"{format_number(quantization['calibration_examples'])} training examples, as the int8 TFLite file "
            "computes. Float exports hold the same kernels but do not round activations.</p>")
    table = _table(["layer", "input min", "input max"], rows, numeric_from=1)
    return "<h2>Quantization-aware training</h2>" + text + _folded(f"{len(rows)} quantized layers", len(rows), table)


def _metrics_section(metrics: dict | None) -> str:
    if not metrics:
        return "<h2>Metrics</h2><p class='muted'>No metrics.json.</p>"
    baselines = metrics.get("baselines") or {}
    metrics = {split: values for split, values in metrics.items() if split != "baselines"}
    return _model_metrics(metrics) + _fid_floor(metrics) + _baselines_table(metrics, baselines)


def _fid_floor(metrics: dict) -> str:
    """How to read an FID beside its floor (a generation run's fid_reference)."""
    values = next((v for v in metrics.values() if "fid_reference" in v), None)
    if values is None:
        return ""
    counts = (f" ({format_number(values['fid_samples'])} generated, {format_number(values['fid_real_samples'])} "
              "real)" if "fid_samples" in values and "fid_real_samples" in values else "")
    return ("<p class='muted'><b>FID and its floor.</b> FID depends on the sample count: two samples of the "
            "same distribution do not score 0, and score more the fewer images there are. "
            "<code>fid_reference</code> is FID of real training images against the same held-out test images, "
            f"with the same extractor and the same counts{counts}: the score of a generator that drew exactly "
            "the training images. Read <code>fid</code> against it; compare FIDs only at the same counts and "
            "with the same extractor.</p>")


def _baselines_table(metrics: dict, baselines: dict) -> str:
    """The model beside the plain predictors (metrics/baselines.py), split by split: a row per
    metric, a column for the model and for each baseline."""
    if not baselines:
        return ""
    parts = ["<h2>Baselines</h2><p class='muted'>Plain predictors fitted on the same training split and "
             "scored on the same rows with the same metrics (metrics.json, <code>baselines</code>): "
             "does the network beat them?</p>"]
    for split in _in_order(baselines):
        names = list(dict.fromkeys(n for values in baselines[split].values() for n in values))
        columns = list(baselines[split])
        rows = []
        for name in names:
            model = metrics.get(split, {}).get(name)
            cells = [f'<td class="num" title="{escape(repr(model))}">{format_number(model)}</td>']
            for baseline in columns:
                value = baselines[split][baseline].get(name)
                cells.append(f'<td class="num" data-split="{escape(split)}" data-baseline="{escape(baseline)}" '
                             f'data-baseline-metric="{escape(name)}" title="{escape(repr(value))}">'
                             f'{format_number(value)}</td>')
            rows.append(f"<tr><td>{escape(name)}</td>{''.join(cells)}</tr>")
        head = "".join(f"<th>{escape(b)}</th>" for b in columns)
        parts.append(f"<h3>{escape(split)}</h3><table class='baselines'><thead><tr><th>metric</th><th>model</th>"
                     f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return "".join(parts)


def _model_metrics(metrics: dict) -> str:
    splits = _in_order(metrics)
    names = list(dict.fromkeys(name for values in metrics.values() for name in values))
    rows = []
    for name in names:
        cells = []
        for split in splits:
            if name in metrics[split]:
                value = metrics[split][name]
                cells.append(f'<td class="num" data-split="{escape(split)}" data-metric="{escape(name)}" '
                             f'title="{escape(repr(value))}">{format_number(value)}</td>')
            else:
                cells.append("<td></td>")
        rows.append(f"<tr><td>{escape(name)}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(split)}</th>" for split in splits)
    note = ("<p class='muted'>Rounded; hover a number for its exact value (metrics.json). "
            "NaN: undefined on this split (e.g. ROC-AUC when a class is absent).</p>")
    return (f"<h2>Metrics</h2><table id='metrics'><thead><tr><th>metric</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>" + note)


def _per_class_section(folder: Path) -> str:
    parts = []
    folders = {p.name: p for p in folder.glob("*") if p.is_dir()}
    for split_dir in (folders[name] for name in _in_order(folders)):
        per_class = _read_json(split_dir / "per_class.json")
        if not per_class:
            continue
        rows = [[escape(c["class"]), format_number(c["precision"]), format_number(c["recall"]),
                 format_number(c["f1"]), format_number(c["support"])] for c in per_class]
        parts.append(f"<h3>{escape(split_dir.name)}</h3>"
                     + _table(["class", "precision", "recall", "F1", "support"], rows))
    return "<h2>Per class</h2>" + "".join(parts) if parts else ""


def _plots_section(folder: Path) -> str:
    if not folder.is_dir():
        return ""
    files = [folder / name for name in PLOTS if (folder / name).is_file()]
    files += sorted(p for p in folder.glob("*.png") if p.name not in PLOTS)
    figures = []
    for path in files:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = PLOTS.get(path.name, path.stem.replace("_", " "))
        figures.append(f'<figure><img alt="{escape(path.stem)}" src="data:image/png;base64,{encoded}">'
                       f"<figcaption>{escape(caption)} <span class='muted'>(plots/{escape(path.name)})</span>"
                       "</figcaption></figure>")
    return "<h2>Plots</h2><div class='plots'>" + "".join(figures) + "</div>" if figures else ""


def _export_section(verification: dict | None, metrics: dict | None = None) -> str:
    if not verification:
        return "<h2>Export</h2><p class='muted'>No export/verification.json.</p>"
    rows = []
    for name, result in verification.items():
        passed = result.get("passed")
        verdict = ("<span class='good'>passed</span>" if passed else "<span class='bad'>failed</span>"
                   if passed is not None else "not checked")
        rows.append([escape(name), escape(str(result.get("path", ""))), verdict,
                     format_number(result.get("max_abs_diff", "")), format_number(result.get("mean_abs_diff", "")),
                     format_number(result.get("agreement", "")), format_number(result.get("tolerance", "")),
                     format_number(result.get("samples", ""))])
    return ("<h2>Export verification</h2><p>Each format loaded back with its own runtime and run on "
            "held-out examples, compared with the trained model.</p>"
            + _table(["format", "path", "verdict", "max abs diff", "mean abs diff", "agreement", "tolerance",
                      "samples"], rows, numeric_from=3)
            + _export_scores(verification, (metrics or {}).get("test")))


def _export_scores(verification: dict, model_test: dict | None) -> str:
    """Each export as a user judges it: test metrics from its own runtime, size, latency."""
    scored = {name: result for name, result in verification.items()
              if any(key in result for key in ("test_metrics", "bytes", "latency"))}
    if not scored:
        return ""
    names = list(dict.fromkeys(metric for result in scored.values() for metric in (result.get("test_metrics") or {})))
    rows = []
    if model_test and names:
        rows.append(["trained model (metrics.json)", *(format_number(model_test.get(m, "")) for m in names),
                     "", "", "", ""])
    for name, result in scored.items():
        values, latency = result.get("test_metrics") or {}, result.get("latency") or {}
        rows.append([escape(name), *(format_number(values.get(m, "")) for m in names),
                     format_number(result.get("bytes", "")), format_number(result.get("gzip_bytes", "")),
                     format_number(latency.get("median_ms", "")), format_number(latency.get("p90_ms", ""))])
    notes = sorted({result[key] for result in scored.values() for key in ("test_metrics_note", "test_metrics_error")
                    if result.get(key)})
    calls = next((result["latency"]["calls"] for result in scored.values() if result.get("latency")), None)
    about = ("<p>Each export scored on the whole test split with its own runtime; its size on disk and gzipped; "
             + (f"the median and 90th percentile of {calls} single-example calls on this machine.</p>" if calls
                else "no latency measured.</p>"))
    return ("<h3>Exports on the test split</h3>" + about
            + _table(["export", *(f"test {m}" for m in names), "bytes", "gzip bytes", "latency median (ms)",
                      "latency p90 (ms)"], rows)
            + "".join(f"<p class='muted'>{escape(note)}</p>" for note in notes))


def _run_section(record: dict | None) -> str:
    if not record:
        return ""
    stages = record.get("stages", {})
    # The report stage is still running while it writes this page: say so rather than "running".
    rows = [[escape(name), "this page" if name == "report" and stage.get("status") == "running"
             else escape(str(stage.get("status"))), format_number(stage.get("seconds") or 0.0)]
            for name, stage in stages.items()]
    versions = ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())
    items = [("started", escape(str(record.get("started")))), ("device", escape(str(record.get("device", "")))),
             ("versions", escape(versions)), ("command", f"<code>{escape(' '.join(record.get('command', [])))}</code>")]
    return "<h2>Run</h2>" + _definitions(items) + _table(["stage", "status", "seconds"], rows, numeric_from=2)


# The page --------------------------------------------------------------------------------


def write_report(run_root: Path | str, out: Path | str | None = None, *, model=None, title: str | None = None) -> Path:
    """Draw the learning curves and write `<out>/report.html` (out: the run directory
    itself, or a re-evaluation's folder). Run-wide files come from `run_root`; metrics,
    evaluation/, plots/ and data.json from `out`."""
    from dlpipe.report import explanations, plots

    run_root = Path(run_root)
    out = Path(out) if out is not None else run_root
    if (run_root / "history.csv").is_file():
        plots.learning_curves(plots.read_history(run_root / "history.csv"), out / "plots" / "learning_curves.png")
    spec_text = (run_root / "spec.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(spec_text) or {}
    record = _read_json(run_root / "run.json")
    summary = model_summary(model) if model is not None else None
    heading = title or spec.get("name", run_root.name)
    written = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(heading)} — dlpipe report</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
        f"<p>{escape(spec.get('description', ''))}</p>" if spec.get("description") else "",
        f"<p class='muted'>Run directory <code>{escape(str(run_root.resolve()))}</code>; "
        f"report written {escape(written)}.</p>",
        _metrics_section(_read_json(out / "metrics.json")),
        _plots_section(out / "plots"),
        _per_class_section(out / "evaluation"),
        explanations.section(out / "explanations"),
        _spec_section(spec, spec_text),
        _data_section(_read_json(out / "data.json"), _read_json(run_root / "labels.json")),
        _model_section(summary),
        _pruning_section(record),
        _quantization_section(record),
        _export_section(_read_json(run_root / "export" / "verification.json"), _read_json(run_root / "metrics.json")),
        _run_section(record),
        "</body></html>",
    ]
    return atomic_write_text(out / "report.html", "\n".join(part for part in page if part) + "\n")
