"""What the two sources streamed by file share (image_streaming.py, text_streaming.py).

The examples are files: a list of paths and a table of their labels. This module lists a
folder of class subfolders, checks the target column, encodes the labels and splits the file
list as the source read whole is split (seeded, stratified by class when asked:
`splits.split_indices`), runs the one chunked pass over the files (each chunk handed to the
source's own work: checks, hash, statistics; the first rows of each split kept as its
sample) and builds the `StreamedSplit`s. A reader here is the source's file reader
(`ImageFiles`, `TextFiles`): `files`, `chunk`, `path` and `read(index)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from dlpipe import progress
from dlpipe.data.streaming import SAMPLE_ROWS, StreamedSplit, _label_encoding, _raw_labels
from dlpipe.data.table import Table

SPLIT_CODES = (("train", 0), ("validation", 1), ("test", 2))
"""Each split's code in the per-file code array."""


def list_class_folders(root: Path, suffixes: tuple[str, ...], what: str) -> tuple[list[str], Table]:
    """The folder's files (class by class, as the folder read whole lists them) and a table
    of their labels (column `label`)."""
    from dlpipe.data.sources import _class_folders

    files, labels = [], []
    for name, paths in _class_folders(root, suffixes, what):
        files += [str(p) for p in paths]
        labels += [name] * len(paths)
    table = Table({"label": np.array(labels, dtype=object)}, origin=str(root), row_offset=1)
    table.row_files = files
    return files, table


def target_column(spec, table: Table, column: str, origin: str, located) -> str | None:
    """The target's name (None without one), refused in one located line when the table has
    no such column (`column`, the files' own, is named among the choices)."""
    from dlpipe.errors import did_you_mean

    target = spec.data.target.name if spec.data.target is not None else None
    if target is not None and target not in table.columns:
        names = [column, *table.columns]
        hint = did_you_mean(target, names) or f"; columns are: {', '.join(names)}"
        raise located(("data", "target", "name"), f"no column {target!r} in {origin}{hint}")
    return target


def split_files(spec, table: Table, target: str | None, reader, noun: str, located):
    """(every file's encoded label, class names, each split's file indices, every file's
    split code: 0 train, 1 validation, 2 test) — the split of the source read whole."""
    from dlpipe.data.splits import split_indices

    data_spec = spec.data
    count = len(reader.files)
    y_all = class_names = None
    if target is not None:
        _, y_all, class_names = _label_encoding(spec, [_raw_labels(spec, table, target)], target, reader)
    fractions = {"train": data_spec.split.train, "validation": data_spec.split.validation,
                 "test": data_spec.split.test}
    stratify = data_spec.split.stratify and y_all is not None and class_names is not None
    index = split_indices(count, fractions, spec.seed, y_all if stratify else None)
    for name in ("train", "test"):
        if not len(index[name]):
            raise located(("data", "split", name), f"the {name} split of {count} {noun} is empty")
    code = np.zeros(count, np.int8)
    code[index["validation"]], code[index["test"]] = 1, 2
    return y_all, class_names, index, code


class OnePass:
    """The one pass over the files, `reader.chunk` at a time, in file order: each chunk's
    values and split codes go to `each(values, codes)`; the first SAMPLE_ROWS of each split
    are kept (`samples`); `chunks` counts the chunks read."""

    def __init__(self, reader, code: np.ndarray):
        self.reader, self.code = reader, code
        self.chunks = 0
        self._samples: dict[int, list[np.ndarray]] = {0: [], 1: [], 2: []}

    def run(self, label: str, unit: str, each: Callable[[np.ndarray, np.ndarray], None]) -> None:
        total = len(self.code)
        with progress.task(label, total=total, unit=unit) as step:
            for start in range(0, total, self.reader.chunk):
                part = np.arange(start, min(start + self.reader.chunk, total))
                values = self.reader.read(part)
                self.chunks += 1
                codes = self.code[part]
                each(values, codes)
                for c in (0, 1, 2):
                    room = SAMPLE_ROWS - sum(len(s) for s in self._samples[c])
                    if room > 0:
                        self._samples[c].append(values[codes == c][:room])
                step.advance(len(part))

    def samples(self, empty: np.ndarray) -> dict[str, np.ndarray]:
        """Each split's sample as `empty`'s dtype (`empty` itself for a split without one)."""
        return {name: np.concatenate(self._samples[c]).astype(empty.dtype, copy=False) if self._samples[c] else empty
                for name, c in SPLIT_CODES}


def streamed_splits(spec, stream_type, reader, index: dict[str, np.ndarray], y_all: np.ndarray | None,
                    input_name: str, samples: dict[str, np.ndarray]) -> dict[str, StreamedSplit]:
    """The three `StreamedSplit`s, each with a `stream_type` (ImageStream, TextStream) over
    its files; only the training one shuffles with `data.shuffle_buffer`."""
    splits = {}
    for name, _ in SPLIT_CODES:
        rows = index[name]
        labels = None if y_all is None else y_all[rows]
        stream = stream_type(reader, rows, labels, input_name, spec.seed,
                             spec.data.shuffle_buffer if name == "train" else None)
        splits[name] = StreamedSplit({input_name: samples[name]}, labels, rows, stream)
    return splits


def streamed_data(spec, info, target: str | None, class_names, splits, digest, origin: str, reader,
                  one_pass: OnePass):
    """The PreparedData of a source streamed by file, its `streaming` record in data.json."""
    from dlpipe.data.prepared import PreparedData

    data = PreparedData(features=[info], target=target, task=spec.task, class_names=class_names, splits=splits,
                        fingerprint="sha256:" + digest.hexdigest(), origin=origin)
    data.extra["streaming"] = {"chunk_rows": reader.chunk, "chunks": one_pass.chunks, "peak_rows": reader.peak_rows}
    return data
