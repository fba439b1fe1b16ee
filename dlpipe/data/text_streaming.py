"""A folder of text files larger than memory (`data.streaming` with a `text_folder` source).

The examples are files: what is held for every example is its file name and its label, never
its text. The splits are those of the folder read whole (seeded, stratified by class when
asked: `splits.split_indices` over the file list), so splits.json names the same files
either way. One pass reads every file once, a chunk of files at a time: each is checked to
be UTF-8 text and hashed into the data fingerprint, and the training files' texts are
counted into the text feature's vocabulary (and TF-IDF weights) by the TextVectorization's
own counting (architectures/inputs.py: TextCounts), so the vocabulary equals `adapt` on the
whole training split, order and cut included.

Training then reads each batch's files when tf.data asks for it, in an order that is a pure
function of (seed, epoch) — a permutation of the training files, or with
`data.shuffle_buffer` a buffer of that many files refilled in file order — so a resumed run
sees the batches of an uninterrupted one. Validation, evaluation and the export checks read
the split in chunks. At most `min(chunk_rows, TEXT_CHUNK)` texts are held at once
(`peak_rows` in data.json); the vocabulary's counts (one per distinct token) are held as
`adapt` holds them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe import progress
from dlpipe.data.image_streaming import ImageStream
from dlpipe.data.streaming import SAMPLE_ROWS, StreamedSplit, _label_encoding, _raw_labels
from dlpipe.data.table import Table
from dlpipe.errors import DataError

TEXT_CHUNK = 4096
"""The most texts read and held at once, whatever `chunk_rows` says (a text may be pages)."""

TEXT_SUFFIXES = (".txt",)


class TextFiles:
    """Reads the source's text files by index; counts the texts read and the most held at
    once (what the tests check)."""

    def __init__(self, files: list[str], chunk: int, path: str):
        self.files, self.chunk = files, chunk
        self.path = path
        """The folder, for messages."""
        self.texts_read = 0
        self.peak_rows = 0

    def read(self, index: np.ndarray) -> np.ndarray:
        """The texts of `index` (in the order given), an N × 1 array of str."""
        out = np.empty((len(index), 1), dtype=object)
        for k, i in enumerate(np.asarray(index).tolist()):
            path = self.files[i]
            try:
                out[k, 0] = Path(path).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise DataError(f"{path}: no such text file (it was there when the folder was read)") from None
            except UnicodeDecodeError as err:
                raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
            except OSError as err:
                raise DataError(f"{path}: cannot read the file ({err.strerror or err})") from None
        self.texts_read += len(index)
        self.peak_rows = max(self.peak_rows, len(index))
        return out


@dataclass
class TextStream(ImageStream):
    """How to read one split's texts again, batch by batch: an ImageStream (the same
    per-epoch order, tf.data datasets and chunked predict) whose reader returns texts."""

    def batches(self, epoch: int | None = None, size: int | None = None):
        """(x, y) of this split, `size` texts at a time (at most the reader's chunk); with
        `epoch`, in that epoch's training order, else in file order."""
        size = min(size or self.reader.chunk, self.reader.chunk)
        positions = np.arange(self.count) if epoch is None else self.order(epoch)
        for start in range(0, self.count, size):
            take = positions[start:start + size]
            yield {self.input_name: self.reader.read(self.index[take])}, (None if self.labels is None
                                                                          else self.labels[take])

    def examples(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """The texts at `positions` of the split (a few)."""
        return {self.input_name: self.reader.read(self.index[np.asarray(positions, np.int64)])}

    def _signature(self, y_example):
        import tensorflow as tf

        x = {self.input_name: tf.TensorSpec((None, 1), tf.string)}
        return x, tf.TensorSpec((None,) + y_example.shape[1:], tf.as_dtype(y_example.dtype))


def _listing(root: Path) -> tuple[list[str], Table]:
    """The folder's files (class by class, as the folder read whole lists them) and a table
    of their labels."""
    from dlpipe.data.sources import _class_folders

    files, labels = [], []
    for name, paths in _class_folders(root, TEXT_SUFFIXES, ".txt files"):
        files += [str(p) for p in paths]
        labels += [name] * len(paths)
    table = Table({"label": np.array(labels, dtype=object)}, origin=str(root), row_offset=1)
    table.row_files = files
    return files, table


def prepare_text_streaming(spec, base_dir: Path, located):
    """One pass over the text files → a PreparedData whose splits stream (see the module)."""
    from dlpipe.data.prepared import FeatureInfo, PreparedData, input_names, spec_sections, text_settings
    from dlpipe.data.sources import resolve_path
    from dlpipe.data.splits import split_indices, split_record
    from dlpipe.errors import did_you_mean

    data_spec = spec.data
    root = resolve_path(data_spec.source.path, base_dir)
    files, table = _listing(root)
    origin = str(root)
    declared = data_spec.features[0] if data_spec.features else None
    if declared is None:  # a folder's texts are never inferred to be numbers (sources.py names the column `text`)
        raise located(("data",), "list the text feature under data.features: [{name: text, type: text}]")
    if declared.name != "text":
        raise located(("data", "features", 0, "name"), f"no column {declared.name!r} in {origin}; "
                      "the texts of a text_folder are column 'text'")
    target = data_spec.target.name if data_spec.target is not None else None
    if target is not None and target not in table.columns:
        names = ["text", *table.columns]
        hint = did_you_mean(target, names) or f"; columns are: {', '.join(names)}"
        raise located(("data", "target", "name"), f"no column {target!r} in {origin}{hint}")
    reader = TextFiles(files, min(data_spec.streaming.chunk_rows, TEXT_CHUNK), origin)
    y_all = class_names = None
    if target is not None:
        _, y_all, class_names = _label_encoding(spec, [_raw_labels(spec, table, target)], target, reader)
    fractions = {"train": data_spec.split.train, "validation": data_spec.split.validation,
                 "test": data_spec.split.test}
    stratify = data_spec.split.stratify and y_all is not None and class_names is not None
    index = split_indices(len(files), fractions, spec.seed, y_all if stratify else None)
    for name in ("train", "test"):
        if not len(index[name]):
            raise located(("data", "split", name), f"the {name} split of {len(files)} texts is empty")
    code = np.zeros(len(files), np.int8)
    code[index["validation"]], code[index["test"]] = 1, 2
    info = FeatureInfo("text", input_names(["text"])[0], "text", (1,))
    text_settings(info, declared)
    # The one pass: every file read once (checked, hashed); the training texts counted. The
    # files are not put in the read log (a hash and a path held for each would grow with the
    # folder): a streamed data stage is never reused, and the texts' hash is in the fingerprint.
    samples: dict[int, list[np.ndarray]] = {0: [], 1: [], 2: []}
    digest = hashlib.sha256()
    chunks = 0
    with progress.task(f"reading {root.name}/", total=len(files), unit="texts") as step:
        for start in range(0, len(files), reader.chunk):
            part = np.arange(start, min(start + reader.chunk, len(files)))
            texts = reader.read(part)
            if not chunks:  # Keras (TensorFlow) imported once the first files are read and checked
                from dlpipe.architectures.inputs import TextCounts

                counts = TextCounts(info)
            chunks += 1
            codes = code[part]
            counts.add(texts[codes == 0])
            for c in (0, 1, 2):
                room = SAMPLE_ROWS - sum(len(s) for s in samples[c])
                if room > 0:
                    samples[c].append(texts[codes == c][:room])
            for text in texts[:, 0]:
                digest.update(text.encode("utf-8") + b"\x1e")
            step.advance(len(part))
    counts.finish()
    digest.update("\x1f".join(map(str, table.columns["label"])).encode())
    digest.update("\x1f".join(Path(f).name for f in files).encode())
    digest.update(spec_sections(spec))
    splits = {}
    for name, c in (("train", 0), ("validation", 1), ("test", 2)):
        rows = index[name]
        labels = None if y_all is None else y_all[rows]
        stream = TextStream(reader, rows, labels, info.input_name, spec.seed,
                            data_spec.shuffle_buffer if name == "train" else None)
        sample = np.concatenate(samples[c]) if samples[c] else np.zeros((0, 1), dtype=object)
        splits[name] = StreamedSplit({info.input_name: sample}, labels, rows, stream)
    data = PreparedData(features=[info], target=target, task=spec.task, class_names=class_names, splits=splits,
                        fingerprint="sha256:" + digest.hexdigest(), origin=origin)
    data.extra["streaming"] = {"chunk_rows": reader.chunk, "chunks": chunks, "peak_rows": reader.peak_rows}
    data.extra["splits"] = split_record(origin, index, table)
    return data
