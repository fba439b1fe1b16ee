"""The model card: export/model_card.json for programs (`dlpipe predict` reads it) and
export/model_card.md for people. Both say the same: what the model is for, what it takes,
what it returns, what it learned from, how well it did, and which exports compute it."""

from __future__ import annotations

import datetime as _dt
import html
import platform
import re
from importlib import metadata
from typing import Any

import numpy as np

from dlpipe import tasks
from dlpipe.version import __version__

CARD_VERSION = 1
PACKAGES = ("tensorflow", "keras", "numpy", "scikit-learn", "onnx", "onnxruntime", "tf2onnx", "ai-edge-litert")


def describe_interface(spec, data, model) -> dict[str, Any]:
    """What a caller must send and gets back: the part of the card `dlpipe predict` needs."""
    inputs = describe_inputs(data)
    units = int(model.outputs[0].shape[-1])
    kind = tasks.get(spec.task).output
    if kind == "embedding":
        output = {"units": units, "activation": "linear",
                  "meaning": f"the embedding: the autoencoder's {units}-number latent vector of the example"}
    elif kind == "values":
        output = {"units": units, "activation": "linear", "meaning": f"the predicted value of {data.target!r}"}
    elif getattr(spec.data.target, "multi_label", False):
        output = {"units": units, "activation": "sigmoid", "multi_label": True, "threshold": 0.5,
                  "meaning": "one independent probability per class, in class_names order; the predicted "
                             "set holds every class whose probability is at least the threshold"}
    elif units == 1:
        output = {"units": 1, "activation": "sigmoid",
                  "meaning": f"the probability of class {data.class_names[1]!r} (1 minus it: {data.class_names[0]!r})"}
    else:
        output = {"units": units, "activation": "softmax", "meaning": "one probability per class, in class_names order"}
    interface = {"name": spec.name, "task": spec.task, "target": data.target, "inputs": inputs,
                 "output": output, "class_names": data.class_names}
    if tasks.get(spec.task).horizon:  # how `dlpipe predict` cuts a series into this model's windows
        windows = spec.data.windows
        interface["windows"] = {"lookback": windows.lookback, "horizon": windows.horizon,
                                "order_by": windows.order_by, "channels": list(data.extra["channels"])}
    return interface


def describe_inputs(data) -> list[dict[str, Any]]:
    """Each model input: its column, type, dtype, shape and what the model does with it."""
    train = data.splits["train"]
    inputs = []
    for feature in data.features:
        entry: dict[str, Any] = {
            "name": feature.name, "input": feature.input_name, "type": feature.type,
            "dtype": "string" if feature.type in ("categorical", "ordinal", "text") else "float32",
            "shape": list(feature.shape), "normalization": feature.normalization,
        }
        if feature.type == "categorical":
            entry.update(vocabulary=list(feature.vocabulary), encoding=feature.encoding,
                         out_of_vocabulary="any other value shares one bucket")
        elif feature.type == "ordinal":
            entry.update(order=list(feature.order), out_of_order="an error")
        elif feature.type == "text":
            entry.update(text=dict(feature.text), vocabulary_size=len(feature.vocabulary or []))
        else:
            values = train.x[feature.input_name]
            entry["value_range"] = [float(np.nanmin(values)), float(np.nanmax(values))] if len(values) else None
        if getattr(feature, "fill", None) is not None:  # prepare.imputation: the model fills a gap itself
            entry.update(imputation=feature.imputation,
                         fill=[v if isinstance(v, str) else float(v) for v in feature.fill.tolist()],
                         missing="NaN" if entry["dtype"] == "float32" else "an empty string")
        inputs.append(entry)
    return inputs


def versions() -> dict[str, str]:
    found = {"dlpipe": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def build_card(spec, interface: dict, data: dict, metrics: dict | None, exports: dict, parameters: int) -> dict:
    """The card: the interface (task, target, inputs, output, class names, and whatever else
    the task's interface says, a detector's `outputs`), `data` (origin, fingerprint,
    split_sizes), training, metrics and the verified exports."""
    return {
        "model_card_version": CARD_VERSION,
        "name": spec.name,
        "description": spec.description,
        "intended_use": spec.export.intended_use or None,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        **{key: interface.get(key) for key in ("task", "target", "inputs", "output", "class_names")},
        **{key: value for key, value in interface.items() if key not in ("name", "exports")},
        "data": data,
        "training": {"architecture": spec.model.type, "parameters": parameters, "epochs": spec.training.epochs,
                     "batch_size": spec.training.batch_size, "optimizer": spec.training.optimizer.type,
                     "seed": spec.seed},
        "metrics": metrics or {},
        "exports": exports,
        "versions": versions(),
    }


def render_markdown(card: dict) -> str:
    # Everything a spec or the data wrote (description, column and class names, categories,
    # paths) is text here, never markup: HTML is escaped, code spans cannot be closed early.
    lines = [f"# Model card: {_text(card['name'])}", ""]
    if card["description"]:
        lines += [_text(card["description"]), ""]
    lines += ["## Intended use", "", _text(card["intended_use"] or "") or
              "Not stated in the spec (`export.intended_use`). Judge from the data and metrics below "
              "whether it fits your use.", ""]
    target = f"target column {_code(card['target'])}" if card["target"] else "no target column"
    output = card["output"]
    shape = (f"{output['units']} value(s), {output['activation']}" if "units" in output
             else f"shape {tuple(output['shape'])} per example" if "shape" in output else "")
    lines += ["## Task and output", "", f"Task: {card['task']}; {target}.",
              f"Output: {shape + ': ' if shape else ''}{_text(output['meaning'])}."]
    if card["class_names"]:
        lines.append("Classes (index: name): " + ", ".join(f"{i}: {_code(n)}" for i, n in enumerate(card["class_names"])) + ".")
    lines += ["", "## Inputs", "",
              "Raw values, as in the training data: any normalization and category lookups are inside the model.", "",
              "| column | input | type | dtype | shape per example | preprocessing inside | values seen in training |",
              "|---|---|---|---|---|---|---|"]
    for entry in card["inputs"]:
        if entry["type"] == "categorical":
            seen = _cell(", ".join(entry["vocabulary"]), 80) + " (any other: one out-of-vocabulary bucket)"
            inside = f"lookup → {entry['encoding']}"
        elif entry["type"] == "ordinal":
            seen = _cell(" < ".join(entry["order"]), 80) + " (any other: an error)"
            inside = "position in the order, scaled to 0..1"
        elif entry["type"] == "text":
            text = entry["text"]
            seen = f"{entry['vocabulary_size']} tokens (any other: out of vocabulary)"
            inside = (f"standardize {text['standardize']}, split {text['split']}, "
                      f"{text['sequence_length']} token ids")
        elif entry.get("value_range"):
            low, high = entry["value_range"]
            seen, inside = f"{low:.6g} … {high:.6g}", entry.get("normalization") or "–"
        else:  # a generator's latent vector (its distribution) or class (the classes)
            seen = _cell(entry.get("distribution") or ", ".join(entry.get("classes") or []) or "–", 80)
            inside = "–"
        lines.append(f"| {_cell(entry['name'], 200)} | {_code(entry['input'], cell=True)} | {entry['type']} | "
                     f"{entry['dtype']} | {tuple(entry['shape'])} | {_cell(inside, 200)} | {seen} |")
    data = card["data"]
    sizes = ", ".join(f"{name} {size}" for name, size in data["split_sizes"].items())
    lines += ["", "## Data", "", f"Source: {_code(data['origin'])}; splits: {sizes}.",
              f"Fingerprint: `{data['fingerprint']}` (same data and spec give the same fingerprint).", ""]
    training = card["training"]
    lines += ["## Training", "", f"{training['architecture']} with {training['parameters']:,} parameters; "
              f"up to {training['epochs']} epochs, batch size {training['batch_size']}, "
              f"{training['optimizer']}, seed {training['seed']}.", ""]
    lines += ["## Metrics", ""]
    if card["metrics"]:
        splits = list(card["metrics"])
        names = list(dict.fromkeys(name for split in splits for name in card["metrics"][split]))
        lines += ["| metric | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
        for name in names:
            cells = [_number(card["metrics"][split].get(name)) for split in splits]
            lines.append(f"| {_cell(name, 200)} | " + " | ".join(cells) + " |")
    else:
        lines.append("No metrics were recorded.")
    lines += ["", "## Exports", "",
              "Each export was loaded with its own runtime and run on held-out examples; its outputs "
              "are compared with the trained model's.", "",
              "| export | path | verified | max abs diff | class agreement | tolerance | notes |",
              "|---|---|---|---|---|---|---|"]
    for key, entry in card["exports"].items():
        verified = {True: "yes", False: "**no**", None: "not checked"}[entry.get("passed")]
        tolerance = ", ".join(f"{k} {v:g}" for k, v in (entry.get("tolerance") or {}).items() if v is not None)
        notes = "; ".join(str(entry[k]) for k in ("quantization", "pre_step", "error") if entry.get(k))
        lines.append(f"| {key} | {_code(entry['path'], cell=True)} | {verified} | {_number(entry.get('max_abs_diff'))} | "
                     f"{_number(entry.get('agreement'))} | {tolerance} | {_cell(notes, 200)} |")
    lines += _scores_table(card)
    if tasks.get(card["task"]).supports("predict"):
        example = "images/" if any(entry["type"] == "image" for entry in card["inputs"]) else "rows.csv"
        lines += ["", f"Predict from this folder: `dlpipe predict <this folder> {example} --out predictions.csv`."]
    lines += ["",
              "## Versions", "", ", ".join(f"{name} {version}" for name, version in card["versions"].items()) + ".", ""]
    return "\n".join(lines)


def _scores_table(card: dict) -> list[str]:
    """Each export on the test split (its own runtime), its size and single-example latency."""
    scored = {key: entry for key, entry in card["exports"].items()
              if any(k in entry for k in ("test_metrics", "bytes", "latency"))}
    if not scored:
        return []
    names = list(dict.fromkeys(m for entry in scored.values() for m in (entry.get("test_metrics") or {})))
    calls = next((entry["latency"]["calls"] for entry in scored.values() if entry.get("latency")), None)
    timing = (f"the median and 90th percentile of {calls} single-example calls on the machine that exported"
              if calls else "no latency measured")
    lines = ["", f"Each export scored on the whole test split with its own runtime; its size; {timing}:", "",
             "| export | " + "".join(f"test {_cell(m, 60)} | " for m in names)
             + "size | gzipped | latency median | latency p90 |",
             "|---" * (len(names) + 5) + "|"]
    model_test = (card.get("metrics") or {}).get("test") or {}
    if names and model_test:
        lines.append("| trained model | " + "".join(f"{_number(model_test.get(m))} | " for m in names) + "– | – | – | – |")
    for key, entry in scored.items():
        values, latency = entry.get("test_metrics") or {}, entry.get("latency") or {}
        lines.append(f"| {key} | " + "".join(f"{_number(values.get(m))} | " for m in names)
                     + f"{_bytes(entry.get('bytes'))} | {_bytes(entry.get('gzip_bytes'))} | "
                     f"{_ms(latency.get('median_ms'))} | {_ms(latency.get('p90_ms'))} |")
    notes = sorted({entry[k] for entry in scored.values() for k in ("test_metrics_note", "test_metrics_error")
                    if entry.get(k)})
    return lines + [f"\n{_text(note)}" for note in notes]


def _bytes(value) -> str:
    return "–" if value is None else f"{value:,} B"


def _ms(value) -> str:
    return "–" if value is None else f"{value:.3g} ms"


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) and not np.isnan(value) else str(value)


def _text(text) -> str:
    """Text as Markdown shows it literally: no HTML tag, entity or comment gets through."""
    return html.escape(str(text), quote=False)


def _cell(text: str, limit: int) -> str:
    """Text for a table cell: escaped, on one line, pipes kept from splitting the row."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return _text(text).replace("|", "\\|")


def _code(text, cell: bool = False) -> str:
    """A code span around `text` whatever it holds: fenced by more backticks than any run
    inside it (CommonMark), on one line; `cell`: inside a table row, where a pipe ends the cell."""
    text = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    shown = f"{fence}{padded}{fence}"
    return shown.replace("|", "\\|") if cell else shown
