"""Read a spec's `data.source` into a Table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe import registry
from dlpipe.data.table import Table
from dlpipe.errors import DataError
from dlpipe.spec.data import BuiltinSource, CsvSource, NpzSource


def resolve_path(path: str, base_dir: Path) -> Path:
    """A spec-relative path, made absolute (messages show absolute paths)."""
    candidate = Path(path).expanduser()
    return (candidate if candidate.is_absolute() else base_dir / candidate).resolve()


def load_source(source, base_dir: Path) -> Table:
    if isinstance(source, BuiltinSource):
        return registry.load("dataset", source.name)()
    if isinstance(source, CsvSource):
        return _load_csv(resolve_path(source.path, base_dir), source.delimiter)
    if isinstance(source, NpzSource):
        return _load_npz(resolve_path(source.path, base_dir))
    raise TypeError(f"no loader for source type {source.type!r}")  # the spec layer prevents this


def _load_csv(path: Path, delimiter: str) -> Table:
    import pandas as pd

    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a CSV file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, sep=delimiter)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot parse as CSV: {str(err).strip().splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"{path}: no data rows below the header")
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "if":
            values = values.astype(np.float32 if values.dtype.kind == "f" else np.int64)
        else:
            values = values.astype(object)
        columns[str(name)] = values
    return Table(columns, origin=str(path), row_offset=2)


def _load_npz(path: Path) -> Table:
    """Each array of the archive is a column; arrays keep their shape (sequences, images)."""
    import zipfile

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            columns = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read as .npz: {str(err).strip().splitlines()[0]}") from None
    if not columns:
        raise DataError(f"{path}: the archive holds no arrays")
    lengths = {name: (len(values) if values.ndim else 0) for name, values in columns.items()}
    first = next(iter(lengths))
    for name, length in lengths.items():
        if length != lengths[first]:
            raise DataError(f"{path}: array {name!r} has {length} rows, {first!r} has {lengths[first]}; "
                            "every array is a column and needs one row per example")
    return Table(columns, origin=str(path), row_offset=0)
