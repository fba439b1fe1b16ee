"""Every export scored as a user judges it: the spec's metrics on the test split computed from
the export's own runtime (not the Keras model), its size on disk and gzipped, and how long
one example takes.

A `Score` is `predict → {metric: value}`: `predict` is what the format's `load` returned (the
very runner verification used), run here over the whole test split in chunks. What a score
computes is the task's adapter's choice (exporters/stage.py, detection.py, generator.py):

    classification, regression, forecasting   every metric of `evaluation.metrics`
                                              (metrics/evaluate.py: scores), as evaluate does
    embedding                                 knn_accuracy from the export's embeddings of the
                                              training and test splits; reconstruction_mse
                                              needs the decoder, which the export has not
    detection                                 COCO mAP of the export's decoded boxes
    generation                                none: see generator.py

Sizes: `bytes` is the file (a folder: the sum of its files); `gzip_bytes` the file gzipped
at level 9 (a folder: a tar of its files in name order, mtimes zeroed, gzipped), so that an
int8 file's advantage over a float32 one is measured as it would travel.

Latency: one example (the first held-out input) through `predict`, two untimed calls first
(the first call of a SavedModel or a Keras model traces), then `export.latency_calls` timed
calls, each alone: median and p90 in milliseconds on this machine's CPU.
"""

from __future__ import annotations

import gzip
import io
import math
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dlpipe.exporters.base import Predict

Score = Callable[[Predict], dict[str, float]]
CHUNK = 256
"""Test examples per call of an export's runtime: bounded memory for any runtime and split."""
WARMUP = 2


def footprint(path: Path) -> dict[str, int]:
    """{"bytes", "gzip_bytes"} of an exported file or folder."""
    path = Path(path)
    if path.is_file():
        content = path.read_bytes()
        return {"bytes": len(content), "gzip_bytes": len(gzip.compress(content, compresslevel=9, mtime=0))}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w") as archive:
            for file in files:
                info = archive.gettarinfo(str(file), arcname=file.relative_to(path).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(file, "rb") as handle:
                    archive.addfile(info, handle)
    return {"bytes": sum(f.stat().st_size for f in files), "gzip_bytes": len(buffer.getvalue())}


def latency(predict: Predict, example: dict[str, np.ndarray], calls: int) -> dict | None:
    """Median and p90 milliseconds of `calls` single-example calls (None when `calls` is 0)."""
    if calls <= 0:
        return None
    for _ in range(WARMUP):
        predict(example)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        predict(example)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "calls": int(calls), "batch_size": 1}


def chunks(x: dict[str, np.ndarray], size: int = CHUNK) -> Iterator[dict[str, np.ndarray]]:
    rows = len(next(iter(x.values())))
    for start in range(0, rows, size):
        yield {name: values[start:start + size] for name, values in x.items()}


def run_split(predict: Predict, split) -> np.ndarray | dict[str, np.ndarray]:
    """The export's outputs for every example of a split, in order: from its arrays, or chunk
    by chunk from the file for a streamed split (data.streaming), whose `x` holds a sample only."""
    stream = getattr(split, "stream", None)
    parts = [predict(x) for x, _ in stream.batches()] if stream is not None else [predict(x) for x in chunks(split.x)]
    if isinstance(parts[0], dict):
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return np.concatenate([np.asarray(part) for part in parts])


def finite(values: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an undefined metric (ROC AUC with one class present) is null."""
    return {name: float(v) if math.isfinite(v) else None for name, v in values.items()}


def supervised(spec, data) -> Score | None:
    """Classification, regression and forecasting: the spec's metrics on the test split, as
    the evaluate stage computes them from the model (metrics/evaluate.py: scores)."""
    from dlpipe import tasks
    from dlpipe.metrics.evaluate import scores

    test = data.splits.get("test")
    if test is None or not len(test):
        return None
    n_classes = len(data.class_names) if data.class_names else None
    multi_label = spec.data.target.multi_label if spec.data.target is not None else False

    def score(predict: Predict) -> dict[str, float]:
        return scores(tasks.get(spec.task), spec.evaluation.metrics, test.y, run_split(predict, test), n_classes,
                      multi_label=multi_label, naive=test.naive)

    return score


EMBEDDING_UNSCORED = ("reconstruction_mse is not computed from an export: it needs the decoder, and the "
                      "export holds the encoder alone (metrics.json has the autoencoder's)")


def embedding(spec, data) -> tuple[Score | None, str | None]:
    """knn_accuracy from the export's own embeddings of the training split (the neighbours)
    and of the test split; the note says what is left out and why."""
    from dlpipe.metrics.embedding import knn_accuracy

    note = EMBEDDING_UNSCORED if "reconstruction_mse" in spec.evaluation.metrics else None
    test, train = data.splits.get("test"), data.splits.get("train")
    if "knn_accuracy" not in spec.evaluation.metrics or test is None or not len(test) or test.y is None:
        return None, note

    def score(predict: Predict) -> dict[str, float]:
        return {"knn_accuracy": knn_accuracy(run_split(predict, train), train.y, run_split(predict, test), test.y,
                                             spec.evaluation.knn_neighbors)}

    return score, note
