"""Read a spec's `data.source` into a Table: one loader per source type, registered in
registry.py (`source` table) as `load_<type>(source, base_dir) -> Table`.

Every loader reports the files it reads (`readlog.opened` before reading one,
`readlog.walk` / `readlog.glob` to list them): the data stage's read log, which a rerun
hashes again to tell whether the data changed (dlpipe/readlog.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from dlpipe import progress, readlog, registry
from dlpipe.data.table import Table
from dlpipe.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def resolve_path(path: str, base_dir: Path) -> Path:
    """A spec-relative path, made absolute (messages show absolute paths)."""
    candidate = Path(path).expanduser()
    return (candidate if candidate.is_absolute() else base_dir / candidate).resolve()


def load_source(source, base_dir: Path) -> Table:
    if source.type not in registry.names("source"):  # e.g. detection's shapes/coco: their pipeline reads them
        raise DataError(f"data.source type {source.type!r} is read by the {source.type} pipeline's own data "
                        "stage, not as a table")
    for text in _named_paths(source):
        readlog.named(text, base_dir)
    return registry.load("source", source.type)(source, base_dir)


def _named_paths(source) -> list[str]:
    """The paths a source names (a pattern is the loader's to expand and record)."""
    named = [getattr(source, "path", None), *(getattr(source, "columns", None) or {}).values()]
    return [text for text in named if isinstance(text, str) and not any(c in text for c in "*?[")]


def _existing_file(path: Path, what: str = "file") -> Path:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a {what}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def _existing_folder(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataError(f"{path}: is a file; this source reads a folder with one subfolder per class")
    return path


# Builtin -------------------------------------------------------------------------------

def load_builtin(source, base_dir: Path) -> Table:
    return registry.load("dataset", source.name)()


# CSV -----------------------------------------------------------------------------------

def load_csv(source, base_dir: Path) -> Table:
    return read_csv(resolve_path(source.path, base_dir), source.delimiter)


def read_csv(path: Path, delimiter: str = ",", *, nrows: int | None = None, skiprows: int = 0) -> Table:
    import pandas as pd

    _existing_file(path, "CSV file")
    readlog.opened(path)
    check_header(path, delimiter)
    with _reading(path) as (handle, step):
        try:
            frame = pd.read_csv(handle, sep=delimiter)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: cannot parse as CSV: {str(err).strip().splitlines()[0]}") from None
        step.finish(f"{len(frame):,} rows, {_megabytes(path)}")
    if frame.empty:
        raise DataError(f"{path}: no data rows below the header")
    return frame_table(frame, str(path), row_offset=2)


class _CountedFile(io.FileIO):
    """A file opened for reading that tells a progress step how far its reader got."""

    def __init__(self, path: Path, step):
        super().__init__(path, "rb")
        self._step = step

    def readinto(self, buffer) -> int | None:
        count = super().readinto(buffer)
        self._step.update(self.tell())
        return count

    def readall(self) -> bytes:
        data = super().readall()
        self._step.update(self.tell())
        return data


@contextlib.contextmanager
def _reading(path: Path, text: bool = False):
    """(handle, progress step) for reading `path` as open(path, "rb") or as UTF-8 text would;
    long reads show how many bytes are read (dlpipe/progress.py)."""
    with progress.task(f"reading {path.name}", total=path.stat().st_size, unit="bytes") as step:
        with io.BufferedReader(_CountedFile(path, step)) as binary:
            if not text:
                yield binary, step
                return
            with io.TextIOWrapper(binary, encoding="utf-8") as handle:
                yield handle, step


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:,.1f} MB"


def check_header(path: Path, delimiter: str) -> None:
    """Refuse a CSV header that names a column twice: pandas would rename the second `x.1`,
    and a spec naming `x` would silently read the first."""
    import csv

    if len(delimiter) != 1:
        return
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
    except (UnicodeDecodeError, csv.Error):
        return  # pandas reports the file as it reads it
    first: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in first:
            raise DataError(f"{path}: column {name!r} appears twice in the header (columns {first[name]} and "
                            f"{number}); give each column its own name")
        first[name] = number


FLOAT32_MAX = float(np.finfo(np.float32).max)


def float32(values: np.ndarray, origin: str, name: str, row_of) -> np.ndarray:
    """Numbers as float32, refusing a finite value beyond float32's range (1e308 is a number
    the file holds, not an infinity; the model computes in float32). `row_of(i)` says where
    row i came from."""
    with np.errstate(invalid="ignore"):
        beyond = np.flatnonzero((np.abs(np.nan_to_num(values.astype(np.float64), posinf=0, neginf=0))
                                 > FLOAT32_MAX).reshape(len(values), -1).any(axis=1))
    if len(beyond):
        row = int(beyond[0])
        value = values.reshape(len(values), -1)[row]
        value = value[np.abs(np.nan_to_num(value.astype(np.float64), posinf=0, neginf=0)) > FLOAT32_MAX][0]
        raise DataError(f"{row_of(row)}, column {name!r}: {float(value)!r} lies beyond the range of 32-bit floats "
                        f"(±3.4e38) that the model computes in; {len(beyond)} row(s) in all")
    return values.astype(np.float32)


def frame_table(frame, origin: str, row_offset: int) -> Table:
    """A pandas DataFrame → a Table (numbers as float32/int64, true/false as 1/0 noted in
    `booleans`, anything else as objects)."""
    columns, booleans = {}, set()
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "f":
            values = float32(values, origin, str(name), lambda row: f"{origin}: row {row + row_offset}")
        elif values.dtype.kind in "iu":
            values = values.astype(np.int64)
        elif values.dtype.kind == "b":
            values = values.astype(np.int64)
            booleans.add(str(name))
        else:
            values = values.astype(object)
        columns[str(name)] = values
    return Table(columns, origin=origin, row_offset=row_offset, booleans=booleans)


# NumPy ---------------------------------------------------------------------------------

def load_npz(source, base_dir: Path) -> Table:
    """Each array of the archive is a column; arrays keep their shape (sequences, images)."""
    import zipfile

    path = _existing_file(resolve_path(source.path, base_dir), ".npz file")
    readlog.opened(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            columns = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read as .npz: {str(err).strip().splitlines()[0]}") from None
    if not columns:
        raise DataError(f"{path}: the archive holds no arrays")
    _same_lengths(str(path), {name: values for name, values in columns.items()}, "array")
    return Table(columns, origin=str(path), row_offset=0)


def load_npy(source, base_dir: Path) -> Table:
    """One `.npy` file per column."""
    columns, paths = {}, {}
    for name, relative in source.columns.items():
        path = paths[name] = _existing_file(resolve_path(relative, base_dir), ".npy file")
        readlog.opened(path)
        try:
            columns[name] = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: cannot read as .npy: {str(err).strip().splitlines()[0]}") from None
        if columns[name].ndim == 0:
            raise DataError(f"{path}: holds a single number; a column needs one value per example")
    lengths = {name: len(values) for name, values in columns.items()}
    first = next(iter(lengths))
    for name, length in lengths.items():
        if length != lengths[first]:
            raise DataError(f"{paths[name]}: {length} rows, but {paths[first]} has {lengths[first]}; "
                            "every file is a column and needs one row per example")
    origin = str(paths[first]) if len(paths) == 1 else str(paths[first].parent)
    return Table(columns, origin=origin, row_offset=0)


def _same_lengths(origin: str, columns: dict[str, np.ndarray], what: str) -> None:
    lengths = {name: (len(values) if values.ndim else 0) for name, values in columns.items()}
    first = next(iter(lengths))
    for name, length in lengths.items():
        if length != lengths[first]:
            raise DataError(f"{origin}: {what} {name!r} has {length} rows, {first!r} has {lengths[first]}; "
                            f"every {what} is a column and needs one row per example")


# JSON lines ----------------------------------------------------------------------------

def load_jsonl(source, base_dir: Path) -> Table:
    path = _existing_file(resolve_path(source.path, base_dir), "JSON-lines file")
    records = list(read_jsonl_records(path, shown=True))
    if not records:
        raise DataError(f"{path}: the file holds no records")
    return records_table([r for _, r in records], [line for line, _ in records], str(path))


def read_jsonl_records(path: Path, start_line: int = 1, shown: bool = False):
    """(line number, object) for each non-blank line. `shown`: a long read shows its
    progress (the whole file is read at once; not for a reader that streams batches)."""
    readlog.opened(path)
    try:
        with (_reading(path, text=True) if shown else contextlib.nullcontext((open(path, encoding="utf-8"), None))
              ) as (handle, step), handle:
            number = 0
            for number, line in enumerate(handle, 1):
                if number < start_line or not line.strip():
                    continue
                try:
                    record = json.loads(line, object_pairs_hook=_unique_keys)
                except _DuplicateKey as err:
                    raise DataError(f"{path}: row {number}: key {err.key!r} appears twice in the object; "
                                    "JSON would keep only the last") from None
                except ValueError as err:
                    raise DataError(f"{path}: row {number}, column {err.colno}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}: row {number}: expected a JSON object, got {type(record).__name__}")
                yield number, record
            if step is not None:
                step.finish(f"{number:,} lines, {_megabytes(path)}")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def records_table(records: list[dict], lines: list[int], origin: str) -> Table:
    """Objects with the same keys → columns. Row numbers in messages are line numbers."""
    keys = list(records[0])
    for record, line in zip(records, lines):
        if list(record) != keys and set(record) != set(keys):
            missing = [k for k in keys if k not in record]
            extra = [k for k in record if k not in keys]
            what = f"no key {missing[0]!r}" if missing else f"an unexpected key {extra[0]!r}"
            raise DataError(f"{origin}: row {line}: {what}; every line needs the keys of line {lines[0]}: "
                            f"{', '.join(keys)}")
    columns = {key: _json_column([r[key] for r in records], origin, key, lines) for key in keys}
    booleans = {key for key in keys if any(isinstance(r[key], bool) for r in records)
                and all(isinstance(r[key], bool) or r[key] is None for r in records)}
    table = Table(columns, origin=origin, row_offset=1, booleans=booleans)
    if lines != list(range(lines[0], lines[0] + len(lines))):
        table.row_numbers = np.asarray(lines)
    else:
        table.row_offset = lines[0]
    return table


def _json_column(values: list, origin: str, key: str, lines: list[int]) -> np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        floats = any(isinstance(v, float) for v in present) or len(present) < len(values)
        try:
            column = np.array([np.nan if v is None else v for v in values], dtype=np.float64 if floats else np.int64)
        except OverflowError:  # an integer beyond 64 bits
            column = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            floats = True
        if not floats:
            return column
        return float32(column, origin, key, lambda row: f"{origin}: row {lines[row] if lines else row + 1}")
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=np.int64)
    if present and all(isinstance(v, list) for v in present):
        if len(present) == len(values) and _numeric_nested(present[0]):
            try:
                return np.array(values, dtype=np.float32)
            except ValueError:
                pass  # ragged or mixed: keep the lists (a multi-label target of names, say)
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column
    return np.array(values, dtype=object)


def _numeric_nested(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Parquet -------------------------------------------------------------------------------

def import_pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading parquet needs pyarrow: pip install 'dlpipe[parquet]'") from None
    return pq


def load_parquet(source, base_dir: Path) -> Table:
    pq = import_pyarrow()
    path = _existing_file(resolve_path(source.path, base_dir), "parquet file")
    readlog.opened(path)
    try:
        arrow = pq.read_table(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
        raise DataError(f"{path}: cannot read as parquet: {str(err).strip().splitlines()[0]}") from None
    if arrow.num_rows == 0:
        raise DataError(f"{path}: the file holds no rows")
    return arrow_table(arrow, str(path), row_offset=1)


def arrow_table(arrow, origin: str, row_offset: int) -> Table:
    import pyarrow as pa

    columns, booleans = {}, set()
    for name in arrow.column_names:
        column = arrow.column(name)
        kind = column.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            columns[name] = _json_column(column.to_pylist(), origin, name, [])
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            values = column.to_numpy(zero_copy_only=False)
            if pa.types.is_boolean(kind):
                booleans.add(name)
            if values.dtype.kind == "f" or column.null_count:
                values = float32(values, origin, name, lambda row: f"{origin}: row {row + row_offset}")
            else:
                values = values.astype(np.int64)
            columns[name] = values
        else:
            columns[name] = np.array(column.to_pylist(), dtype=object)
    return Table(columns, origin=origin, row_offset=row_offset, booleans=booleans)


# Images --------------------------------------------------------------------------------

def read_image(path: Path, color_mode: str, where: str | None = None) -> np.ndarray:
    """Pixels (height, width, channels) as uint8; `where` names the referring row."""
    from PIL import UnidentifiedImageError

    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise DataError(f"{prefix}{path}: no such image file")
    readlog.opened(path)
    try:
        with open_image(path, prefix) as image:
            pixels = eight_bit(image, "L" if color_mode == "grayscale" else "RGB", f"{prefix}{path}")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else f"cannot read the image ({err})"
        raise DataError(f"{prefix}{path}: {reason}") from None
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def open_image(path: Path, prefix: str = ""):
    """PIL's image of `path`, its header read and its size checked, nothing decoded yet: an
    image of more than IMAGE_MAX_PIXELS (a "decompression bomb": a few kilobytes of PNG can
    claim 30000 × 30000 pixels) is a DataError naming the file."""
    import re
    import warnings

    from PIL import Image

    from dlpipe.limits import IMAGE_MAX_PIXELS

    side = int(IMAGE_MAX_PIXELS ** 0.5)
    limit = f"dlpipe reads images of at most {IMAGE_MAX_PIXELS:,} pixels ({side} × {side})"
    try:
        with warnings.catch_warnings():  # PIL warns above 89 million pixels: refused below, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:  # PIL's own, higher bound
        count = re.search(r"\((\d+) pixels\)", str(err))
        shown = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
        raise DataError(f"{prefix}{path}: {shown}; {limit}") from None
    width, height = image.size
    if width * height > IMAGE_MAX_PIXELS:
        image.close()
        raise DataError(f"{prefix}{path}: {width} × {height} pixels; {limit}")
    return image


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def eight_bit(image, mode: str, name: str) -> np.ndarray:
    """The pixels of a PIL image in `mode` (L or RGB) as uint8. A 16-bit grayscale image is
    scaled (65535 → 255); PIL's own conversion would clip it, turning it all but white."""
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"{name}: {image.mode} pixels beyond 16 bits (0–65535); dlpipe reads 8- and 16-bit images")
        pixels = np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)
        return np.repeat(pixels[..., np.newaxis], 3, axis=-1) if mode == "RGB" else pixels
    if image.mode == "F":
        raise DataError(f"{name}: floating-point pixels (mode F) have no fixed range; dlpipe reads 8- and "
                        "16-bit images")
    return np.asarray(image.convert(mode))


def _stack_images(images: list[np.ndarray], names: list[str], origin: str) -> np.ndarray:
    shape = images[0].shape
    for image, name in zip(images, names):
        if image.shape != shape:
            raise DataError(f"{name}: image of {image.shape[1]}×{image.shape[0]} pixels, but {names[0]} has "
                            f"{shape[1]}×{shape[0]}; the images of {origin} need one size")
    return np.stack(images)


def _class_folders(root: Path, suffixes: tuple[str, ...], what: str) -> list[tuple[str, list[Path]]]:
    """(class, its files) per subfolder. Links are followed, to folders too (a class folder
    may be a link to where its images are), except back to a folder above (a loop)."""
    by_class: dict[str, list[Path]] = {}
    for path in readlog.walk(_existing_folder(root)):
        parts = path.relative_to(root).parts
        if len(parts) > 1 and not parts[0].startswith(".") and path.suffix.lower() in suffixes:
            by_class.setdefault(parts[0], []).append(path)
    classes = sorted(by_class.items())
    if not classes:
        raise DataError(f"{root}: no {what} found in subfolders (one subfolder per class, "
                        f"files ending in {', '.join(suffixes)})")
    _refuse_empty_classes(root, by_class, suffixes, what)
    return classes


def _refuse_empty_classes(root: Path, by_class: dict, suffixes: tuple[str, ...], what: str) -> None:
    """A class folder without a single file of its kind would silently leave the model's
    head a class short: refused, naming it (folders whose name starts with a dot are not classes)."""
    import os

    with os.scandir(root) as entries:
        empty = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(".") and e.name not in by_class)
    if empty:
        raise DataError(f"{root / empty[0]}: a class folder with no {what} (files ending in {', '.join(suffixes)}); "
                        f"add some or remove the folder" + (f" ({len(empty)} such folders)" if len(empty) > 1 else ""))


def load_image_folder(source, base_dir: Path) -> Table:
    root = resolve_path(source.path, base_dir)
    files, labels = [], []
    for name, paths in _class_folders(root, IMAGE_SUFFIXES, "images"):
        files += paths
        labels += [name] * len(paths)
    images = []
    with progress.task(f"reading {root.name}/", total=len(files), unit="images") as step:
        for path in files:
            images.append(read_image(path, source.color_mode))
            step.advance()
    table = Table({"image": _stack_images(images, [str(p) for p in files], str(root)),
                   "label": np.array(labels, dtype=object)}, origin=str(root), row_offset=1)
    table.row_files = [str(p) for p in files]
    return table


def load_image_csv(source, base_dir: Path) -> Table:
    path = resolve_path(source.path, base_dir)
    table = read_csv(path, source.delimiter)
    column = source.image_column
    if column not in table.columns:
        from dlpipe.errors import did_you_mean

        hint = did_you_mean(column, table.columns) or f"; columns are: {', '.join(table.columns)}"
        raise DataError(f"{path}: no image column {column!r}{hint} (set data.source.image_column)")
    images = []
    values = table.columns[column]
    with progress.task(f"reading the images of {path.name}", total=len(values), unit="images") as step:
        for row, value in enumerate(values):
            where = f"{path}: row {row + table.row_offset}, column {column!r}"
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: expected an image path, got {value!r}")
            readlog.named(value, path.parent)  # as written (read_image records it resolved)
            images.append(read_image(resolve_path(value, path.parent), source.color_mode, where))
            step.advance()
    table.columns[column] = _stack_images(images, [str(resolve_path(v, path.parent)) for v in table.columns[column]],
                                          str(path))
    return table


# Text ----------------------------------------------------------------------------------

def load_text_folder(source, base_dir: Path) -> Table:
    root = resolve_path(source.path, base_dir)
    texts, labels, files = [], [], []
    for name, paths in _class_folders(root, (".txt",), ".txt files"):
        for path in paths:
            readlog.opened(path)
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as err:
                raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
            labels.append(name)
            files.append(str(path))
    table = Table({"text": np.array(texts, dtype=object), "label": np.array(labels, dtype=object)},
                  origin=str(root), row_offset=1)
    table.row_files = files
    return table


# TFRecord ------------------------------------------------------------------------------

def load_tfrecord(source, base_dir: Path) -> Table:
    """tf.train.Example records; TensorFlow is imported here, in the data stage only."""
    pattern = str(resolve_path(source.path, base_dir))
    files = readlog.glob(pattern) if any(c in source.path for c in "*?[") else [pattern]
    if not files:
        raise DataError(f"{pattern}: no file matches")
    for file in files:
        _existing_file(Path(file), "TFRecord file")
        readlog.opened(file)
    from dlpipe.backend_import import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    kinds = {"float": tf.float32, "int": tf.int64, "string": tf.string}
    spec = {name: tf.io.FixedLenFeature(feature.shape, kinds[feature.dtype])
            for name, feature in source.features.items()}
    compression = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[source.compression]
    columns: dict[str, list] = {name: [] for name in spec}
    for file in files:
        records = tf.data.TFRecordDataset(file, compression_type=compression)
        number = 0
        try:
            for number, record in enumerate(records, 1):
                try:
                    parsed = tf.io.parse_single_example(record, spec)
                except (tf.errors.InvalidArgumentError, ValueError) as err:
                    raise DataError(f"{file}: record {number}: {_tf_reason(err, source.features)}") from None
                for name, value in parsed.items():
                    columns[name].append(value.numpy())
        except tf.errors.DataLossError:
            raise DataError(f"{file}: record {number + 1}: not a TFRecord file (corrupted record)") from None
    if not columns[next(iter(columns))]:
        raise DataError(f"{pattern}: no records")
    out = {}
    for name, values in columns.items():
        if source.features[name].dtype == "string":
            out[name] = np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], dtype=object)
        else:
            array = np.stack(values)
            out[name] = array.astype(np.float32 if array.dtype.kind == "f" else np.int64)
    return Table(out, origin=files[0] if len(files) == 1 else pattern, row_offset=1)


def _tf_reason(err, features) -> str:
    text = str(getattr(err, "message", err))
    for name in features:
        if f"'{name}'" in text or f"Feature: {name}" in text or f"key: {name}" in text or f"Key: {name}." in text:
            if "is required but could not be found" in text:
                return f"no feature {name!r}"
            return f"feature {name!r} does not match its declared dtype and shape"
    return text.strip().splitlines()[0]
