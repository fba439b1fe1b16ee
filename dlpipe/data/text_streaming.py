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

from dlpipe.data.file_streaming import (OnePass, list_class_folders, split_files, streamed_data, streamed_splits,
                                        target_column)
from dlpipe.data.image_streaming import ImageStream
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

    def _inputs(self, files: np.ndarray) -> dict[str, np.ndarray]:
        """The model's inputs for these files (indices into the reader's): the texts, N × 1 str."""
        return {self.input_name: self.reader.read(files)}

    def _signature(self, y_example):
        import tensorflow as tf

        x = {self.input_name: tf.TensorSpec((None, 1), tf.string)}
        return x, tf.TensorSpec((None,) + y_example.shape[1:], tf.as_dtype(y_example.dtype))


def prepare_text_streaming(spec, base_dir: Path, located):
    """One pass over the text files → a PreparedData whose splits stream (see the module)."""
    from dlpipe.data.prepared import FeatureInfo, input_names, spec_sections, text_settings
    from dlpipe.data.sources import resolve_path
    from dlpipe.data.splits import split_record

    data_spec = spec.data
    root = resolve_path(data_spec.source.path, base_dir)
    files, table = list_class_folders(root, TEXT_SUFFIXES, ".txt files")
    origin = str(root)
    declared = data_spec.features[0] if data_spec.features else None
    if declared is None:  # a folder's texts are never inferred to be numbers (sources.py names the column `text`)
        raise located(("data",), "list the text feature under data.features: [{name: text, type: text}]")
    if declared.name != "text":
        raise located(("data", "features", 0, "name"), f"no column {declared.name!r} in {origin}; "
                      "the texts of a text_folder are column 'text'")
    target = target_column(spec, table, "text", origin, located)
    reader = TextFiles(files, min(data_spec.streaming.chunk_rows, TEXT_CHUNK), origin)
    y_all, class_names, index, code = split_files(spec, table, target, reader, "texts", located)
    info = FeatureInfo("text", input_names(["text"])[0], "text", (1,))
    text_settings(info, declared)
    # The one pass: every file read once (checked, hashed); the training texts counted. The
    # files are not put in the read log (a hash and a path held for each would grow with the
    # folder): a streamed data stage is never reused, and the texts' hash is in the fingerprint.
    digest = hashlib.sha256()
    counts = None

    def each(texts: np.ndarray, codes: np.ndarray) -> None:
        nonlocal counts
        if counts is None:  # Keras (TensorFlow) imported once the first files are read and checked
            from dlpipe.architectures.inputs import TextCounts

            counts = TextCounts(info)
        counts.add(texts[codes == 0])
        for text in texts[:, 0]:
            digest.update(text.encode("utf-8") + b"\x1e")

    one_pass = OnePass(reader, code)
    one_pass.run(f"reading {root.name}/", "texts", each)
    counts.finish()
    digest.update("\x1f".join(map(str, table.columns["label"])).encode())
    digest.update("\x1f".join(Path(f).name for f in files).encode())
    digest.update(spec_sections(spec))
    samples = one_pass.samples(np.zeros((0, 1), dtype=object))
    splits = streamed_splits(spec, TextStream, reader, index, y_all, info.input_name, samples)
    data = streamed_data(spec, info, target, class_names, splits, digest, origin, reader, one_pass)
    data.extra["splits"] = split_record(origin, index, table)
    return data
