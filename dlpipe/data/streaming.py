"""Files larger than memory (`data.streaming`): csv, jsonl and parquet read in chunks.

One pass over the chunks checks every value, assigns each row to a split by a seeded hash of
its row index (so no permutation of all rows is needed), collects the labels (one small
value per row) and accumulates the normalization statistics of the training rows. Training,
validation and evaluation then read the file again, chunk by chunk, through a tf.data
generator: at no time are more than `chunk_rows` rows of features held.

Text features (`type: text`) are read as they are; their vocabulary (and TF-IDF weights)
are counted in the same pass, a chunk of training texts at a time, by the TextVectorization's
own counting (architectures/inputs.py: TextCounts), so they equal `adapt` on the whole
training split. A folder of text files streams by file instead (text_streaming.py).

Limits (refused with a located error, spec/checks.py and below): numerical, categorical and
text features only, no imputation, no sample weights, no explicit split files, time order or
folds; splits are not stratified (their sizes follow the fractions only approximately, by the
hash).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlpipe import readlog, tasks
from dlpipe.data.sources import check_header, frame_table, import_pyarrow, records_table, resolve_path
from dlpipe.data.table import Table
from dlpipe.errors import DataError

SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
SAMPLE_ROWS = 256
"""Examples of each split kept in memory for the model card and the export checks."""


def split_codes(rows: np.ndarray, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """0 train, 1 validation, 2 test for each row index: splitmix64 of (seed, row) mapped to
    [0, 1) and cut at the cumulative fractions. The same rows land in the same split on every
    pass and in every process."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    train, validation = fractions["train"], fractions["train"] + fractions["validation"]
    return np.where(u < train, 0, np.where(u < validation, 1, 2)).astype(np.int8)


class ChunkReader:
    """Reads the source file in chunks of `chunk_rows` rows; counts chunks and the most rows
    held at once (what the tests check)."""

    def __init__(self, source, base_dir: Path, chunk_rows: int):
        self.source, self.chunk_rows = source, chunk_rows
        self.path = resolve_path(source.path, base_dir)
        self.base_dir = base_dir
        self.chunks_read = 0
        self.peak_rows = 0

    def __iter__(self):
        """(first row index, Table) per chunk; messages name the file's own row numbers."""
        if self.source.type == "tfrecord":  # a file or a glob of them, checked by the reader
            reader = self._tfrecord
        else:
            if self.path.is_dir():
                raise DataError(f"{self.path}: is a directory, not a file")
            if not self.path.is_file():
                raise DataError(f"{self.path}: no such file")
            readlog.named(self.source.path, self.base_dir)
            readlog.opened(self.path)  # the data stage's pass is recorded; later passes read the same file
            reader = {"csv": self._csv, "jsonl": self._jsonl, "parquet": self._parquet}[self.source.type]
        start = 0
        for table in reader():
            self.chunks_read += 1
            self.peak_rows = max(self.peak_rows, len(table))
            yield start, table
            start += len(table)
        if start == 0:
            raise DataError(f"{self.path}: no data rows")

    def _csv(self):
        import pandas as pd

        check_header(self.path, self.source.delimiter)
        try:
            with pd.read_csv(self.path, sep=self.source.delimiter, chunksize=self.chunk_rows) as chunks:
                start = 0
                for frame in chunks:
                    yield frame_table(frame, str(self.path), row_offset=2 + start)
                    start += len(frame)
        except pd.errors.EmptyDataError:
            raise DataError(f"{self.path}: the file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"{self.path}: cannot parse as CSV: {str(err).strip().splitlines()[0]}") from None

    def _jsonl(self):
        from dlpipe.data.sources import read_jsonl_records

        batch: list[tuple[int, dict]] = []
        for number, record in read_jsonl_records(self.path):
            batch.append((number, record))
            if len(batch) == self.chunk_rows:
                yield records_table([r for _, r in batch], [n for n, _ in batch], str(self.path))
                batch = []
        if batch:
            yield records_table([r for _, r in batch], [n for n, _ in batch], str(self.path))

    def _parquet(self):
        from dlpipe.data.sources import arrow_table

        pq = import_pyarrow()
        import pyarrow as pa

        try:
            handle = pq.ParquetFile(self.path)
        except Exception as err:  # pyarrow's ArrowInvalid and kin
            raise DataError(f"{self.path}: cannot read as parquet: {str(err).strip().splitlines()[0]}") from None
        start = 0
        for batch in handle.iter_batches(batch_size=self.chunk_rows):
            yield arrow_table(pa.Table.from_batches([batch]), str(self.path), row_offset=1 + start)
            start += batch.num_rows


    def _tfrecord(self):
        """tf.train.Example records, `chunk_rows` parsed at a time (TensorFlow reads them: the
        data stage imports it for this source only); a record that does not parse is named by
        its file and number, as sources.load_tfrecord names it."""
        from dlpipe.data.sources import _existing_file, _tf_reason

        pattern = str(self.path)
        files = readlog.glob(pattern) if any(c in self.source.path for c in "*?[") else [pattern]
        if not files:
            raise DataError(f"{pattern}: no file matches")
        for file in files:
            _existing_file(Path(file), "TFRecord file")
            readlog.opened(file)
        from dlpipe.backend_import import import_tensorflow

        import_tensorflow()
        import tensorflow as tf

        kinds = {"float": tf.float32, "int": tf.int64, "string": tf.string}
        features = self.source.features
        spec = {name: tf.io.FixedLenFeature(feature.shape, kinds[feature.dtype]) for name, feature in features.items()}
        compression = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[self.source.compression]
        for file in files:
            start = 0
            try:
                for records in tf.data.TFRecordDataset(file, compression_type=compression).batch(self.chunk_rows):
                    try:
                        parsed = tf.io.parse_example(records, spec)
                    except (tf.errors.InvalidArgumentError, ValueError):
                        for number, record in enumerate(records.numpy(), start + 1):  # which one
                            try:
                                tf.io.parse_single_example(record, spec)
                            except (tf.errors.InvalidArgumentError, ValueError) as err:
                                raise DataError(f"{file}: record {number}: {_tf_reason(err, features)}") from None
                        raise
                    columns = {}
                    for name, values in parsed.items():
                        values = values.numpy()
                        if features[name].dtype == "string":
                            columns[name] = np.array([v.decode("utf-8") for v in values.reshape(-1)],
                                                     dtype=object).reshape(values.shape)
                        else:
                            columns[name] = values.astype(np.float32 if values.dtype.kind == "f" else np.int64)
                    yield Table(columns, origin=file, row_offset=1 + start)
                    start += int(records.shape[0])
            except tf.errors.DataLossError:
                raise DataError(f"{file}: record {start + 1}: not a TFRecord file (corrupted record)") from None


@dataclass
class Stream:
    """How to read one split's examples again, chunk by chunk."""

    reader: ChunkReader
    code: int
    features: list
    target: str | None
    encode: object
    """raw label values of a chunk → encoded labels."""
    seed: int
    fractions: dict[str, float]
    count: int

    def batches(self, epoch: int | None = None):
        """(x, y) of this split, one chunk at a time; with `epoch`, each chunk's rows shuffled
        by a seed of (seed, epoch, chunk)."""
        for number, (start, table) in enumerate(self.reader):
            rows = np.arange(start, start + len(table))
            mine = np.flatnonzero(split_codes(rows, self.seed, self.fractions) == self.code)
            if epoch is not None:
                mine = np.random.default_rng([self.seed, int(epoch), number]).permutation(mine)
            if not len(mine):
                continue
            x = {feature.input_name: checked(table, feature)[mine].reshape(-1, 1) for feature in self.features}
            y = None if self.target is None else self.encode(table, self.target)[mine]
            yield x, y

    def _signature(self, y_example):
        import tensorflow as tf

        x = {f.input_name: tf.TensorSpec((None, 1), tf.string if f.type in ("categorical", "text") else tf.float32)
             for f in self.features}
        y = tf.TensorSpec((None,) + y_example.shape[1:], tf.as_dtype(y_example.dtype))
        return x, y

    def training_dataset(self, *, batch_size: int, first_epoch: int, epochs: int, y_example: np.ndarray):
        """Batches of (x, y) for the epochs [first_epoch, epochs); batches never straddle epochs."""
        import tensorflow as tf

        signature = self._signature(y_example)

        def one_epoch(epoch):
            chunks = tf.data.Dataset.from_generator(lambda e: self.batches(int(e)), output_signature=signature,
                                                    args=(epoch,))
            return chunks.unbatch().batch(batch_size)

        # The generator's length is unknown to tf.data; stating it lets Keras count steps
        # instead of reading until the data runs out.
        batches = -(-self.count // batch_size) * max(epochs - first_epoch, 0)
        dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
        return dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(2)

    def evaluation_dataset(self, *, batch_size: int, y_example: np.ndarray):
        import tensorflow as tf

        chunks = tf.data.Dataset.from_generator(self.batches, output_signature=self._signature(y_example))
        dataset = chunks.unbatch().batch(batch_size)
        return dataset.apply(tf.data.experimental.assert_cardinality(-(-self.count // batch_size))).prefetch(2)

    def predict(self, model) -> np.ndarray:
        """The model's outputs for every example of the split, in row order (chunk by chunk)."""
        from dlpipe.data.pipeline import predict

        parts = [predict(model, x) for x, _ in self.batches()]
        return np.concatenate(parts) if parts else np.zeros((0,))


def rebatched(pieces, batch_size: int):
    """(x, y) pieces of any size (a file's chunks, a folder's decoded files) → (x, y)
    batches of `batch_size`, the last one shorter; holds a piece and a batch at most."""
    held_x: dict[str, list[np.ndarray]] = {}
    held_y: list[np.ndarray] = []
    count = 0

    def take(n):
        nonlocal count
        x = {name: np.concatenate(parts) for name, parts in held_x.items()}
        y = np.concatenate(held_y)
        for name in held_x:
            held_x[name] = [x[name][n:]]
        held_y[:] = [y[n:]]
        count -= n
        return {name: values[:n] for name, values in x.items()}, y[:n]

    for x, y in pieces:
        for name, values in x.items():
            held_x.setdefault(name, []).append(values)
        held_y.append(y)
        count += len(y)
        while count >= batch_size:
            yield take(batch_size)
    if count:
        yield take(count)


def numpy_batches(stream, *, batch_size: int, first_epoch: int, epochs: int):
    """A streamed split's training batches as numpy (x, y), for the epochs [first_epoch,
    epochs) back to back, each epoch's order the stream's own for (seed, epoch); what Keras
    trains from on a backend other than TensorFlow (no tf.data)."""
    for epoch in range(first_epoch, epochs):
        yield from rebatched(stream.batches(epoch), batch_size)


def keras_batches(stream, batch_size: int):
    """A streamed split in order as a keras.utils.PyDataset (validation on a backend other
    than TensorFlow: Keras reads it again every epoch, batch by batch, in order)."""
    import keras

    class SplitBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self._iterator, self._next = None, 0

        def __len__(self):
            return max(1, -(-stream.count // batch_size))

        def __getitem__(self, i):
            if self._iterator is None or i != self._next:  # a new pass (or a jump): read from the start
                self._iterator, self._next = rebatched(stream.batches(), batch_size), 0
                for _ in range(i):
                    next(self._iterator)
                    self._next += 1
            self._next += 1
            return next(self._iterator)

    return SplitBatches()


@dataclass
class StreamedSplit:
    """A split read from the file when needed. `y` and `rows` are held (one small value per
    example); `x` holds only a sample of the first examples (model card, export checks)."""

    x: dict[str, np.ndarray]
    y: np.ndarray | None
    rows: np.ndarray
    stream: Stream
    weight: np.ndarray | None = None
    naive: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class _Moments:
    """Running count, sum and sum of squares (around a shift, against cancellation), min, max."""

    shift: np.ndarray | None = None
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = np.inf
    high: float = -np.inf

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        values = values.astype(np.float64)
        if self.shift is None:
            self.shift = values.mean()
        centred = values - self.shift
        self.count += len(values)
        self.total += centred.sum()
        self.squares += np.square(centred).sum()
        self.low, self.high = min(self.low, values.min()), max(self.high, values.max())

    def mean_std(self) -> tuple[float, float]:
        mean = self.total / self.count
        return self.shift + mean, float(np.sqrt(max(self.squares / self.count - mean * mean, 0.0)))


def prepare_streaming(spec, base_dir: Path, located):
    """One pass over the file's chunks → a PreparedData whose splits stream (see the module).
    Image sources stream by file instead (image_streaming.py)."""
    import hashlib

    from dlpipe.data.prepared import FeatureInfo, PreparedData, input_names, normalizer, spec_sections
    from dlpipe.data.values import _check_numbers, _mostly_numbers
    from dlpipe.errors import did_you_mean

    data_spec = spec.data
    reader = ChunkReader(data_spec.source, base_dir, data_spec.streaming.chunk_rows)
    fractions = {"train": data_spec.split.train, "validation": data_spec.split.validation,
                 "test": data_spec.split.test}
    target = data_spec.target.name if data_spec.target is not None else None
    features: list[FeatureInfo] | None = None
    moments: dict[str, _Moments] = {}
    labels: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    samples: dict[int, dict[str, list[np.ndarray]]] = {0: {}, 1: {}, 2: {}}
    digest = hashlib.sha256()
    columns: list[str] | None = None
    seen: dict[str, set] = {}
    counts: dict = {}
    for start, table in reader:
        if columns is None:
            columns = list(table.columns)
            if target is not None and target not in columns:
                hint = did_you_mean(target, columns) or f"; columns are: {', '.join(columns)}"
                raise located(("data", "target", "name"), f"no column {target!r} in {table.origin}{hint}")
            features = _stream_features(spec, table, target, located, input_names, _mostly_numbers, did_you_mean)
            moments = {f.name: _Moments() for f in features}
            counts = _text_counts(features)
        elif list(table.columns) != columns:
            raise DataError(f"{table.at(0)}: the columns changed from {', '.join(columns)} to "
                            f"{', '.join(table.columns)}")
        rows = np.arange(start, start + len(table))
        code = split_codes(rows, spec.seed, fractions)
        codes.append(code)
        train = code == 0
        for feature in features:
            values = checked(table, feature)
            if feature.type == "categorical":
                seen.setdefault(feature.name, set()).update(values[train].tolist())
            elif feature.type == "text":
                counts[feature.name].add(values[train])
            else:
                moments[feature.name].add(values[train])
            for c in (0, 1, 2):
                held = samples[c].setdefault(feature.input_name, [])
                room = SAMPLE_ROWS - sum(len(h) for h in held)
                if room > 0:
                    held.append(values[code == c][:room].reshape(-1, 1))
        if target is not None:
            labels.append(_raw_labels(spec, table, target))
        for name in sorted(table.columns):
            values = table.columns[name]
            digest.update(name.encode())
            digest.update(values.tobytes() if values.dtype != object else "\x1f".join(map(str, values)).encode())
    digest.update(spec_sections(spec))
    codes_all = np.concatenate(codes)
    encode, y_all, class_names = _label_encoding(spec, labels, target, reader)
    for feature in features:
        if feature.type == "categorical":
            if feature.vocabulary is None:
                feature.vocabulary = sorted(seen.get(feature.name, set()))
            continue
        if feature.type == "text":
            counts[feature.name].finish()
            continue
        norm = normalizer(spec, feature)
        feature.normalization = "none" if norm is None else norm.type
        if feature.normalization == "none":
            continue
        stats = moments[feature.name]
        if stats.count == 0:
            raise located(("data", "split", "train"), "the training split of the file is empty")
        if norm.type == "zscore":
            mean, std = stats.mean_std()
        elif norm.type == "minmax":
            mean, std = stats.low, stats.high - stats.low
        else:
            mean, std = -norm.offset / norm.scale, 1.0 / norm.scale
        feature.mean, feature.std = np.array([mean]), np.array([std if std != 0 else 1.0])
    splits = {}
    for name, c in SPLIT_CODES.items():
        rows = np.flatnonzero(codes_all == c)
        if name in ("train", "test") and not len(rows):
            raise located(("data", "split", name), f"the {name} split of {len(codes_all)} examples is empty")
        stream = Stream(reader, c, features, target, encode, spec.seed, fractions, len(rows))
        sample = {key: np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
                  for key, parts in samples[c].items()}
        splits[name] = StreamedSplit(sample, None if y_all is None else y_all[rows], rows, stream)
    data = PreparedData(features=features, target=target, task=spec.task, class_names=class_names, splits=splits,
                        fingerprint="sha256:" + digest.hexdigest(), origin=str(reader.path))
    data.extra["streaming"] = {"chunk_rows": reader.chunk_rows, "chunks": reader.chunks_read,
                               "peak_rows": reader.peak_rows}
    return data


def _stream_features(spec, table: Table, target, located, input_names, mostly_numbers, did_you_mean):
    from dlpipe.data.prepared import FeatureInfo, text_settings

    kinds: dict[str, str] = {}
    if spec.data.features:
        declared = []
        for i, feature in enumerate(spec.data.features):
            path = ("data", "features", i)
            if feature.name not in table.columns:
                hint = did_you_mean(feature.name, table.columns) or f"; columns are: {', '.join(table.columns)}"
                raise located(path + ("name",), f"no column {feature.name!r} in {table.origin}{hint}")
            if feature.type not in ("numerical", "categorical", "text"):
                raise located(path + ("type",), f"streaming reads numerical, categorical and text features; "
                              f"{feature.name!r} is {feature.type}")
            declared.append(feature.name)
            kinds[feature.name] = feature.type
    else:
        declared = []
        for name, values in table.columns.items():
            if name == target:
                continue
            if values.dtype.kind not in "iufb" and not mostly_numbers(values):
                raise located(("data",), f"column {name!r} of {table.origin} holds text; list the features you "
                              f"want under data.features (a category per row: {{name: {name}, type: categorical}})")
            declared.append(name)
    features = []
    for name, input_name in zip(declared, input_names(declared)):
        if table.columns[name].ndim != 1:
            path = ("data", "features", declared.index(name)) if spec.data.features else ("data",)
            raise located(path, f"column {name!r} of {table.origin} holds {table.columns[name].shape[1:]} values per "
                          "row; streaming a table reads one number or category per feature")
        info = FeatureInfo(name, input_name, kinds.get(name, "numerical"), (1,))
        if info.type == "categorical":
            feature = next(f for f in spec.data.features if f.name == name)
            info.vocabulary, info.encoding = feature.vocabulary, feature.encoding
            info.embedding_dim = feature.embedding_dim or (8 if feature.encoding == "embedding" else None)
        elif info.type == "text":
            text_settings(info, next(f for f in spec.data.features if f.name == name))
        features.append(info)
    return features


def _text_counts(features) -> dict:
    """A vocabulary counter per text feature (TensorFlow is imported only when there is one)."""
    if not any(f.type == "text" for f in features):
        return {}
    from dlpipe.architectures.inputs import TextCounts

    return {f.name: TextCounts(f) for f in features if f.type == "text"}


def checked(table: Table, feature) -> np.ndarray:
    """A chunk's column, every value checked: float32 numbers, or categories and texts as text."""
    from dlpipe.data.values import _check_categories, _check_numbers

    if feature.type in ("categorical", "text"):
        _check_categories(table, feature.name)
        return table.columns[feature.name]
    _check_numbers(table, feature.name)
    return table.columns[feature.name].astype(np.float32)


def _raw_labels(spec, table: Table, target: str) -> np.ndarray:
    from dlpipe.data.values import _check_numbers, _is_missing

    values = table.columns[target]
    if tasks.get(spec.task).target == "values":  # numbers, not classes
        _check_numbers(table, target)
        return table.columns[target].astype(np.float32)
    for row, value in enumerate(values):
        if _is_missing(value) or (isinstance(value, float) and not np.isfinite(value)):
            raise DataError(f"{table.at(row)}, column {target!r}: missing label")
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(f"{table.at(bad[0])}, column {target!r}: missing label")
    return np.array([str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v)
                     for v in values.tolist()], dtype=object)


def _label_encoding(spec, labels: list[np.ndarray], target: str | None, reader: ChunkReader):
    """(chunk → encoded labels, every row's encoded label, class names)."""
    if target is None:
        return None, None, None
    raw = np.concatenate(labels)
    if tasks.get(spec.task).target == "values":  # numbers, not classes
        def encode(table, column):
            return table.columns[column].astype(np.float32)

        return encode, raw.astype(np.float32), None
    declared = spec.data.target.class_names
    classes = list(declared) if declared else sorted(set(raw.tolist()))
    if len(classes) < 2:
        raise DataError(f"{reader.path}: column {target!r} has a single class ({classes[0]!r}); "
                        "classification needs at least two")
    index = {name: i for i, name in enumerate(classes)}
    if declared:
        integers = all(name.isdigit() for name in set(raw.tolist()))
        lookup = {str(i): i for i in range(len(classes))} if integers else index
    else:
        lookup = index

    def encode_values(values: np.ndarray) -> np.ndarray:
        keys = [str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() else str(v)
                for v in values.tolist()]
        missing = [k for k in keys if k not in lookup]
        if missing:
            raise DataError(f"{reader.path}: column {target!r}: label {missing[0]!r} is not in class_names "
                            f"({', '.join(classes[:8])})")
        return np.array([lookup[k] for k in keys], dtype=np.int64)

    def encode(table, column):
        return encode_values(table.columns[column])

    return encode, encode_values(raw), classes

