"""What plain `dlpipe validate` checks of the data without reading it: that the files and
folders a spec names exist (and are files or folders as the key expects), and that the
column names the spec uses are in the source's header.

Only what is cheap to look at is looked at: a file's type, size and time; a CSV's or a
JSON-lines file's first line; a Parquet file's metadata block (read here, without pyarrow);
an .npz archive's member list; a folder's entries where a did-you-mean needs them. Every
look goes through `Observations` (dlpipe/validation_cache.py), which keeps what it saw, so
a remembered result is replayed only while the files still look the same. Rows are never
read: values, labels and shapes are `validate --deep`'s and the data stage's.

Only a spec that is otherwise valid is checked here (a spec path that names nothing
useful, a misspelled key, would make the answers noise). Messages match the data stage's,
located at the spec key that names the file or the column.

The standard library only: `dlpipe validate` imports no pandas, pyarrow or TensorFlow.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from dlpipe import kerashub, tasks
from dlpipe.errors import did_you_mean
from dlpipe.spec.checks import FEATURE_TYPES, IMPUTED_TYPES, known_classes
from dlpipe.spec.paths import absolute, path_values
from dlpipe.validation_cache import Observations

Found = Iterator[tuple[tuple, str]]

_GLOB = "*?["


def check_data(spec, base_dir: Path, seen: Observations) -> list[tuple[tuple, str]]:
    """(spec path, message) of every data problem plain validation can see cheaply."""
    missing: set[tuple] = set()
    found = list(_check_paths(spec, base_dir, seen, missing))
    found += list(_check_columns(spec, base_dir, seen, missing))
    found += list(_check_teacher(spec, base_dir, seen, missing))
    found += list(_check_preset(spec, base_dir, seen))
    return found


def _check_paths(spec, base_dir: Path, seen: Observations, missing: set) -> Found:
    for where, value, kind in path_values(spec):
        path = absolute(value, base_dir)
        if kind == "pattern" and any(c in value for c in _GLOB):
            if not seen.glob(path):
                missing.add(where)
                yield where, f"no file matches {path}"
            continue
        if kind == "preset":  # _check_preset: KerasHub must be installed first
            continue
        if kind == "run":
            problem = _run_problem(path, seen)
            if problem:
                missing.add(where)
                yield where, problem
            continue
        state = seen.stat(path)
        wanted = {"file": ("file",), "pattern": ("file",), "folder": ("folder",), "any": ("file", "folder")}[kind]
        if state is None:
            missing.add(where)
            what = {"file": "file", "pattern": "file", "folder": "folder", "any": "file or folder"}[kind]
            yield where, f"no such {what}: {path}{_similar(path, seen)}"
        elif state[0] not in wanted:
            missing.add(where)
            yield where, f"{path} is a {state[0]}, not a {' or '.join(wanted)}"


RUN_FILES = ("run.json", "model.keras")
"""What a folder must hold to be a finished run another spec can start from (`from_run`)."""


def _run_problem(path: str, seen: Observations) -> str | None:
    """Why `path` is no finished dlpipe run (None when it is one)."""
    state = seen.stat(path)
    if state is None:
        return f"no such run folder: {path}{_similar(path, seen)}"
    if state[0] != "folder":
        return f"{path} is a {state[0]}, not a run folder"
    absent = [name for name in RUN_FILES if (seen.stat(str(Path(path) / name)) or ("",))[0] != "file"]
    if absent:
        return (f"{path} holds no dlpipe run (no {' or '.join(absent)}); name the --out folder of a "
                "finished `dlpipe run`")
    return None


def _check_preset(spec, base_dir: Path, seen: Observations) -> Found:
    """A backbone's KerasHub preset: the package installed, a name among those KerasHub lists
    for its image classifiers, a folder that holds an image classifier's backbone preset."""
    preset = getattr(spec.model, "preset", None)
    if spec.model.type != "backbone" or preset is None:
        return
    where = ("model", "preset")
    if not seen.module(kerashub.PACKAGE):
        yield where, (f"KerasHub presets need the keras-hub package, which is not installed "
                      f"({kerashub.INSTALL})")
    elif kerashub.is_folder(preset):
        path = absolute(preset, base_dir)
        problem = kerashub.folder_problem(path, seen)
        if problem is not None and seen.stat(path) is None:
            problem += _similar(path, seen)
        if problem is not None:
            yield where, problem
    elif not kerashub.is_handle(preset):
        names = seen.hub_presets()
        if names and preset not in names:
            hint = did_you_mean(preset, names) or "; see keras_hub.models.ImageClassifier.presets"
            yield where, (f"unknown KerasHub image preset {preset!r}{hint} (a local preset folder is written as "
                          "a path: ./NAME)")


def _similar(path: str, seen: Observations) -> str:
    """A did-you-mean among the names in the file's folder (when the folder exists)."""
    folder, name = Path(path).parent, Path(path).name
    names = seen.listing(str(folder))
    return did_you_mean(name, names) if names else ""


def source_columns(source, base_dir: Path, seen: Observations, path: str | None = None) -> list[str] | None:
    """The column names a source will hold, as its loader names them (dlpipe/data/sources.py),
    or None where that is not known without reading the data."""
    kind = source.type
    if kind in ("image_folder", "text_folder"):
        return ["image", "label"] if kind == "image_folder" else ["text", "label"]
    if kind == "npy":
        return list(source.columns)
    if kind == "tfrecord":
        return list(source.features)
    if kind not in ("csv", "image_csv", "jsonl", "parquet", "npz"):
        return None  # builtin datasets and detection sources: known once loaded
    file = absolute(path or source.path, base_dir)
    if kind in ("csv", "image_csv"):
        return _csv_header(seen.first_line(file), source.delimiter)
    if kind == "jsonl":
        return _jsonl_keys(seen.first_line(file))
    if kind == "parquet":
        footer = seen.parquet_footer(file)
        return None if footer is None else parquet_columns(footer)
    names = seen.zip_names(file)
    return None if names is None else [n[:-4] for n in names if n.endswith(".npy")]


def _csv_header(line: bytes | None, delimiter: str) -> list[str] | None:
    """The header as pandas names its columns (an empty name is `Unnamed: i`, a repeated one
    `name.1`, ...)."""
    if not line or len(delimiter) != 1:
        return None
    try:
        text = line.decode("utf-8-sig")
        names = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    out: list[str] = []
    for i, name in enumerate(names):
        name = name if name != "" else f"Unnamed: {i}"
        candidate, n = name, 1
        while candidate in out:
            candidate, n = f"{name}.{n}", n + 1
        out.append(candidate)
    return out


def _jsonl_keys(line: bytes | None) -> list[str] | None:
    if not line:
        return None
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return [str(key) for key in record] if isinstance(record, dict) else None


def _check_columns(spec, base_dir: Path, seen: Observations, missing: set) -> Found:
    data = spec.data
    source = data.source
    if ("data", "source", "path") in missing or any(p[:3] == ("data", "source", "columns") for p in missing):
        return
    columns = source_columns(source, base_dir, seen)
    if columns is None:
        return
    origin = absolute(source.path, base_dir) if hasattr(source, "path") else "the source"
    needed = _named_columns(spec)
    yield from _absent(needed, columns, origin)
    files = data.split.files
    for name in ("validation", "test"):
        path = getattr(files, name, None) if files is not None else None
        if path is None or ("data", "split", "files", name) in missing:
            continue
        other = source_columns(source, base_dir, seen, path)
        if other is not None:
            for key, message in _absent(needed, other, absolute(path, base_dir)):
                yield ("data", "split", "files", name), message
    if not data.features and data.windows is None:
        yield from _section_keys(spec, columns, origin)


def _named_columns(spec) -> list[tuple[tuple, str]]:
    """(spec path, column name) of every column the spec names."""
    data = spec.data
    named = []
    if data.target is not None:
        named.append((("data", "target", "name"), data.target.name))
    named += [(("data", "features", i, "name"), f.name) for i, f in enumerate(data.features)]
    for where, value in ((("training", "sample_weight"), spec.training.sample_weight),
                         (("data", "split", "time_column"), data.split.time_column),
                         (("data", "windows", "order_by"), data.windows.order_by if data.windows else None),
                         (("data", "source", "image_column"), getattr(data.source, "image_column", None))):
        if value is not None:
            named.append((where, value))
    generation = getattr(spec.evaluation, "generation", None)
    extractor = generation.feature_extractor if generation is not None else None
    if extractor is not None and extractor.type == "classifier":
        named.append((("evaluation", "generation", "feature_extractor", "labels"), extractor.labels))
    return named


def _absent(named, columns: list[str], origin: str) -> Found:
    for where, name in named:
        if name in columns:
            continue
        hint = did_you_mean(name, columns) or f"; columns are: {_list(columns)}"
        if len(columns) == 1:
            seen = [d for d in (";", "\t", "|", ",") if d in columns[0]]
            if seen:
                hint = f"; the header {columns[0]!r} looks delimited by {seen[0]!r}: set data.source.delimiter"
        yield where, f"no column {name!r} in {origin}{hint}"


def _section_keys(spec, columns: list[str], origin: str) -> Found:
    """Features inferred from the data: each key of a per-feature section names one of its
    columns or a feature type."""
    target = spec.data.target.name if spec.data.target is not None else None
    names = [c for c in columns if c != target]
    for section, kinds in (("normalization", FEATURE_TYPES), ("imputation", IMPUTED_TYPES)):
        for key in getattr(spec.prepare, section):
            if key in names or key in kinds:
                continue
            hint = did_you_mean(key, [*names, *kinds])
            yield (("prepare", section, key),
                   f"{key!r} is neither a column of {origin} nor a feature type ({', '.join(kinds)}){hint}")


def _list(names, limit: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# Parquet metadata ------------------------------------------------------------------------
# A Parquet file ends with its metadata (a Thrift FileMetaData in the compact protocol),
# whose field 2 lists the schema elements depth first: the root, then each column with the
# number of children it has. The top-level columns are the root's children. Reading them
# here costs microseconds; importing pyarrow costs about 0.4 s.


def parquet_columns(footer: bytes) -> list[str] | None:
    try:
        elements = _ThriftReader(footer).schema()
    except (IndexError, ValueError):
        return None
    if not elements:
        return None
    names, position = [], 1
    for _ in range(elements[0][1]):
        if position >= len(elements):
            return None
        names.append(elements[position][0])
        position = _skip_element(elements, position)
    return names


def _skip_element(elements, position: int) -> int:
    """The position after the element at `position` and all its descendants."""
    children = elements[position][1]
    position += 1
    for _ in range(children):
        position = _skip_element(elements, position)
    return position


class _ThriftReader:
    """Just enough of Thrift's compact protocol to read FileMetaData.schema's names and
    child counts."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def field(self, last: int) -> tuple[int, int]:
        header = self.byte()
        kind = header & 0x0F
        if kind == 0:
            return 0, 0
        delta = header >> 4
        return (last + delta if delta else self.zigzag()), kind

    def skip(self, kind: int) -> None:
        if kind in (1, 2):  # booleans live in the field header
            return
        if kind == 3:
            self.at += 1
        elif kind in (4, 5, 6):
            self.varint()
        elif kind == 7:
            self.at += 8
        elif kind == 8:
            self.at += self.varint()
        elif kind in (9, 10):
            size, element = self.list_header()
            for _ in range(size):
                self.skip_element(element)
        elif kind == 11:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip_element(types >> 4)
                    self.skip_element(types & 0x0F)
        elif kind == 12:
            last = 0
            while True:
                last, inner = self.field(last)
                if inner == 0:
                    return
                self.skip(inner)
        else:
            raise ValueError(f"unknown Thrift type {kind}")
        if self.at > len(self.data):
            raise ValueError("truncated")

    def skip_element(self, kind: int) -> None:
        if kind in (1, 2):  # a boolean inside a list is one byte
            self.at += 1
        else:
            self.skip(kind)

    def list_header(self) -> tuple[int, int]:
        header = self.byte()
        size = header >> 4
        return (self.varint() if size == 15 else size), header & 0x0F

    def schema(self) -> list[tuple[str, int]]:
        last = 0
        while True:
            last, kind = self.field(last)
            if kind == 0:
                return []
            if last == 2 and kind == 9:
                size, element = self.list_header()
                if element != 12:
                    raise ValueError("schema is not a list of structs")
                return [self.schema_element() for _ in range(size)]
            self.skip(kind)

    def schema_element(self) -> tuple[str, int]:
        name, children, last = "", 0, 0
        while True:
            last, kind = self.field(last)
            if kind == 0:
                return name, children
            if last == 4 and kind == 8:
                length = self.varint()
                name = self.data[self.at:self.at + length].decode("utf-8")
                self.at += length
            elif last == 5 and kind == 5:
                children = self.zigzag()
            else:
                self.skip(kind)


_TEACHER = ("distillation", "teacher")


def _check_teacher(spec, base_dir: Path, seen: Observations, missing: set) -> Found:
    """A distillation teacher's model file, from its configuration alone (no TensorFlow): it
    exists, gives one output, of the kind the task needs (class probabilities for a
    classifier, values for regression) and, where the spec tells the classes, as many as it
    names (and the same names, for a run directory's labels.json). The teacher stage checks
    the rest against the data (inputs, classes found in the data)."""
    if spec.distillation is None or _TEACHER in missing:
        return
    path = Path(absolute(spec.distillation.teacher, base_dir))
    state = seen.stat(str(path))
    model_file, labels_file = (path / "model.keras", path / "labels.json") if state and state[0] == "folder" \
        else (path, None)
    if labels_file is not None and (seen.stat(str(model_file)) or ["none"])[0] != "file":
        yield _TEACHER, f"{path} holds no model.keras: name an earlier run directory or a .keras file"
        return
    head = seen.keras_head(str(model_file))
    if head is None:
        yield _TEACHER, f"{model_file}: not a Keras model file (a .keras archive with config.json)"
        return
    if len(head["outputs"]) != 1:
        yield _TEACHER, f"{model_file} gives {len(head['outputs'])} outputs; a teacher gives one, as the student does"
        return
    output = head["outputs"][0]
    kind = output["activation"] if output["activation"] in ("softmax", "sigmoid") else "values"
    units = output["units"] if isinstance(output["units"], int) else None
    classifier = tasks.get(spec.task).output == "classes"
    gives = ("class probabilities (a " + kind + (f" over {units} units" if units else "") + ")" if kind != "values"
             else "values (no softmax or sigmoid)")
    if classifier and kind == "values":
        yield _TEACHER, f"{model_file} gives {gives}; task {spec.task} needs a teacher that gives class probabilities"
        return
    if not classifier and kind != "values":
        yield _TEACHER, f"{model_file} gives {gives}; task {spec.task} needs a teacher that gives values"
        return
    known = known_classes(spec)
    multi_label = spec.data.target is not None and spec.data.target.multi_label
    if classifier and known is not None and units is not None:
        count, where = known
        wanted = ("sigmoid", 1) if count == 2 and not multi_label else ("sigmoid" if multi_label else "softmax", count)
        if (kind, units) != wanted:
            what = "one sigmoid unit" if wanted == ("sigmoid", 1) else f"a {wanted[0]} over {wanted[1]} units"
            yield _TEACHER, (f"{model_file} gives {gives}; {where} {count} classes, so the teacher must end in {what}")
            return
    if classifier and labels_file is not None and spec.data.target is not None and spec.data.target.class_names:
        names = seen.small_json(str(labels_file))
        if isinstance(names, list) and sorted(map(str, names)) != sorted(map(str, spec.data.target.class_names)):
            yield _TEACHER, (f"the teacher's classes ({_list(map(str, names))}) differ from data.target.class_names "
                             f"({_list(spec.data.target.class_names)})")
