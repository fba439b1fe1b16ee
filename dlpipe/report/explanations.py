"""Explanations in the report: the charts (drawn from the explain stage's numbers) and the
report.html section built from explanations/*.json.

The section is addressable for tools and tests: the global importance table's cells carry
`data-method`, `data-feature` and `data-importance`; each local explanation is a
`<div class="local-explanation" data-row=... data-method=...>` whose rows carry
`data-feature` and `data-attribution` (or `data-token` for text).
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import numpy as np

from dlpipe.report.plots import _figure, _save

SHOWN_FEATURES = 15
"""Features in the importance chart and in each local explanation."""
LOCAL_SHOWN = 3
"""Local explanations shown per method (explanations/<method>.json holds every chosen row)."""
TITLES = {"integrated_gradients": "integrated gradients", "saliency": "saliency", "permutation": "permutation importance",
          "shap": "SHAP", "gradient_x_input": "gradient × input"}


def draw_importance(importance: dict[str, dict[str, float]], path: Path) -> Path:
    """Horizontal bars per feature, one colour per method, each method scaled to its own
    largest importance (their units differ: attribution, loss increase, SHAP value).
    Features: the most important of the first method, at most SHOWN_FEATURES."""
    methods = list(importance)
    first = importance[methods[0]]
    features = sorted(first, key=lambda f: -first[f])[:SHOWN_FEATURES][::-1]
    figure, axes = _figure(7.5, 0.9 + 0.32 * len(features) * max(1, len(methods) / 2))
    ax = axes[0, 0]
    height = 0.8 / len(methods)
    for m, method in enumerate(methods):
        values = np.array([importance[method].get(f, 0.0) for f in features], dtype=float)
        top = np.max(np.abs(values)) or 1.0
        positions = np.arange(len(features)) + (m - (len(methods) - 1) / 2) * height
        ax.barh(positions, values / top, height=height, label=TITLES.get(method, method))
    ax.set_yticks(np.arange(len(features)), features)
    ax.set_xlabel("importance (each method scaled to its largest)")
    ax.set_title("Global importance")
    ax.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def draw_maps(images: np.ndarray, maps: dict[str, np.ndarray], captions: list[str], path: Path) -> Path:
    """Each chosen image (grey), then each method's map over it (red: raises the explained
    output, blue: lowers it; saliency has no sign)."""
    names = list(maps)
    rows, columns = len(images), 1 + len(names)
    figure, axes = _figure(1.8 * columns, 1.9 * rows, columns=columns, rows=rows)
    for r in range(rows):
        grey = images[r].astype(float)
        grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
        axes[r, 0].imshow(grey, cmap="gray")
        axes[r, 0].set_title(captions[r], fontsize=8)
        for c, name in enumerate(names, start=1):
            values = maps[name][r].astype(float)
            limit = np.max(np.abs(values)) or 1.0
            axes[r, c].imshow(grey, cmap="gray")
            axes[r, c].imshow(values, cmap="bwr", vmin=-limit, vmax=limit, alpha=0.6)
            if r == 0:
                axes[r, c].set_title(TITLES.get(name, name), fontsize=8)
    for ax in axes.reshape(-1):
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(figure, path)


# The report.html section ------------------------------------------------------------------

def _number(value) -> str:
    from dlpipe.report.style import format_number

    return format_number(value)


def _image(path: Path, alt: str, caption: str, element_id: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure id="{element_id}"><img alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _global_table(documents: dict[str, dict]) -> str:
    methods = list(documents)
    first = documents[methods[0]]["global"]["features"]
    features = [f["feature"] for f in first][:SHOWN_FEATURES * 2]
    values = {m: {f["feature"]: f for f in documents[m]["global"]["features"]} for m in methods}
    head = "".join(f"<th>{escape(TITLES.get(m, m))}</th>" for m in methods)
    rows = []
    for feature in features:
        cells = []
        for m in methods:
            entry = values[m].get(feature)
            if entry is None:
                cells.append("<td></td>")
                continue
            spread = f" ± {_number(entry['spread'])}" if "spread" in entry else ""
            cells.append(f'<td class="num" data-method="{escape(m)}" data-feature="{escape(feature)}" '
                         f'data-importance="{entry["importance"]!r}">{_number(entry["importance"])}{spread}</td>')
        rows.append(f"<tr><td>{escape(feature)}</td>{''.join(cells)}</tr>")
    return (f"<table id='global-importance'><thead><tr><th>feature</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _tokens(pairs: list) -> str:
    """Tokens on the text, shaded by attribution (red raises the explained output, blue lowers it)."""
    limit = max((abs(v) for _, v in pairs), default=0.0) or 1.0
    spans = []
    for token, value in pairs:
        strength = min(1.0, abs(value) / limit)
        colour = f"rgba(214,39,40,{strength:.2f})" if value >= 0 else f"rgba(31,119,180,{strength:.2f})"
        spans.append(f'<span class="token" style="background:{colour}" data-token="{escape(token)}" '
                     f'data-attribution="{value!r}" title="{value:.4g}">{escape(token)}</span>')
    return "<p class='tokens'>" + " ".join(spans) + "</p>"


def _local(method: str, entry: dict) -> str:
    head = (f"<p><b>{escape(str(entry['row']))}</b>: predicted <b>{escape(str(entry['prediction']))}</b>; "
            f"explained: {escape(str(entry['explained']))} = {_number(entry['output'])}")
    if "baseline_output" in entry:
        head += (f" (baseline {_number(entry['baseline_output'])}; attributions sum to {_number(entry['sum'])}, "
                 f"{entry['steps']} steps)")
    head += "</p>"
    parts = [head]
    for key, pairs in entry.items():
        if key.startswith("tokens:"):
            parts.append(_tokens(pairs))
    rows = []
    for a in entry["attributions"][:SHOWN_FEATURES]:
        value = "" if a["value"] is None else escape(str(a["value"]) if isinstance(a["value"], str)
                                                    else _number(a["value"]))
        rows.append(f'<tr data-feature="{escape(a["feature"])}" data-attribution="{a["attribution"]!r}">'
                    f'<td>{escape(a["feature"])}</td><td class="num">{value}</td>'
                    f'<td class="num">{_number(a["attribution"])}</td></tr>')
    parts.append("<table><thead><tr><th>feature</th><th>value</th><th>attribution</th></tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table>")
    return (f'<div class="local-explanation" data-method="{escape(method)}" data-row="{escape(str(entry["row"]))}">'
            + "".join(parts) + "</div>")


def _checks(documents: dict[str, dict]) -> str:
    lines = []
    ig = documents.get("integrated_gradients")
    if ig:
        c = ig["completeness"]
        lines.append(f"<li id='completeness' data-met='{c['met']}' data-examples='{c['examples']}'>Integrated gradients: "
                     f"attributions sum to f(x) − f(baseline) within {c['tolerance']:.0%} for {c['met']} of "
                     f"{c['examples']} examples ({c['steps']} steps, up to {c['max_steps_used']}; largest relative "
                     f"error {_number(c['max_relative_error'])}).</li>")
    for method, document in documents.items():
        deletion = document.get("deletion")
        if deletion:
            maps = ", ".join(f"{TITLES.get(k, k)} {_number(v)}" for k, v in deletion.items()
                             if k not in ("fraction", "pixels_per_image", "examples", "accuracy", "random"))
            lines.append(f"<li class='deletion' data-method='{escape(method)}'>Deletion check ({escape(method)}): "
                         f"accuracy {_number(deletion['accuracy'])} on {deletion['examples']} images; with the "
                         f"{deletion['fraction']:.0%} most attributed pixels blacked out: {maps}; with as many random "
                         f"pixels: {_number(deletion['random'])}.</li>")
    permutation = documents.get("permutation")
    if permutation:
        lines.append(f"<li>Permutation importance: increase of the {escape(permutation['loss'])} on the "
                     f"{permutation['examples']} validation examples when a feature is shuffled, mean ± standard "
                     f"deviation over {permutation['repeats']} shuffles{_halves(permutation)}.</li>")
    return "<ul>" + "".join(lines) + "</ul>" if lines else ""


def _halves(permutation: dict) -> str:
    """How far the top features' order holds on half the rows (older files have no `halves`)."""
    halves = permutation.get("halves")
    if not halves or halves.get("spearman") is None:
        return ""
    return (f"; the even and the odd examples alone order its top {len(halves['features'])} alike at Spearman "
            f"<span data-halves='{halves['spearman']!r}'>{_number(halves['spearman'])}</span> (near 1: the order is "
            "the model's; near 0: a few examples make it)")


def section(folder: Path, heading: str = "Explanations") -> str:
    """The report's explanations section from `folder` (explanations/), or '' without one."""
    index_path = folder / "explanations.json"
    if not index_path.is_file():
        return ""
    index = json.loads(index_path.read_text(encoding="utf-8"))
    documents = {}
    for method, name in index["files"].items():
        if name.endswith(".json") and (folder / name).is_file():
            documents[method] = json.loads((folder / name).read_text(encoding="utf-8"))
    if not documents:
        return ""
    parts = [f"<section id='explanations'><h2>{escape(heading)}</h2>",
             f"<p>Explained: {escape(index['explained'])}, on {escape(index['source'])} "
             f"({index['examples']} examples for global importance). Methods: "
             f"{escape(', '.join(TITLES.get(m, m) for m in documents))}. Numbers in "
             f"<code>explanations/</code>.</p>"]
    parts.append(_checks(documents))
    if (folder / "importance.png").is_file():
        parts.append(_image(folder / "importance.png", "global importance",
                            "Global importance: mean |attribution| per feature (permutation: loss increase), "
                            "each method scaled to its largest.", "global-importance-chart"))
    ranked = {m: d for m, d in documents.items() if d["global"]["features"]}
    if ranked:
        parts.append(_global_table(ranked))
    for method, document in documents.items():
        for feature, tokens in document["global"].get("tokens", {}).items():
            rows = "".join(f'<tr data-token="{escape(t["token"])}"><td>{escape(t["token"])}</td>'
                           f'<td class="num">{_number(t["importance"])}</td><td class="num">{t["count"]}</td></tr>'
                           for t in tokens)
            parts.append(f"<h3>Tokens of {escape(feature)} ({escape(TITLES.get(method, method))})</h3><table>"
                         "<thead><tr><th>token</th><th>mean |attribution|</th><th>seen</th></tr></thead>"
                         f"<tbody>{rows}</tbody></table>")
    if (folder / "maps.png").is_file():
        parts.append(_image(folder / "maps.png", "attribution maps",
                            "The chosen test images and each method's map (red raises the predicted class's "
                            "probability, blue lowers it).", "attribution-maps"))
    local = [(m, d) for m, d in documents.items() if d.get("local")]
    if local:
        parts.append("<h3>Local explanations</h3>")
        for method, document in local:
            entries = document["local"][:LOCAL_SHOWN]
            parts.append(f"<h4>{escape(TITLES.get(method, method))}</h4>"
                         + "".join(_local(method, entry) for entry in entries))
    parts.append("</section>")
    return "".join(parts)


def write_page(folder: Path, title: str) -> Path:
    """A page of the explanations alone (`dlpipe explain --data`), beside its JSON files."""
    from dlpipe.report.style import STYLE
    from dlpipe.rundir import atomic_write_text

    body = section(folder, title)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"{body}</body></html>\n")
    return atomic_write_text(folder / "report.html", page)
