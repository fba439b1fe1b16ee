"""`dlpipe predict MODEL INPUT`: raw data in, class names and probabilities (a multi-label
model: the set of classes whose probability is at least 0.5, `a|c` in a CSV cell, a list in
JSON lines, and every class's probability), values, a forecast (columns forecast_1 …
forecast_<horizon>), or embeddings (one vector per example, columns embedding_0 …
embedding_<k-1>) out; for a detector, boxes, scores and class names per image
(dlpipe/exporters/detection.py).

MODEL is a run directory (its model.keras), an export directory (its SavedModel, else its
.keras, its ONNX file, its TFLite float32 file), one format's folder inside it (onnx/,
tflite/), a SavedModel folder, or a .keras, .onnx or .tflite file. Each runs with its own
runtime (TensorFlow, Keras, onnxruntime, the LiteRT interpreter with the lookup pre-step of
lookup.json), as the export stage verified it. What the model takes and returns comes from
the model card (export/model_card.json) or, for a SavedModel on its own, from
assets/dlpipe_interface.json: input names, types, vocabularies, class names, a forecaster's
windows.

INPUT is raw data, as in the training data:
    *.csv            one row per example, a column per input (by column or input name)
    *.jsonl          one JSON object per line, same keys; images as nested lists
    image or folder  PNG, JPEG, BMP or GIF files (a folder: every such file below it, sorted)
                     for a model with one image input. Each image is converted to the
                     input's channels (RGB → grayscale by luminance), resized to its height
                     and width (area averaging when shrinking, bilinear when enlarging), and
                     its 0..255 pixel values are mapped linearly onto the value range the
                     training images had (the card's value_range: 0..16 for the digits
                     template). Polarity is not changed: the digits data has bright ink on a
                     dark background, so draw digits that way.
A forecaster takes its series as trained from: a CSV or JSONL with the target and its other
channels, one row per step, and the time column it was ordered by (rows in any order). It
forecasts the `horizon` steps after the series' end from the last `lookback` steps, or,
with `every_window`, from every `lookback` consecutive steps; each row of the output is
named by the time (or row) of its window's last step. Ready windows under the input name
`window` are taken too.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from dlpipe.data.values import MISSING_TEXT, _text  # a value turned into text as the data stage does
from dlpipe.errors import DataError, DlpipeError
from dlpipe.rundir import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
OUTPUT_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass
class Model:
    path: Path
    kind: str
    """saved_model, keras, onnx or tflite: the runtime that runs it."""
    interface: dict[str, Any]
    warning: str | None = None
    export_key: str | None = None
    """Its entry in the card's `exports` (tflite/<mode> for a TFLite file)."""

    def predictor(self, allow_unsafe: bool = False):
        """`allow_unsafe`: load a .keras file with Keras safe mode off (dlpipe/modelfile.py).
        Each kind runs with its own runtime, as the export stage verified it: TensorFlow
        for a SavedModel, onnxruntime, the LiteRT interpreter (with lookup.json's pre-step)."""
        if self.kind == "keras":
            from dlpipe.exporters.keras_file import load

            return load(self.path, allow_unsafe=allow_unsafe)
        from dlpipe import registry

        try:
            return registry.load("exporter", self.kind).load(self.path)
        except ImportError as err:  # onnxruntime or ai_edge_litert missing
            extra = registry.entry("exporter", self.kind).extra
            raise DlpipeError(f"{self.path}: running a {self.kind} model needs {err.name or 'its runtime'}: "
                              f"pip install 'dlpipe[{extra}]'") from None


RUNTIMES = ("saved_model", "keras", "onnx", "tflite")
"""What an export directory is predicted with, in this order of preference."""


def _export_file(folder: Path, kind: str) -> Path | None:
    """The model file of one format inside an export directory (or that format's folder):
    TFLite's float32 file when there, else its only file."""
    if kind == "saved_model":
        return folder if (folder / "saved_model.pb").is_file() else None
    if kind == "keras":
        return folder / "model.keras" if (folder / "model.keras").is_file() else None
    if kind == "onnx":
        return folder / "model.onnx" if (folder / "model.onnx").is_file() else None
    files = sorted(folder.glob("model_*.tflite"))
    float32 = folder / "model_float32.tflite"
    return float32 if float32.is_file() else (files[0] if len(files) == 1 else None)


def locate_model(path: str | Path) -> Model:
    """Find the model and its interface for a run dir, export dir (or one format's folder in
    it), SavedModel, or a .keras, .onnx or .tflite file."""
    path = Path(path)
    suffixes = {".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}
    if path.is_file() and path.suffix in suffixes:
        kind, model = suffixes[path.suffix], path
        cards = [path.parent / "model_card.json", path.parent / "export" / "model_card.json",
                 path.parent.parent / "model_card.json"]
    elif (path / "saved_model.pb").is_file():
        kind, model = "saved_model", path
        cards = [path / "assets" / "dlpipe_interface.json", path.parent / "model_card.json"]
    elif (path / "model_card.json").is_file():
        cards = [path / "model_card.json"]
        found = [(kind, _export_file(path / kind, kind)) for kind in RUNTIMES]
        found = [(kind, file) for kind, file in found if file is not None]
        if not found:
            raise DlpipeError(f"{path}: an export directory without saved_model/, keras/, onnx/ or tflite/; "
                              "re-export with `dlpipe export RUN_DIR`")
        kind, model = found[0]
    elif path.name in ("onnx", "tflite") and (path.parent / "model_card.json").is_file():
        kind, model = path.name, _export_file(path, path.name)
        cards = [path.parent / "model_card.json"]
        if model is None:
            raise DlpipeError(f"{path}: holds several .tflite files; name one (model_<mode>.tflite)")
    elif (path / "model.keras").is_file():
        kind, model = "keras", path / "model.keras"
        cards = [path / "export" / "model_card.json"]
    else:
        raise DlpipeError(f"{path}: not a run directory, an export directory, a SavedModel or a .keras, "
                          ".onnx or .tflite file")
    for card in cards:
        if card.is_file():
            interface = _read_json(card)
            break
    else:
        raise DlpipeError(f"{path}: no model card (model_card.json) beside the model; write one with "
                          "`dlpipe export RUN_DIR`")
    labels = _labels_file(path)
    if labels is not None:
        interface = {**interface, "class_names": labels}
    key = f"tflite/{model.stem.removeprefix('model_')}" if kind == "tflite" else kind
    entry = (interface.get("exports") or {}).get(key) or {}
    warning = f"the {key} export failed its verification (see verification.json)" \
        if entry.get("passed") is False else None
    return Model(model, kind, interface, warning, key)


def _labels_file(path: Path) -> list[str] | None:
    """The run directory's labels.json (class names in output order), when MODEL lies in a run
    directory: it names the classes of the model that was trained, even for an old card."""
    folder = path.parent if path.is_file() else path
    for candidate in (folder, folder.parent, folder.parent.parent):
        labels = candidate / "labels.json"
        if labels.is_file() and (candidate / "run.json").is_file():
            names = _read_json(labels)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DlpipeError(f"{labels}: expected a JSON list of class names")
            return names
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DlpipeError(f"{path}: cannot read: {err}") from None


# Inputs ----------------------------------------------------------------------------------

@dataclass
class Examples:
    """Raw examples, converted to model inputs one batch at a time."""

    count: int
    batch: Any
    """batch(start, stop) → inputs by input name."""
    labels: list[str] | None = None
    """A name per example (image files), written beside its prediction."""
    label_name: str = "file"


def read_examples(path: str | Path, interface: dict, every_window: bool = False) -> Examples:
    """`every_window`: a forecaster given its series forecasts from every window of it, not
    only from the last one."""
    path = Path(path)
    series = interface.get("windows") is not None
    if every_window and not series:
        raise DlpipeError("--every-window: only a forecasting model reads a series; this model is "
                          f"{interface.get('task')}")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return _images(path, interface)
    if path.suffix.lower() == ".csv":
        records = _read_frame(path, interface)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        records = _read_jsonl(path)
    else:
        raise DataError(f"{path}: unknown input kind; use .csv, .jsonl, an image ({', '.join(IMAGE_SUFFIXES)}) "
                        "or a folder of images")
    # A forecaster takes its series as trained from (one row per step), or ready windows
    # under its input's name (`window`: lookback × channels numbers per example).
    if series and not (records and any(e["input"] in records[0] for e in interface["inputs"])):
        return _series(path, records, interface, every_window)
    return _rows(path, records, interface)


def _column_for(entry: dict, columns) -> str | None:
    for name in (entry["name"], entry["input"]):
        if name in columns:
            return name
    return None


def _check_columns(path: Path, interface: dict, columns) -> dict[str, str]:
    found, missing = {}, []
    for entry in interface["inputs"]:
        column = _column_for(entry, columns)
        if column is None:
            missing.append(entry["name"])
        else:
            found[entry["input"]] = column
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                        + f"; the model takes: {', '.join(e['name'] for e in interface['inputs'])}")
    return found


def _read_frame(path: Path, interface: dict) -> list[dict]:
    import pandas as pd

    try:
        # Read as training read its CSV (dlpipe/data/sources.py), so that a category turns
        # into the same text: a column of integers gives "7" for 007 in both.
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot parse as CSV: {str(err).strip().splitlines()[0]}") from None
    images = [e["name"] for e in interface["inputs"] if e["type"] == "image"]
    if images:
        raise DataError(f"{path}: input {images[0]!r} is an image; give image files, a folder or JSONL")
    return frame.to_dict(orient="records")


def _read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSON-lines file, read as the `jsonl` data source reads them (same messages)."""
    from dlpipe.data.sources import read_jsonl_records

    return [record for _, record in read_jsonl_records(path)]


def _rows(path: Path, records: list[dict], interface: dict) -> Examples:
    if not records:
        raise DataError(f"{path}: no rows")
    # Row numbers as a person sees them: CSV counts the header line.
    first_row = 2 if path.suffix.lower() == ".csv" else 1
    noun = "row" if first_row == 2 else "line"
    columns = _check_columns(path, interface, records[0])
    # Every value is checked before the first prediction is written: a bad row is one
    # line on stderr, not a header and some rows followed by an error.
    inputs = model_inputs(records, interface, columns, lambda offset: f"{path}: {noun} {offset + first_row}")
    return Examples(len(records), lambda start, stop: {name: v[start:stop] for name, v in inputs.items()})


def _series(path: Path, records: list[dict], interface: dict, every_window: bool) -> Examples:
    """A forecaster's series, one row per step as in its training data (the target and the
    other channels, and the time column when it was ordered by one), put in time order and
    cut into the model's windows: the last `lookback` steps (forecasting the `horizon`
    steps after the series' end) or, with `every_window`, every `lookback` consecutive steps.
    Each example is named by the time (or row) of its window's last step."""
    from dlpipe.data.windows import time_order

    windows = interface["windows"]
    lookback, channels, order_by = windows["lookback"], windows["channels"], windows["order_by"]
    (entry,) = interface["inputs"]
    unit, first_row = ("row", 2) if path.suffix.lower() == ".csv" else ("line", 1)
    needed = [*channels, *([order_by] if order_by else [])]
    missing = [c for c in needed if not records or c not in records[0]]
    if missing:
        what = "the time it is ordered by" if missing[0] == order_by else "a channel of its windows"
        raise DataError(f"{path}: no column {missing[0]!r} ({what}); a forecaster takes its series with "
                        f"columns {', '.join(needed)}, one row per step, or windows under {entry['input']!r}")
    values = np.zeros((len(records), len(channels)), dtype=np.float32)
    for number, record in enumerate(records):
        for c, name in enumerate(channels):
            raw = record.get(name)
            where = f"{path}: {unit} {number + first_row}, column {name!r}"
            if raw is None or (isinstance(raw, float) and raw != raw):
                raise DataError(f"{where}: a missing value; a forecaster's series needs every step")
            try:
                values[number, c] = float(raw)
            except (TypeError, ValueError):
                raise DataError(f"{where}: expected a number, got {raw!r}") from None
            if not np.isfinite(values[number, c]):
                raise DataError(f"{where}: an infinite value")
    if order_by:
        times = np.array([record.get(order_by) for record in records])
        if times.dtype.kind == "O":  # mixed or missing: compare as text, as dates are
            times = times.astype(str)
        order = time_order(times, order_by, path, first_row)
        names = [times[i].item() if isinstance(times[i], np.generic) else times[i] for i in order]
    else:
        order = np.arange(len(records))
        names = [int(i) + first_row for i in order]
    if len(records) < lookback:
        raise DataError(f"{path}: {len(records)} {unit}s, fewer than the {lookback} steps each window of "
                        "this model looks back")
    series = values[order]
    ends = np.arange(lookback - 1, len(series)) if every_window else np.array([len(series) - 1])

    def batch(start: int, stop: int) -> dict[str, np.ndarray]:
        return {entry["input"]: np.stack([series[end - lookback + 1:end + 1] for end in ends[start:stop]])}

    return Examples(len(ends), batch, [names[end] for end in ends], label_name=order_by or unit)


def model_inputs(records: list[dict], interface: dict, columns: dict[str, str], where) -> dict[str, np.ndarray]:
    """Raw records → the model's inputs by input name. `columns` maps each input to its key in
    the records (`_check_columns`); `where(i)` names record i in a message. What `dlpipe
    predict`, `dlpipe serve` and `dlpipe.predict` all convert with."""
    out = {}
    for entry in interface["inputs"]:
        values = []
        for offset, record in enumerate(records):
            raw = _raw(record.get(columns[entry["input"]]), entry, where(offset))
            values.append(_value(raw, entry, where(offset)))
        out[entry["input"]] = np.stack(values) if entry["type"] not in STRING_TYPES \
            else np.array(values, dtype=object).reshape(-1, 1)
    return out


def _raw(raw, entry: dict, where: str):
    """What a record may hold beyond the training data's own values: a text input as a
    one-element list (a (1,)-shaped tensor, as TensorFlow Serving clients send it), and an
    image as encoded bytes — base64 text, {"b64": text} (TensorFlow Serving's form for
    binary values), or a file path (pathlib.Path) — decoded like an image file."""
    if entry["type"] in STRING_TYPES and isinstance(raw, list) and len(raw) == 1:
        return raw[0]
    if entry["type"] != "image":
        return raw
    if isinstance(raw, Path):
        return load_image(raw, entry)
    if isinstance(raw, dict) and set(raw) == {"b64"}:
        raw = raw["b64"]
    if isinstance(raw, str):
        import base64
        import binascii

        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"{where}, column {entry['name']!r}: expected an image as base64 text or "
                            "nested lists of pixel values, got text that is not base64") from None
    if isinstance(raw, (bytes, bytearray)):
        return decode_image(bytes(raw), entry, f"{where}, column {entry['name']!r}")
    return raw


STRING_TYPES = ("categorical", "ordinal", "text")
"""Inputs the model takes as text (dlpipe/data/prepare.py STRING_TYPES)."""


def _value(raw, entry: dict, where: str):
    name = entry["name"]
    imputed = entry.get("imputation") is not None  # the model fills a missing value itself
    if raw is None or (isinstance(raw, float) and raw != raw):
        if imputed and entry["type"] in STRING_TYPES:
            return MISSING_TEXT  # the model's own sign of a missing text value
        if imputed:
            return np.full(tuple(entry["shape"]), np.nan, dtype=np.float32)
        raise DataError(f"{where}, column {name!r}: a missing value")
    if entry["type"] in STRING_TYPES:
        return _text(raw)
    try:
        array = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{where}, column {name!r}: expected a number, got {raw!r}") from None
    shape = tuple(entry["shape"])
    if array.size != int(np.prod(shape)):
        raise DataError(f"{where}, column {name!r}: expected {int(np.prod(shape))} value(s) "
                        f"(shape {shape}), got {array.size}")
    if not (np.isfinite(array) | (np.isnan(array) if imputed else False)).all():
        raise DataError(f"{where}, column {name!r}: a missing or infinite value")
    return array.reshape(shape)


def _images(path: Path, interface: dict) -> Examples:
    inputs = interface["inputs"]
    if len(inputs) != 1 or inputs[0]["type"] != "image":
        raise DataError(f"{path}: image files need a model with one image input; this one takes "
                        f"{', '.join(e['name'] + ' (' + e['type'] + ')' for e in inputs)}")
    entry = inputs[0]
    if path.is_dir():
        from dlpipe.readlog import walk  # links followed (symlinked folders too), loops not entered

        files = [p for p in walk(path) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        labels = [p.relative_to(path).as_posix() for p in files]
    else:
        files, labels = [path], [path.name]

    def batch(start: int, stop: int) -> dict[str, np.ndarray]:
        return {entry["input"]: np.stack([load_image(f, entry) for f in files[start:stop]])}

    return Examples(len(files), batch, labels)


def load_image(path: Path, entry: dict) -> np.ndarray:
    """One image file → the model's raw input (see the module's docstring)."""
    _check_pixel_count(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror or err}") from None
    return decode_image(data, entry, str(path))


def decode_image(data: bytes, entry: dict, where: str) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, BMP, GIF) → the model's raw input: the input's
    channels, size and training value range (see the module's docstring). With TensorFlow
    imported (a model on the TensorFlow backend, a SavedModel) TensorFlow decodes and resizes;
    on another backend without it, Pillow and NumPy do the same (`_decode_with_pillow`)."""
    height, width, channels = entry["shape"]
    _check_pixel_count(_Named(data, where))
    if "tensorflow" not in sys.modules:
        from dlpipe.backend import current

        if current() not in (None, "tensorflow"):
            return _decode_with_pillow(data, entry, where)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        raise DataError(f"{where}: cannot decode as an image") from None
    scale = 65535.0 if image.dtype == tf.uint16 else 255.0
    image = tf.cast(image, tf.float32) / scale
    if image.shape[-1] in (2, 4):
        image = image[..., :-1]  # drop alpha
    if channels == 1 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    if tuple(image.shape[:2]) != (height, width):
        shrinking = image.shape[0] >= height and image.shape[1] >= width
        image = tf.image.resize(image, (height, width), method="area" if shrinking else "bilinear",
                                antialias=shrinking)
    low, high = entry.get("value_range") or (0.0, 1.0)
    return (low + image.numpy() * (high - low)).astype(np.float32)


def _decode_with_pillow(data: bytes, entry: dict, where: str) -> np.ndarray:
    """`decode_image` without TensorFlow: the first frame, alpha dropped, the channels
    converted with the same luminance weights as `tf.image.rgb_to_grayscale`, and resized as
    `tf.image.resize` does (`resize_area` when shrinking, half-pixel bilinear when enlarging);
    tests/test_prediction.py compares the two."""
    from PIL import Image, UnidentifiedImageError

    height, width, channels = entry["shape"]
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.seek(0)
            image = opened.convert("RGBA" if "transparency" in opened.info else "RGB") \
                if opened.mode in ("P", "PA", "CMYK", "YCbCr", "HSV", "LAB") else opened.copy()
    except (UnidentifiedImageError, OSError, ValueError, EOFError):
        raise DataError(f"{where}: cannot decode as an image") from None
    pixels = np.asarray(image.convert("L") if image.mode == "1" else image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16 bits: their high byte, as TensorFlow's decode_image
        pixels = (pixels.astype(np.int64) >> 8).clip(0, 255)
    pixels = pixels.astype(np.float32).reshape(pixels.shape[0], pixels.shape[1], -1) / np.float32(255.0)
    if pixels.shape[-1] in (2, 4):
        pixels = pixels[..., :-1]  # drop alpha
    if channels == 1 and pixels.shape[-1] == 3:
        pixels = (pixels @ np.array([0.2989, 0.5870, 0.1140], np.float32))[..., np.newaxis]
    elif channels == 3 and pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    if pixels.shape[:2] != (height, width):
        shrinking = pixels.shape[0] >= height and pixels.shape[1] >= width
        resize = _area_weights if shrinking else _bilinear_weights
        rows, columns = resize(pixels.shape[0], height), resize(pixels.shape[1], width)
        pixels = np.einsum("ij,jkc,lk->ilc", rows, pixels, columns).astype(np.float32)
    low, high = entry.get("value_range") or (0.0, 1.0)
    return (low + pixels * (high - low)).astype(np.float32)


def _area_weights(size: int, out: int) -> np.ndarray:
    """(out, size): each output pixel the mean of the input span it covers, partly covered
    pixels by the fraction covered (TensorFlow's ResizeArea)."""
    scale = size / out
    weights = np.zeros((out, size), np.float64)
    for i in range(out):
        start, stop = i * scale, (i + 1) * scale
        for j in range(int(np.floor(start)), min(int(np.ceil(stop)), size)):
            weights[i, j] = min(j + 1.0, stop) - max(float(j), start)
    return weights / scale


def _bilinear_weights(size: int, out: int) -> np.ndarray:
    """(out, size): linear interpolation at half-pixel centres, clamped at the edges
    (TensorFlow's ResizeBilinear with half_pixel_centers)."""
    scale = size / out
    weights = np.zeros((out, size), np.float64)
    for i in range(out):
        at = (i + 0.5) * scale - 0.5
        floor = np.floor(at)
        lower, upper = max(int(floor), 0), min(int(np.ceil(at)), size - 1)
        weights[i, lower] += 1.0 - (at - floor)
        weights[i, upper] += at - floor
    return weights


class _Named(io.BytesIO):
    """Image bytes that a message names as `where` (PIL reads the header from it)."""

    def __init__(self, data: bytes, where: str):
        super().__init__(data)
        self.where = where

    def __str__(self) -> str:
        return self.where


def _check_pixel_count(path) -> None:
    """Refuse an image too large to decode from its header (sources.open_image); a file PIL
    cannot identify is left to TensorFlow's decoder and its own message."""
    from PIL import UnidentifiedImageError

    from dlpipe.data.sources import open_image

    try:
        open_image(path).close()
    except (UnidentifiedImageError, OSError, ValueError):
        pass


# Outputs ---------------------------------------------------------------------------------

def probabilities(interface: dict, output: np.ndarray) -> np.ndarray:
    """The model's output as one probability per class (a sigmoid's p becomes [1 - p, p])."""
    output = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
    if output.shape[1] == 1 and interface["output"]["activation"] == "sigmoid":
        return np.concatenate([1.0 - output, output], axis=1)
    return output


def forecast_steps(interface: dict) -> int:
    """How many steps ahead a forecaster's output holds (its horizon); 0 for other models."""
    from dlpipe import tasks

    return int(interface["output"]["units"]) if tasks.get(interface["task"]).horizon else 0


def multi_label(interface: dict) -> bool:
    """K independent sigmoids (a multi-label classifier): the prediction is a set of classes.
    A card written before dlpipe said so has `softmax` for them and is read as single-label."""
    output = interface["output"]
    return bool(output.get("multi_label")) or (output["activation"] == "sigmoid" and output["units"] > 1)


def output_kind(interface: dict, where: str | Path = "") -> str:
    """What the model gives per example (the task's `output`: classes, values, embedding,
    boxes), from the task its model card names; one line when the task cannot be predicted with."""
    from dlpipe import registry, tasks

    name = interface.get("task")
    if name not in registry.names("task"):
        raise DlpipeError(f"{where or 'the model card'}: unknown task {name!r}; this dlpipe knows "
                          f"{', '.join(registry.names('task'))}")
    return tasks.require(name, "predict", where or None).output


def output_columns(interface: dict) -> list[str]:
    """A multi-output model's columns, one group per output: `<output>/prediction` (a class
    name or a number), then for a classification output `<output>/probability_<class>`."""
    columns = []
    for name, entry in _outputs(interface):
        columns.append(f"{name}/prediction")
        columns += [f"{name}/probability_{label}" for label in entry.get("class_names") or ()]
    return columns


def _outputs(interface: dict) -> list[tuple[str, dict]]:
    """(name, entry) of each output, in the spec's order (`output_names`; JSON sorts the dict)."""
    names = interface.get("output_names") or list(interface["outputs"])
    return [(name, interface["outputs"][name]) for name in names]


def _output_records(interface: dict, output: dict) -> list[dict]:
    """A multi-output model's outputs (by name) → one flat record per example, by output_columns."""
    count = len(next(iter(output.values())))
    out = [{} for _ in range(count)]
    for name, entry in _outputs(interface):
        values = np.asarray(output[name], dtype=np.float64).reshape(count, -1)
        names = entry.get("class_names")
        if names:
            probs = probabilities({"output": entry}, values)
            for record, row in zip(out, probs):
                record[f"{name}/prediction"] = names[int(row.argmax())]
                record.update({f"{name}/probability_{label}": float(p) for label, p in zip(names, row)})
        else:
            for record, row in zip(out, values):
                record[f"{name}/prediction"] = float(row[0])
    return out


def records(interface: dict, output: np.ndarray, labels: list[str] | None, label_name: str) -> list[dict]:
    out = []
    kind = output_kind(interface)
    if kind == "outputs":  # several outputs (task multi_output): a column group per output
        out = _output_records(interface, output)
    elif kind == "classes" and multi_label(interface):
        classes, threshold = interface["class_names"], interface["output"].get("threshold", 0.5)
        for row in np.asarray(output, dtype=np.float64).reshape(len(output), -1):
            out.append({"prediction": [name for name, p in zip(classes, row) if p >= threshold],
                        "probabilities": {name: float(p) for name, p in zip(classes, row)}})
    elif kind == "classes":
        classes = interface["class_names"]
        probs = probabilities(interface, output)
        for i, row in enumerate(probs):
            record = {"prediction": classes[int(row.argmax())],
                      "probabilities": {name: float(p) for name, p in zip(classes, row)}}
            out.append(record)
    elif kind == "embedding":
        values = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
        out = [{"embedding": [float(v) for v in row]} for row in values]
    elif forecast_steps(interface):  # one column per step ahead
        values = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
        out = [{f"forecast_{step + 1}": float(v) for step, v in enumerate(row)} for row in values]
    else:
        values = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
        out = [{"prediction": float(row[0]) if len(row) == 1 else [float(v) for v in row]} for row in values]
    if labels is not None:
        out = [{label_name: label, **record} for label, record in zip(labels, out)]
    return out


LABEL_SEPARATOR = "|"
"""Between the class names of a multi-label prediction in a CSV cell (JSON lines: a list)."""


class Writer:
    """CSV or JSON lines, one record per example."""

    def __init__(self, handle: TextIO, fmt: str, interface: dict, labelled: bool, label_name: str,
                 explained: bool = False):
        self.handle, self.fmt = handle, fmt
        if fmt == "csv":
            header = ([label_name] if labelled else [])
            kind = output_kind(interface)
            if kind == "embedding":  # one column per number of the vector
                header += [f"embedding_{i}" for i in range(interface["output"]["units"])]
            elif forecast_steps(interface):
                header += [f"forecast_{step + 1}" for step in range(forecast_steps(interface))]
            elif kind == "outputs":
                header += output_columns(interface)
            else:
                header.append("prediction")
            if explained:  # the record's "explanation" follows its prediction
                header.append("explanation")
            if kind == "classes":
                header += [f"probability_{name}" for name in interface["class_names"]]
            self.csv = csv.writer(handle, lineterminator="\n")
            self.header = header  # written with the first rows: an error before them prints none

    def write(self, rows: list[dict]) -> None:
        if self.fmt == "csv" and self.header is not None:
            self.csv.writerow(self.header)
            self.header = None
        for row in rows:
            if self.fmt == "jsonl":
                self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            cells = [_cell(v) for k, v in row.items() if k not in ("probabilities", "embedding")]
            cells += [_cell(v) for v in row.get("embedding", [])]
            cells += [_cell(p) for p in row.get("probabilities", {}).values()]
            self.csv.writerow(cells)


def _cell(value) -> str:
    if isinstance(value, list):  # a multi-label prediction: the set's class names
        return LABEL_SEPARATOR.join(value)
    return f"{value:.9g}" if isinstance(value, float) else str(value)


class Predictor:
    """A model that takes raw records and returns records: `dlpipe predict`, `dlpipe serve`
    and `dlpipe.predict` all predict through it, so each gives the others' answers.

        predictor = Predictor.open("runs/my-run")
        inputs = predictor.inputs([{"mean radius": 17.99, ...}], lambda i: f"row {i}")
        predictor.records(predictor.run(inputs))   # [{"prediction": ..., "probabilities": {...}}]
    """

    def __init__(self, model: Model, allow_unsafe: bool = False):
        # TensorFlow's C++ start-up notices (CPU features, CUDA probing) are noise here.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.model = model
        self.interface = model.interface
        self.output = output_kind(model.interface, model.path)
        if self.output == "boxes":  # a detector: dlpipe/exporters/detection.py
            from dlpipe.exporters.detection import load_detector

            self.run = load_detector(model.kind, model.path, allow_unsafe)
        else:
            self.run = model.predictor(allow_unsafe)
        """inputs by input name → the model's output for them (an array; a detector: a dict)."""

    @classmethod
    def open(cls, path: str | Path, allow_unsafe: bool = False) -> "Predictor":
        """The model of a run directory, an export directory, a SavedModel, or a .keras, .onnx or
        .tflite file (locate_model)."""
        return cls(locate_model(path), allow_unsafe)

    @property
    def warning(self) -> str | None:
        return self.model.warning

    def columns(self, keys, where: str) -> dict[str, str]:
        """Which key of the records each input is read from (by column name or input name)."""
        return _check_columns(where, self.interface, keys)

    def inputs(self, rows: list[dict], where) -> dict[str, np.ndarray]:
        """Raw records → model inputs; `where(i)` names record i in a one-line DataError."""
        if not rows:
            return {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"{where(i)}: expected an object of inputs by name, got {type(row).__name__} "
                                f"{_shown(row)}")
        columns = self.columns(rows[0], where(0))
        return model_inputs(rows, self.interface, columns, where)

    def records(self, output, labels: list[str] | None = None, label_name: str = "file") -> list[dict]:
        """The model's output → one record per example (what `dlpipe predict` writes as JSONL)."""
        if self.output == "boxes":
            out = detection_records(self.interface, output)
            return out if labels is None else [{label_name: label, **record} for label, record in zip(labels, out)]
        return records(self.interface, output, labels, label_name)

    def predict(self, rows: list[dict], batch_size: int = 256, where=None) -> list[dict]:
        """Records for raw records, `batch_size` at a time."""
        where = where or (lambda i: f"rows[{i}]")
        out: list[dict] = []
        for start in range(0, len(rows), batch_size):
            part = rows[start:start + batch_size]
            inputs = self.inputs(part, lambda i, s=start: where(s + i))
            out += self.records(self.run(_as_float32(inputs) if self.output == "boxes" else inputs))
        return out

    def predict_file(self, path: str | Path, batch_size: int = 256) -> list[dict]:
        """Records for every example of a CSV, JSONL or image file, or a folder of images."""
        examples = read_examples(path, self.interface)
        out: list[dict] = []
        for start in range(0, examples.count, batch_size):
            stop = min(start + batch_size, examples.count)
            inputs = examples.batch(start, stop)
            labels = examples.labels[start:stop] if examples.labels is not None else None
            out += self.records(self.run(_as_float32(inputs) if self.output == "boxes" else inputs), labels,
                                examples.label_name)
        return out


def _shown(value, limit: int = 60) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_float32(inputs: dict[str, np.ndarray]):
    """A detector takes its one image input as a float32 array."""
    (images,) = inputs.values()
    return images.astype(np.float32)


def detection_records(interface: dict, output: dict) -> list[dict]:
    """A detector's outputs → one record per image: its kept detections (class >= 0)."""
    names = interface["class_names"]
    box = interface["outputs"]["boxes"]
    out = []
    for i in range(len(output["classes"])):
        kept = np.asarray(output["classes"][i]) >= 0
        out.append({"boxes": np.asarray(output["boxes"][i])[kept].tolist(),
                    "scores": np.asarray(output["scores"][i])[kept].tolist(),
                    "classes": [names[c] for c in np.asarray(output["classes"][i])[kept]],
                    "box_format": box["format"], "box_units": box["units"]})
    return out


def predict_file(model_path: str | Path, input_path: str | Path, out: str | Path | None = None,
                 batch_size: int = 256, log: TextIO | None = None, allow_unsafe: bool = False,
                 every_window: bool = False, explain: bool = False) -> int:
    """Predict every example of `input_path`; write CSV/JSONL to `out` (by its suffix) or
    CSV to stdout; progress and warnings go to `log` (stderr). Returns the number of examples.
    `every_window`: a forecaster forecasts from every window of the series (read_examples).
    `explain`: each record also names the features that moved it most (dlpipe/explain/top.py)."""
    log = log or sys.stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if out is not None and Path(out).suffix.lower() not in OUTPUT_SUFFIXES:
        raise DlpipeError(f"--out {out}: the suffix chooses the format; use .csv or .jsonl")
    if out is not None:
        _refuse_overwriting(Path(out), {"input": Path(input_path), "model": Path(model_path)})
    model = locate_model(model_path)
    examples = read_examples(input_path, model.interface, every_window)
    if model.warning:
        print(f"[dlpipe] warning: {model.warning}", file=log, flush=True)
    fmt = "csv" if out is None or Path(out).suffix.lower() == ".csv" else "jsonl"
    predictor = Predictor(model, allow_unsafe)
    if predictor.output == "boxes":  # per image: dlpipe/exporters/detection.py
        from dlpipe.exporters.detection import write_detections

        into = lambda handle: write_detections(handle, fmt, model.interface, examples, predictor.run,  # noqa: E731
                                               batch_size, log)
    else:
        explainer = _explainer(model, predictor, allow_unsafe) if explain else None
        into = lambda handle: _predict_into(handle, fmt, predictor, examples, batch_size, log, explainer)  # noqa: E731
    if out is None:
        into(sys.stdout)
    else:
        with atomic_path(Path(out)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            into(handle)
    return examples.count


def _refuse_overwriting(out: Path, inputs: dict[str, Path]) -> None:
    """Never write predictions over what they are made from: `--out` naming the input file
    (by any path: a link, `./`, a hard link) is refused before anything is read."""
    for what, path in inputs.items():
        try:
            same = out.exists() and path.exists() and os.path.samefile(out, path)
        except OSError:
            same = False
        if same:
            raise DlpipeError(f"--out {out}: is the {what} {path}; predictions never overwrite their input, "
                              "choose another file")


def _explainer(model: Model, predictor: Predictor, allow_unsafe: bool):
    from dlpipe.explain.top import TopFeatures, keras_file
    from dlpipe.modelfile import load_keras_model

    if predictor.output == "outputs":
        raise DlpipeError("--explain explains one class or value per example; this model gives several outputs")
    if predictor.output in ("classes", "values") and (multi_label(predictor.interface)
                                                      or forecast_steps(predictor.interface)):
        what = "a set of classes" if multi_label(predictor.interface) else "a forecast"
        raise DlpipeError(f"--explain explains one class or value per example; this model gives {what}")
    return TopFeatures(load_keras_model(keras_file(model.path, model.kind), allow_unsafe=allow_unsafe),
                       predictor.interface, predictor.output)


def _predict_into(handle, fmt, predictor: Predictor, examples, batch_size, log, explainer=None) -> None:
    writer = Writer(handle, fmt, predictor.interface, examples.labels is not None, examples.label_name,
                    explained=explainer is not None)
    batches = range(0, examples.count, batch_size)
    every = max(1, len(batches) // 20)  # at most ~20 progress lines
    for number, start in enumerate(batches, start=1):
        stop = min(start + batch_size, examples.count)
        inputs = examples.batch(start, stop)
        output = predictor.run(inputs)
        labels = examples.labels[start:stop] if examples.labels is not None else None
        rows = predictor.records(output, labels, examples.label_name)
        if explainer is not None:
            from dlpipe.explain.top import describe

            for row, found in zip(rows, explainer(inputs, output)):
                row["explanation"] = found if fmt == "jsonl" else describe(found)
        writer.write(rows)
        if len(batches) > 1 and (number % every == 0 or stop == examples.count):
            print(f"[dlpipe] predict: {stop}/{examples.count} examples", file=log, flush=True)
