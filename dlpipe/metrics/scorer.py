"""The extractor FID reads, as one object: images → (features, class probabilities or None).

A `Scorer` wraps a one-input Keras model with outputs [features] or [features,
probabilities] and runs it in fixed batches, after an optional preparation of each batch
(InceptionV3's: `inception_input`). A generation run saves it (`save`: the model as
feature_extractor.keras, the batch size and preparation in feature_extractor.json) and
metrics/fid.py loads it back, so FID is recomputed with the same network and the same batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe import progress
from dlpipe.errors import DataError

EXTRACTOR_FILE = "feature_extractor.keras"
EXTRACTOR_INFO = "feature_extractor.json"


class Scorer:
    """images → (features N × D float64, class probabilities N × K or None).

    `model` takes one input and gives [features] or [features, probabilities]; `prepare`
    (optional) is applied to each batch first: {"size": S, "low": L, "high": H} resizes to
    S × S (grey → 3 channels) and scales L..H to −1..1, as for InceptionV3. The same
    batches in the run and when recomputed, so both give the same numbers."""

    def __init__(self, model, *, batch_size: int = 512, prepare: dict | None = None, info: dict | None = None):
        self.model, self.batch_size, self.prepare = model, batch_size, prepare
        self.info = dict(info or {})

    @property
    def probabilities(self) -> bool:
        """Whether the extractor gives class probabilities (what the Inception Score reads)."""
        return len(self.model.outputs) > 1

    def __call__(self, images: np.ndarray):
        images = np.asarray(images, dtype=np.float32)
        features, probabilities = [], []
        with progress.task("FID features", total=len(images), unit="images") as step:
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size]
                if self.prepare is not None:
                    batch = inception_input(batch, **self.prepare)
                outputs = self.model(batch, training=False)
                outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
                features.append(np.asarray(outputs[0], dtype=np.float64).reshape(len(batch), -1))
                if len(outputs) > 1:
                    probabilities.append(np.asarray(outputs[1], dtype=np.float64).reshape(len(batch), -1))
                step.advance(len(batch))
        if not features:
            raise DataError("FID: no images to extract features from")
        if not probabilities:
            return np.concatenate(features), None
        probabilities = np.concatenate(probabilities)
        if probabilities.shape[1] == 1:  # one sigmoid: the probabilities of classes 0 and 1
            probabilities = np.concatenate([1 - probabilities, probabilities], axis=1)
        return np.concatenate(features), probabilities

    def save(self, run_dir: Path) -> dict:
        """feature_extractor.keras and feature_extractor.json into `run_dir`: all that
        `load_scorer` needs. Returns what was written (for generation.json)."""
        from dlpipe.rundir import atomic_path, atomic_write_json

        with atomic_path(Path(run_dir) / EXTRACTOR_FILE) as tmp:
            self.model.save(tmp)
        described = {"file": EXTRACTOR_FILE, "batch_size": self.batch_size, "prepare": self.prepare,
                     "outputs": ["features", "probabilities"][:len(self.model.outputs)], **self.info}
        atomic_write_json(Path(run_dir) / EXTRACTOR_INFO, described)
        return described


def inception_input(images: np.ndarray, *, size: int, low: float, high: float):
    """A batch as InceptionV3 reads it: N × size × size × 3, values −1..1 (from low..high)."""
    from keras import ops

    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"InceptionV3 features need images N × H × W × 1 or 3, got shape {images.shape}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    resized = ops.image.resize(images, (size, size), interpolation="bilinear", antialias=False)
    return resized * (2.0 / (high - low)) - (2.0 * low / (high - low) + 1.0)
