"""Image sources larger than memory (`data.streaming` with `image_folder` or `image_csv`).

The examples are files: what is held for every example is its file name and its label (one
small value each), never its pixels. One pass over the files decodes each image once,
checks that it is an image of the one size, hashes its pixels into the data fingerprint and
adds the training images to per-channel statistics (shifted sums, min, max) for the
normalization layers. The splits are those of the same source read whole (seeded,
stratified by class when asked: `splits.split_indices` over the file list), so splits.json
names the same files either way.

Training then decodes each batch's files when tf.data asks for it: each epoch's order is a
pure function of (seed, epoch) — a permutation of the training files, or with
`data.shuffle_buffer` a buffer of that many files refilled in file order — so a resumed run
sees the batches of an uninterrupted one; augmentation runs on each decoded batch, seeded by
(seed, epoch, batch). Validation, evaluation and the export checks decode the split in
chunks. At most `min(chunk_rows, IMAGE_CHUNK)` images are decoded and held at once
(`peak_rows` in data.json).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe.data.file_streaming import (OnePass, list_class_folders, split_files, streamed_data, streamed_splits,
                                        target_column)
from dlpipe.errors import DataError

IMAGE_CHUNK = 1024
"""The most images decoded at once, whatever `chunk_rows` says (rows of a table are a few
numbers; an image is thousands)."""

IMAGE_SOURCES = ("image_folder", "image_csv")


class ImageFiles:
    """Decodes the source's images by index; counts the images decoded and the most held at
    once (what the tests check)."""

    def __init__(self, files: list[str], color_mode: str, chunk: int, where: list[str] | None = None):
        self.files, self.color_mode, self.chunk = files, color_mode, chunk
        self.where = where
        """For an image CSV: the row that names each file, for messages."""
        self.shape: tuple[int, ...] | None = None
        self.images_read = 0
        self.peak_rows = 0
        self.path = None  # the source, for messages (set by prepare)

    def read(self, index: np.ndarray) -> np.ndarray:
        """The images of `index` (file order as given), N × H × W × C uint8."""
        from dlpipe.data.sources import eight_bit, open_image
        from PIL import UnidentifiedImageError

        mode = "L" if self.color_mode == "grayscale" else "RGB"
        out = None
        for k, i in enumerate(index.tolist()):
            path = self.files[i]
            prefix = f"{self.where[i]}: " if self.where is not None else ""
            try:
                with open_image(Path(path), prefix) as image:
                    pixels = eight_bit(image, mode, f"{prefix}{path}")
            except FileNotFoundError:
                raise DataError(f"{prefix}{path}: no such image file") from None
            except (UnidentifiedImageError, OSError, ValueError) as err:
                reason = "not an image" if isinstance(err, UnidentifiedImageError) else f"cannot read the image ({err})"
                raise DataError(f"{prefix}{path}: {reason}") from None
            if pixels.ndim == 2:
                pixels = pixels[..., np.newaxis]
            if self.shape is None:
                self.shape = pixels.shape
            elif pixels.shape != self.shape:
                first = self.files[0]
                raise DataError(f"{prefix}{path}: image of {pixels.shape[1]}×{pixels.shape[0]} pixels, but {first} "
                                f"has {self.shape[1]}×{self.shape[0]}; the images of {self.path} need one size")
            if out is None:
                out = np.empty((len(index), *self.shape), np.uint8)
            out[k] = pixels
        self.images_read += len(index)
        self.peak_rows = max(self.peak_rows, len(index))
        if out is None:
            return np.zeros((0, *(self.shape or (1, 1, 1))), np.uint8)
        return out


@dataclass
class ImageStream:
    """How to read one split's images again, batch by batch (the interface of
    streaming.Stream: `batches`, `training_dataset`, `evaluation_dataset`, `predict`)."""

    reader: ImageFiles
    index: np.ndarray
    """The split's examples (indices into the reader's files), in file order."""
    labels: np.ndarray | None
    """Encoded labels of the split, aligned with `index`."""
    input_name: str
    seed: int
    shuffle_buffer: int | None = None

    @property
    def count(self) -> int:
        return len(self.index)

    def order(self, epoch: int) -> np.ndarray:
        """Positions in the split of one epoch's examples, in training order: a function of
        (seed, epoch) alone (training/inputs.py: numpy_epoch_order)."""
        from dlpipe.training.inputs import numpy_epoch_order

        return numpy_epoch_order(self.count, self.seed, int(epoch), self.shuffle_buffer)

    def batches(self, epoch: int | None = None, size: int | None = None):
        """(x, y) of this split, `size` files at a time (at most the reader's chunk); with
        `epoch`, in that epoch's training order, else in file order."""
        size = min(size or self.reader.chunk, self.reader.chunk)
        positions = np.arange(self.count) if epoch is None else self.order(epoch)
        for start in range(0, self.count, size):
            take = positions[start:start + size]
            yield self._inputs(self.index[take]), (None if self.labels is None else self.labels[take])

    def examples(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """The images at `positions` of the split (a few: the report's misclassified ones)."""
        return self._inputs(self.index[np.asarray(positions, np.int64)])

    def _inputs(self, files: np.ndarray) -> dict[str, np.ndarray]:
        """The model's inputs for these files (indices into the reader's): the images as float32."""
        return {self.input_name: self.reader.read(files).astype(np.float32)}

    def _signature(self, y_example):
        import tensorflow as tf

        x = {self.input_name: tf.TensorSpec((None, *self.reader.shape), tf.float32)}
        return x, tf.TensorSpec((None,) + y_example.shape[1:], tf.as_dtype(y_example.dtype))

    def training_dataset(self, *, batch_size: int, first_epoch: int, epochs: int, y_example: np.ndarray,
                         augment=None):
        """Batches of (x, y) — (x, y, weight) with `augment` — for the epochs [first_epoch,
        epochs); batches never straddle epochs; `augment(x, y, weight, seed)` changes each
        batch, seeded by (seed, epoch, batch) as training/inputs.py: training_dataset does."""
        import tensorflow as tf

        from dlpipe.training.inputs import _EPOCH_STRIDE

        signature = self._signature(y_example)
        seed = self.seed

        def one_epoch(epoch):
            batches = tf.data.Dataset.from_generator(lambda e: self.batches(int(e), batch_size),
                                                     output_signature=signature, args=(epoch,))
            if batch_size > self.reader.chunk:  # decoded a chunk at a time, trained a batch at a time
                batches = batches.unbatch().batch(batch_size)
            if augment is None:
                return batches
            epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64) * _EPOCH_STRIDE])

            def augmented(number, x, y):
                weight = tf.ones(tf.shape(y)[:1], tf.float32)
                return augment(x, y, weight, tf.random.experimental.stateless_fold_in(epoch_seed, number))

            return batches.enumerate().map(lambda number, batch: augmented(number, *batch))

        steps = -(-self.count // batch_size) * max(epochs - first_epoch, 0)
        dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)

    def evaluation_dataset(self, *, batch_size: int, y_example: np.ndarray):
        import tensorflow as tf

        batches = tf.data.Dataset.from_generator(lambda: self.batches(size=batch_size),
                                                 output_signature=self._signature(y_example))
        if batch_size > self.reader.chunk:
            batches = batches.unbatch().batch(batch_size)
        return batches.apply(tf.data.experimental.assert_cardinality(-(-self.count // batch_size))).prefetch(2)

    def predict(self, model) -> np.ndarray:
        """The model's outputs for every image of the split, in file order (chunk by chunk)."""
        from dlpipe.data.pipeline import predict

        parts = [predict(model, x) for x, _ in self.batches()]
        return np.concatenate(parts) if parts else np.zeros((0,))


@dataclass
class _ChannelMoments:
    """Per channel: count, sums around a shift (against cancellation), min, max."""

    shift: np.ndarray | None = None
    count: int = 0
    total: np.ndarray | None = None
    squares: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    def add(self, images: np.ndarray) -> None:
        if not len(images):
            return
        values = images.reshape(-1, images.shape[-1]).astype(np.float64)
        if self.shift is None:
            self.shift = values.mean(axis=0)
            self.total = np.zeros_like(self.shift)
            self.squares = np.zeros_like(self.shift)
            self.low, self.high = values.min(axis=0), values.max(axis=0)
        centred = values - self.shift
        self.count += len(values)
        self.total += centred.sum(axis=0)
        self.squares += np.square(centred).sum(axis=0)
        self.low, self.high = np.minimum(self.low, values.min(axis=0)), np.maximum(self.high, values.max(axis=0))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / self.count
        return self.shift + mean, np.sqrt(np.maximum(self.squares / self.count - mean * mean, 0.0))


def _listing(spec, base_dir: Path, located):
    """(files, rows naming them or None, a table of the label columns, origin, feature name)."""
    from dlpipe.data.sources import IMAGE_SUFFIXES, read_csv, resolve_path
    from dlpipe.errors import did_you_mean

    source = spec.data.source
    if source.type == "image_folder":
        root = resolve_path(source.path, base_dir)
        files, table = list_class_folders(root, IMAGE_SUFFIXES, "images")
        return files, None, table, str(root), "image"
    path = resolve_path(source.path, base_dir)
    table = read_csv(path, source.delimiter)
    column = source.image_column
    if column not in table.columns:
        hint = did_you_mean(column, table.columns) or f"; columns are: {', '.join(table.columns)}"
        raise DataError(f"{path}: no image column {column!r}{hint} (set data.source.image_column)")
    files, where = [], []
    for row, value in enumerate(table.columns.pop(column)):
        at = f"{path}: row {row + table.row_offset}, column {column!r}"
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{at}: expected an image path, got {value!r}")
        files.append(str(resolve_path(value, path.parent)))
        where.append(at)
    return files, where, table, str(path), column


def prepare_image_streaming(spec, base_dir: Path, located):
    """One pass over the images → a PreparedData whose splits stream (see the module)."""
    from dlpipe.data.prepared import FeatureInfo, input_names, normalizer, spec_sections
    from dlpipe.data.splits import split_record
    from dlpipe.errors import did_you_mean

    data_spec = spec.data
    files, where, table, origin, column = _listing(spec, base_dir, located)
    if not files:
        raise DataError(f"{origin}: the dataset is empty")
    declared = data_spec.features[0] if data_spec.features else None
    if declared is not None and declared.name != column:
        raise located(("data", "features", 0, "name"),
                      f"no column {declared.name!r} in {origin}; the images are column {column!r}")
    target = target_column(spec, table, column, origin, located)
    reader = ImageFiles(files, data_spec.source.color_mode, min(data_spec.streaming.chunk_rows, IMAGE_CHUNK), where)
    reader.path = origin
    y_all, class_names, index, code = split_files(spec, table, target, reader, "images", located)
    # The one pass: every image decoded once (checked, hashed); the training ones counted.
    # The images are not put in the read log (a SHA-256 and a path held for each, ~0.7 KB an
    # image, would grow with the folder): a streamed data stage is never reused (its data is
    # not cached), and the pixels' hash in the fingerprint tells a later stage they changed.
    moments = _ChannelMoments()
    digest = hashlib.sha256()

    def each(images: np.ndarray, codes: np.ndarray) -> None:
        moments.add(images[codes == 0])
        digest.update(images.tobytes())

    one_pass = OnePass(reader, code)
    one_pass.run(f"reading {Path(origin).name}", "images", each)
    for name in sorted(table.columns):
        digest.update(name.encode() + "\x1f".join(map(str, table.columns[name])).encode())
    digest.update("\x1f".join(Path(f).name for f in files).encode())
    digest.update(spec_sections(spec))
    shape = tuple(int(d) for d in reader.shape)
    info = FeatureInfo(column, input_names([column])[0], "image", shape)
    if declared is not None:
        info.size = tuple(declared.size) if getattr(declared, "size", None) else None
        info.channels = getattr(declared, "channels", None)
        if info.channels is not None and shape[-1] not in (1, 3):
            raise located(("data", "features", 0, "channels"), f"column {column!r} holds images of {shape[-1]} "
                          "channels; only 1 (grey) or 3 (RGB) can be converted")
    norm = normalizer(spec, info)
    info.normalization = "none" if norm is None else norm.type
    if info.normalization != "none":
        if norm.type == "zscore":
            mean, std = moments.mean_std()
        elif norm.type == "minmax":
            mean, std = moments.low, moments.high - moments.low
        else:
            mean = np.full(shape[-1], -norm.offset / norm.scale)
            std = np.full(shape[-1], 1.0 / norm.scale)
        info.mean, info.std = mean, np.where(std == 0, 1.0, std)
    unused = set(spec.prepare.normalization) - {column, "image"}
    from dlpipe.spec.checks import FEATURE_TYPES

    for key in sorted(unused - set(FEATURE_TYPES)):
        raise located(("prepare", "normalization", key), f"{key!r} is not a feature{did_you_mean(key, [column])}")
    samples = one_pass.samples(np.zeros((0, *shape), np.float32))
    splits = streamed_splits(spec, ImageStream, reader, index, y_all, info.input_name, samples)
    data = streamed_data(spec, info, target, class_names, splits, digest, origin, reader, one_pass)
    data.extra["value_range"] = {info.input_name: float(np.max(moments.high) - np.min(moments.low))
                                 if moments.count else 1.0}
    data.extra["splits"] = split_record(origin, index, table if where is None else None)
    return data
