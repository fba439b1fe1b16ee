"""A study's results: best.yaml, study.json, trials.csv and report.html.

The HTML page is self-contained (inline SVG, no script, no network). It lives here until
the run report package (dlpipe/report) exists; then the two should share one style.
"""

from __future__ import annotations

import csv
import html
import io
import math
from pathlib import Path

import optuna
import yaml

from dlpipe.rundir import atomic_write_json, atomic_write_text
from dlpipe.spec import Spec
from dlpipe.spec.paths import resolved
from dlpipe.tuning import space

_STATES = ("complete", "pruned", "fail", "running", "waiting")


def write(study, spec, spec_path, study_dir: Path, shown_url: str) -> dict:
    """Write every output file from what the storage holds now; returns study.json's data."""
    tuning = spec.tuning
    dims = {d.key: d for d in space.dimensions(tuning.search)}
    trials = study.get_trials(deepcopy=False)
    rows = [_trial_row(t, dims, study_dir) for t in trials]
    counts = {"total": len(trials), **{s: sum(r["state"] == s for r in rows) for s in _STATES}}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if complete else None
    importance, note = _importance(study, spec.seed, len(complete))
    key, sign = space.progress_key(spec)
    summary = {
        "study": study.study_name,
        "storage": shown_url,
        "spec": {"name": spec.name, "file": str(Path(spec_path).resolve())},
        "objective": tuning.objective.model_dump(  # weights only where the objective is a weighted sum
            mode="json", exclude=None if tuning.objective.weights is not None else {"weights"}),
        "sampler": tuning.sampler.model_dump(mode="json"),
        "pruner": tuning.pruner.model_dump(mode="json"),
        "search": {k: p.model_dump(mode="json") for k, p in tuning.search.items()},
        "reported_each_epoch": {"key": key, "sign": sign},
        "counts": counts,
        "best": None,
        "importance": importance,
        "importance_note": note,
        "trials": rows,
    }
    if best is not None:
        row = rows[[t.number for t in trials].index(best.number)]
        summary["best"] = {k: row[k] for k in ("number", "value", "params", "run_dir", "metrics")}
        _write_best(best, spec, spec_path, study_dir)
    atomic_write_json(study_dir / "study.json", summary)
    atomic_write_text(study_dir / "trials.csv", trials_csv(rows, list(tuning.search)))
    atomic_write_text(study_dir / "report.html", report_html(summary))
    return summary


def _trial_row(trial, dims: dict, study_dir: Path) -> dict:
    params = {k: (dims[k].decode(v) if k in dims else v) for k, v in trial.params.items()}
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir:
        with_path = Path(run_dir)
        try:
            run_dir = str(with_path.relative_to(study_dir.resolve()))
        except ValueError:
            run_dir = str(with_path)  # another worker's study directory
    seconds = trial.user_attrs.get("seconds")
    if seconds is None and trial.datetime_start and trial.datetime_complete:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        # A pruned trial's value in Optuna is its last per-epoch report (a stand-in for
        # the objective, see space.progress_key); only a completed trial has the objective.
        "value": trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
        "params": params,
        "intermediate": {str(step): v for step, v in sorted(trial.intermediate_values.items())},
        "metrics": trial.user_attrs.get("metrics"),
        "reason": trial.user_attrs.get("reason"),
        "run_dir": run_dir,
        "seconds": seconds,
    }


def _importance(study, seed: int, complete: int) -> tuple[dict | None, str | None]:
    if complete < 2:
        return None, f"needs at least 2 completed trials, has {complete}"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as err:  # noqa: BLE001 - optional analysis; the study's results stand without it
        return None, f"Optuna could not compute it: {type(err).__name__}: {err}"
    return {k: float(v) for k, v in found.items()}, "fANOVA (Optuna), over the completed trials"


def _write_best(best, spec, spec_path, study_dir: Path) -> None:
    data = yaml.safe_load(best.user_attrs["spec"])
    try:  # trials stored by an older dlpipe kept relative paths: resolve them against the spec's folder
        data = resolved(Spec.model_validate(data), Path(spec_path).resolve().parent).model_dump(mode="json")
    except ValueError:  # a stored spec this version no longer validates: written as stored
        pass
    objective = spec.tuning.objective
    target = study_dir / "best.yaml"
    header = (
        f"# dlpipe run {target}\n"
        f"# Trial {best.number}, the best of its study: validation {objective.shown} {best.value!r} "
        f"({objective.direction}).\n"
        "# Every key resolved; running this spec repeats the trial, number for number.\n"
    )
    atomic_write_text(target, header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def trials_csv(rows: list[dict], keys: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", "value", *keys, "epochs_reported", "seconds", "run_dir", "reason"])
    for row in rows:
        params = [_csv_value(row["params"].get(k)) for k in keys]
        writer.writerow([row["number"], row["state"], _csv_value(row["value"]), *params,
                         len(row["intermediate"]), _csv_value(row["seconds"]), row["run_dir"] or "",
                         row["reason"] or ""])
    return buffer.getvalue()


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict, bool)):
        import json

        return json.dumps(value)
    return str(value)


# HTML ---------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777}.bar{background:#4c78a8;height:.8rem;display:inline-block}
tr.best td{background:#eef5ff}code{background:#f4f4f4;padding:0 .2rem}td a{white-space:nowrap}
"""

_COLOR = {"complete": "#4c78a8", "pruned": "#aaaaaa", "fail": "#e45756", "running": "#f58518",
          "waiting": "#bbbbbb"}


def _e(value) -> str:
    return html.escape(str(value))


def _num(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return _e(space.shown(value))


def _objective_shown(objective: dict) -> str:
    """study.json's objective in words: its metric, or its weighted sum."""
    if objective.get("weights"):
        return " + ".join(f"{weight:g} × {name}" for name, weight in objective["weights"].items())
    return str(objective["metric"])


def report_html(summary: dict) -> str:
    objective = summary["objective"]
    best = summary["best"]
    counts = summary["counts"]
    keys = list(summary["search"])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_e(summary['study'])}: dlpipe tune</title><style>{_STYLE}</style></head><body>",
        f"<h1>Study {_e(summary['study'])}</h1>",
        f"<p class='muted'>{_e(summary['spec']['file'])} · storage {_e(summary['storage'])}</p>",
        "<table>",
        f"<tr><th>objective</th><td>{_e(objective['direction'])} {_e(objective['split'])} "
        f"{_e(_objective_shown(objective))}</td></tr>",
        f"<tr><th>sampler</th><td>{_e(_options(summary['sampler']))}</td></tr>",
        f"<tr><th>pruner</th><td>{_e(_options(summary['pruner']))}; fed "
        f"<code>{_e(_reported(summary))}</code> after each epoch</td></tr>",
        "<tr><th>trials</th><td>" + ", ".join(
            f"{counts[s]} {s}" for s in ("total", *_STATES) if counts[s] or s == "total") + "</td></tr>",
    ]
    if best:
        parts.append(f"<tr><th>best</th><td>trial {best['number']}: {_num(best['value'])} "
                     f"(<code>best.yaml</code>, run <code>{_e(best['run_dir'])}</code>)</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Objective per trial</h2>")
    parts.append(_objective_svg(summary["trials"], objective["direction"]))
    parts.append(f"<h2>Per epoch: {_e(_reported(summary))}</h2>")
    parts.append(_epochs_svg(summary["trials"], best["number"] if best else None))

    if best:
        parts.append("<h2>Best parameters</h2><table><tr><th>key</th><th>value</th></tr>")
        parts += [f"<tr><td><code>{_e(k)}</code></td><td>{_num(v)}</td></tr>" for k, v in best["params"].items()]
        parts.append("</table>")
    parts.append("<h2>Parameter importance</h2>")
    if summary["importance"]:
        parts.append("<table>")
        for key, weight in sorted(summary["importance"].items(), key=lambda kv: -kv[1]):
            parts.append(f"<tr><td><code>{_e(key)}</code></td><td class='num'>{weight:.3f}</td>"
                         f"<td><span class='bar' style='width:{max(1, round(weight * 300))}px'></span></td></tr>")
        parts.append(f"</table><p class='muted'>{_e(summary['importance_note'])}</p>")
    else:
        parts.append(f"<p class='muted'>Not available: {_e(summary['importance_note'])}.</p>")

    parts.append("<h2>Trials</h2><table><tr><th>#</th><th>state</th><th>value</th>")
    parts += [f"<th><code>{_e(k)}</code></th>" for k in keys]
    parts.append("<th>epochs</th><th>seconds</th><th>run / reason</th></tr>")
    for row in summary["trials"]:
        cls = " class='best'" if best and row["number"] == best["number"] else ""
        where = (f"<a href='{_e(row['run_dir'])}/'>{_e(row['run_dir'])}</a>" if row["run_dir"] else "")
        if row["reason"]:
            where += f"<br><span class='muted'>{_e(row['reason'])}</span>"
        cells = "".join(f"<td>{_num(row['params'].get(k))}</td>" for k in keys)
        parts.append(f"<tr{cls}><td class='num'>{row['number']}</td><td>{_e(row['state'])}</td>"
                     f"<td class='num'>{_num(row['value'])}</td>{cells}"
                     f"<td class='num'>{len(row['intermediate'])}</td><td class='num'>{_num(row['seconds'])}</td>"
                     f"<td>{where}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def _options(options: dict) -> str:
    rest = ", ".join(f"{k} {v}" for k, v in options.items() if k != "type")
    return f"{options['type']}" + (f" ({rest})" if rest else "")


def _reported(summary: dict) -> str:
    reported = summary["reported_each_epoch"]
    return ("−" if reported["sign"] < 0 else "") + reported["key"]


# SVG charts -----------------------------------------------------------------------------------

_W, _H, _PAD = 720, 260, 48


def _scale(lo: float, hi: float, a: float, b: float):
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lambda v: a + (v - lo) / (hi - lo) * (b - a)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi == lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= n:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _frame(x_lo, x_hi, y_lo, y_hi, x_label: str) -> tuple[list[str], object, object]:
    x = _scale(x_lo, x_hi, _PAD, _W - 12)
    y = _scale(y_lo, y_hi, _H - 32, 12)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' "
           f"viewBox='0 0 {_W} {_H}' font-size='11' font-family='sans-serif'>",
           f"<line x1='{_PAD}' y1='{_H - 32}' x2='{_W - 12}' y2='{_H - 32}' stroke='#999'/>",
           f"<line x1='{_PAD}' y1='12' x2='{_PAD}' y2='{_H - 32}' stroke='#999'/>"]
    for t in _ticks(y_lo, y_hi):
        out.append(f"<text x='{_PAD - 4}' y='{y(t) + 4:.1f}' text-anchor='end'>{t:.4g}</text>"
                   f"<line x1='{_PAD}' y1='{y(t):.1f}' x2='{_W - 12}' y2='{y(t):.1f}' stroke='#eee'/>")
    for t in _ticks(x_lo, x_hi, 10):
        if float(t).is_integer():
            out.append(f"<text x='{x(t):.1f}' y='{_H - 18}' text-anchor='middle'>{int(t)}</text>")
    out.append(f"<text x='{(_W + _PAD) / 2}' y='{_H - 3}' text-anchor='middle'>{_e(x_label)}</text>")
    return out, x, y


def _objective_svg(rows: list[dict], direction: str) -> str:
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None and math.isfinite(r["value"])]
    if not done:
        return "<p class='muted'>No completed trial yet.</p>"
    numbers = [r["number"] for r in rows]
    values = [r["value"] for r in done]
    out, x, y = _frame(min(numbers), max(numbers), min(values), max(values), "trial")
    better = max if direction == "maximize" else min
    best, path = None, []
    for r in sorted(done, key=lambda r: r["number"]):
        best = r["value"] if best is None else better(best, r["value"])
        path.append(f"{x(r['number']):.1f},{y(best):.1f}")
    out.append(f"<polyline points='{' '.join(path)}' fill='none' stroke='#54a24b' stroke-width='1.5'/>")
    for r in rows:
        if r in done:
            out.append(f"<circle cx='{x(r['number']):.1f}' cy='{y(r['value']):.1f}' r='4' fill='{_COLOR['complete']}'>"
                       f"<title>trial {r['number']}: {r['value']:.6g}</title></circle>")
        else:
            cx = x(r["number"])
            out.append(f"<path d='M{cx - 4:.1f},{_H - 33} l4,-7 l4,7 z' fill='{_COLOR.get(r['state'], '#999')}'>"
                       f"<title>trial {r['number']}: {_e(r['state'])}</title></path>")
    out.append("</svg>")
    return ("\n".join(out) + "<p class='muted'>Dots: completed trials; green line: best so far; "
            "triangles on the axis: pruned, failed or running trials.</p>")


def _epochs_svg(rows: list[dict], best_number: int | None) -> str:
    curves = {r["number"]: (r["state"], [(int(s), v) for s, v in r["intermediate"].items()])
              for r in rows if r["intermediate"]}
    if not curves:
        return "<p class='muted'>No epoch reported yet.</p>"
    steps = [s for _, points in curves.values() for s, _ in points]
    values = [v for _, points in curves.values() for _, v in points]
    out, x, y = _frame(min(steps), max(steps), min(values), max(values), "epoch")
    for number, (state, points) in sorted(curves.items(), key=lambda kv: kv[0] == best_number):
        color = "#54a24b" if number == best_number else _COLOR.get(state, "#999")
        width = 2.5 if number == best_number else 1
        line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
        out.append(f"<polyline points='{line}' fill='none' stroke='{color}' stroke-width='{width}' "
                   f"opacity='0.85'><title>trial {number} ({_e(state)})</title></polyline>")
    out.append("</svg>")
    return ("\n".join(out) + "<p class='muted'>One line per trial: blue completed, grey pruned, "
            "green the best.</p>")
