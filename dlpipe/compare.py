"""`dlpipe compare RUN... [--out compare.html]`: runs side by side.

Read from each run directory alone (no TensorFlow): metrics.json, spec.yaml and
history.csv. Three parts, on the terminal as text and in one self-contained HTML page:

    metrics      one row per split and metric, one column per run; the best value of a row
                 marked (`*`), better meaning higher or lower as the metric's registry entry
                 says (`direction`); a metric no registry table knows is left unmarked. The
                 baselines of metrics.json score the data, not the model: left out
    spec         the resolved spec's keys (dotted, as --set writes them) whose values differ
                 between the runs; keys only some runs have show `—` for the others
    curves       every quantity of history.csv, one chart each, every run in its own colour:
                 training solid, validation (val_…) dashed, the learning rate on its own

The page has its style and SVG charts inline, no script and no link outside.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

from dlpipe import registry
from dlpipe.errors import DlpipeError

COLOURS = ("#4c78a8", "#e45756", "#54a24b", "#f58518", "#b279a2", "#72b7b2", "#9d755d", "#eeca3b")
SPLIT_ORDER = ("train", "validation", "test")


@dataclass
class Compared:
    """One run, as compared."""

    label: str
    path: Path
    spec: dict
    metrics: dict
    history: dict
    status: str | None


@dataclass
class Comparison:
    runs: list[Compared]
    metrics: list[tuple[str, str, list[float | None], int | None]]
    """(split, metric, value per run, index of the best run or None)."""
    differences: list[tuple[str, list[str]]]
    """(dotted key, the value shown for each run) where the runs differ."""
    curves: list[str]
    """history.csv quantities, validation folded into its training name (loss for val_loss)."""


def compare(paths: list[str | Path]) -> Comparison:
    """Read the runs and line them up (at least two; each must hold run.json)."""
    from dlpipe.api import Run

    if len(paths) < 2:
        raise DlpipeError("dlpipe compare: give at least two run directories")
    opened = [Run.open(path) for path in paths]
    labels = _labels([run.path for run in opened])
    runs = [Compared(label, run.path, run.spec, run.metrics, run.history, run.status)
            for label, run in zip(labels, opened)]
    return Comparison(runs, _metric_rows(runs), _differences(runs), _curves(runs))


def _labels(paths: list[Path]) -> list[str]:
    """Folder names, or longer paths where two runs share a folder name."""
    names = [path.name or str(path) for path in paths]
    if len(set(names)) == len(names):
        return names
    resolved = [str(path.resolve()) for path in paths]
    if len(set(resolved)) < len(resolved):
        raise DlpipeError(f"dlpipe compare: {paths[resolved.index(max(resolved, key=resolved.count))]} is given twice")
    return [str(path) for path in paths]


def direction(task: str | None, metric: str) -> str | None:
    """`max` or `min` from the metric's registry entry (the run's task's table first)."""
    kinds = [f"metric:{task}"] if task else []
    kinds += [kind for kind in registry.kinds() if kind.startswith("metric:") and kind not in kinds]
    for kind in kinds:
        if kind in registry.kinds() and metric in registry.names(kind):
            return registry.entry(kind, metric).direction
    return None


def _metric_rows(runs: list[Compared]):
    splits = sorted({split for run in runs for split in run.metrics},
                    key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))
    task = next((run.spec.get("task") for run in runs if run.spec.get("task")), None)
    rows = []
    for split in splits:
        # A model's numbers only: the baselines' (metrics.json "baselines": split → baseline
        # → metric) score the data, not the run's model, and are left out.
        names = sorted({name for run in runs for name, value in _section(run.metrics, split).items()
                        if value is None or _number(value) is not None})
        for name in names:
            values = [_number(_section(run.metrics, split).get(name)) for run in runs]
            way = direction(task, name)
            finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
            best = None
            if way and len(finite) > 1 and len({v for v, _ in finite}) > 1:
                best = (max if way == "max" else min)(finite)[1]
            rows.append((split, name, values, best))
    return rows


def _section(metrics: dict, split: str) -> dict:
    section = metrics.get(split)
    return section if isinstance(section, dict) else {}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def flatten(value, prefix: str = "") -> dict[str, str]:
    """A spec as dotted keys → values shown as YAML-ish text (lists and scalars as JSON)."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value if isinstance(value, str) else json.dumps(value)}


def _differences(runs: list[Compared]) -> list[tuple[str, list[str]]]:
    flat = [flatten(run.spec) for run in runs]
    keys = list(dict.fromkeys(key for spec in flat for key in spec))
    return [(key, [spec.get(key, "—") for spec in flat]) for key in keys
            if len({spec.get(key) for spec in flat}) > 1]


def _curves(runs: list[Compared]) -> list[str]:
    names = []
    for run in runs:
        for key in run.history:
            base = key.removeprefix("val_")
            if key != "epoch" and base not in names:
                names.append(base)
    return names


# The terminal ---------------------------------------------------------------------------------

def text(comparison: Comparison, width: int = 12) -> str:
    """Metrics (best marked *) and the spec differences, as aligned text."""
    runs = comparison.runs
    column = max(width, *(len(run.label) for run in runs)) + 2
    lines = []
    first = max([len(f"{split} {name}") for split, name, _, _ in comparison.metrics] + [6])
    lines.append(f"{'metric':<{first}}" + "".join(f"{run.label:>{column}}" for run in runs))
    for split, name, values, best in comparison.metrics:
        cells = [(_shown(v) + ("*" if i == best else " ")) for i, v in enumerate(values)]
        lines.append(f"{split + ' ' + name:<{first}}" + "".join(f"{cell:>{column}}" for cell in cells))
    if not comparison.metrics:
        lines.append("(no metrics.json in these runs)")
    lines.append("* best of the row (higher or lower, as the metric's direction says)")
    lines.append("")
    if comparison.differences:
        key_width = max(len(key) for key, _ in comparison.differences)
        lines.append(f"spec differences ({len(comparison.differences)}):")
        for key, values in comparison.differences:
            lines.append(f"  {key:<{key_width}}" + "".join(f"  {_cut(v, column):>{column}}" for v in values))
    else:
        lines.append("spec differences: none (the resolved specs are equal)")
    epochs = ", ".join(f"{run.label} {len(run.history.get('epoch', []))}" for run in runs)
    lines.append(f"curves: {', '.join(comparison.curves) or 'none'} (epochs: {epochs})")
    return "\n".join(lines)


def _shown(value: float | None) -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.4e}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# The page --------------------------------------------------------------------------------------

_W, _H, _LEFT, _BOTTOM, _TOP, _RIGHT = 520, 280, 60, 40, 14, 14


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def chart(name: str, runs: list[Compared]) -> str:
    """One SVG: `name` (solid) and `val_<name>` (dashed) of every run against the epoch."""
    series = []
    for i, run in enumerate(runs):
        epochs = run.history.get("epoch") or list(range(1, len(next(iter(run.history.values()), [])) + 1))
        for key, dashed in ((name, False), (f"val_{name}", True)):
            values = run.history.get(key)
            if values:
                points = [(e, v) for e, v in zip(epochs, values) if math.isfinite(v)]
                if points:
                    series.append((run.label, key, COLOURS[i % len(COLOURS)], dashed, points))
    if not series:
        return ""
    xs = [x for *_, points in series for x, _ in points]
    ys = [y for *_, points in series for _, y in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - (abs(y_lo) * 0.05 or 0.5), y_hi + (abs(y_hi) * 0.05 or 0.5)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1

    def x(v: float) -> float:
        return _LEFT + (v - x_lo) / (x_hi - x_lo) * (_W - _LEFT - _RIGHT)

    def y(v: float) -> float:
        return _H - _BOTTOM - (v - y_lo) / (y_hi - y_lo) * (_H - _BOTTOM - _TOP)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' viewBox='0 0 {_W} {_H}' "
           f"font-size='11' font-family='sans-serif' role='img' aria-label='{escape(name)} per epoch'>"]
    for t in _ticks(y_lo, y_hi):
        out.append(f"<line x1='{_LEFT}' y1='{y(t):.1f}' x2='{_W - _RIGHT}' y2='{y(t):.1f}' stroke='#eee'/>"
                   f"<text x='{_LEFT - 5}' y='{y(t) + 4:.1f}' text-anchor='end'>{t:.4g}</text>")
    for t in _ticks(x_lo, x_hi, 8):
        if float(t).is_integer():
            out.append(f"<text x='{x(t):.1f}' y='{_H - _BOTTOM + 15}' text-anchor='middle'>{int(t)}</text>")
    out.append(f"<line x1='{_LEFT}' y1='{_H - _BOTTOM}' x2='{_W - _RIGHT}' y2='{_H - _BOTTOM}' stroke='#999'/>"
               f"<line x1='{_LEFT}' y1='{_TOP}' x2='{_LEFT}' y2='{_H - _BOTTOM}' stroke='#999'/>"
               f"<text x='{(_W + _LEFT) / 2}' y='{_H - 6}' text-anchor='middle'>epoch</text>")
    for label, key, colour, dashed, points in series:
        line = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
        dash = " stroke-dasharray='6 4'" if dashed else ""
        out.append(f"<polyline points='{line}' fill='none' stroke='{colour}' stroke-width='2' opacity='0.8'{dash} "
                   f"data-run='{escape(label)}' data-key='{escape(key)}'><title>{escape(label)}: {escape(key)}"
                   f"</title></polyline>")
        if len(points) == 1:
            (a, b), = points
            out.append(f"<circle cx='{x(a):.1f}' cy='{y(b):.1f}' r='3' fill='{colour}'/>")
    out.append("</svg>")
    return "".join(out)


def html_page(comparison: Comparison) -> str:
    from dlpipe.report.html import STYLE

    runs = comparison.runs
    head = "".join(f"<th class='num'><span class='swatch' style='background:{COLOURS[i % len(COLOURS)]}'></span>"
                   f"{escape(run.label)}</th>" for i, run in enumerate(runs))
    rows = []
    for split, name, values, best in comparison.metrics:
        cells = "".join(
            f"<td class='num{' best' if i == best else ''}' data-run='{escape(runs[i].label)}' "
            f"title='{'' if v is None else repr(v)}'>{escape(_shown(v))}{' ★' if i == best else ''}</td>"
            for i, v in enumerate(values))
        rows.append(f"<tr data-split='{escape(split)}' data-metric='{escape(name)}'><td>{escape(split)}</td>"
                    f"<td>{escape(name)}</td>{cells}</tr>")
    metrics = (f"<table><thead><tr><th>split</th><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}"
               "</tbody></table><p class='muted'>★ best of the row: higher or lower as the metric's direction "
               "says.</p>") if rows else "<p class='muted'>No metrics.json in these runs.</p>"
    if comparison.differences:
        diff_rows = "".join(
            f"<tr data-key='{escape(key)}'><td><code>{escape(key)}</code></td>"
            + "".join(f"<td>{escape(value)}</td>" for value in values) + "</tr>"
            for key, values in comparison.differences)
        differences = (f"<table class='spec'><thead><tr><th>key</th>{head}</tr></thead><tbody>{diff_rows}"
                       "</tbody></table>")
    else:
        differences = "<p>None: the resolved specs are equal.</p>"
    legend = " ".join(f"<span class='key'><span class='swatch' style='background:{COLOURS[i % len(COLOURS)]}'>"
                      f"</span>{escape(run.label)}</span>" for i, run in enumerate(runs))
    charts = "".join(f"<figure><figcaption><b>{escape(name)}</b></figcaption>{chart(name, runs)}</figure>"
                     for name in comparison.curves if chart(name, runs))
    listed = "".join(f"<li><b>{escape(run.label)}</b>: <code>{escape(str(run.path))}</code>"
                     f"{' (' + escape(run.status) + ')' if run.status and run.status != 'completed' else ''}</li>"
                     for run in runs)
    extra = """
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 0.35em; }
td.best { font-weight: 700; background: #eaf6ec; } .key { margin-right: 1.2em; white-space: nowrap; }
table.spec td { max-width: 22em; overflow-wrap: anywhere; } .charts { display: flex; flex-wrap: wrap; gap: 0 1.5em; }
"""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>dlpipe compare: "
            f"{escape(', '.join(run.label for run in runs))}</title><style>{STYLE}{extra}</style></head><body>"
            f"<h1>{len(runs)} runs compared</h1><ul>{listed}</ul>"
            f"<h2>Metrics</h2>{metrics}"
            f"<h2>Spec differences</h2>{differences}"
            f"<h2>Learning curves</h2><p>{legend} — solid: training, dashed: validation.</p>"
            f"<div class='charts'>{charts or '<p class=muted>No history.csv in these runs.</p>'}</div>"
            "</body></html>\n")


def write_page(comparison: Comparison, out: str | Path) -> Path:
    from dlpipe.rundir import atomic_write_text

    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, html_page(comparison))
    except OSError as err:
        raise DlpipeError(f"{out}: cannot write the comparison: {err.strerror}") from None
    return path
