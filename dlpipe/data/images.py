"""The data of task generation: one image column, split; optionally a class per image
(a class-conditioned GAN or diffusion model) and the labels that train the feature extractor of FID.

Images are checked (numbers, finite, one fixed shape) and kept in the data's own units; the
value range of the training split (`low`, `high`) becomes the scaling to and from −1..1
inside the model (a GAN's networks, a diffusion model's training step and sampler).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe.data.prepare import _fingerprint, _labels
from dlpipe.data.sources import load_source
from dlpipe.data.splits import split_indices, split_record
from dlpipe.errors import DataError, did_you_mean


@dataclass
class ImageData:
    feature: str
    images: dict[str, np.ndarray]
    """Per split (train, validation, test): N × H × W × C float32, the data's own units."""
    labels: dict[str, np.ndarray] | None
    """Per split: class indices of `data.target` (a class-conditioned model), else None."""
    class_names: list[str] | None
    extractor_labels: dict[str, np.ndarray] | None
    """Per split: class indices of the feature extractor's label column (type classifier)."""
    extractor_classes: list[str] | None
    low: float
    high: float
    fingerprint: str
    origin: str
    splits: dict | None = None
    """What splits.json holds (data/splits.py: split_record)."""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images["train"].shape[1:])

    def describe(self) -> dict:
        return {"origin": self.origin, "fingerprint": self.fingerprint, "task": "generation",
                "features": [{"name": self.feature, "type": "image", "shape": list(self.shape),
                              "normalization": f"{self.low:g}..{self.high:g} → −1..1 (inside the model)",
                              "value_range": [self.low, self.high]}],
                "target": "none (unconditional)" if self.class_names is None else "class (class-conditioned model)",
                "class_names": self.class_names,
                "split_sizes": {name: int(len(images)) for name, images in self.images.items()}}


def prepare_images(spec, base_dir: Path, located) -> ImageData:
    table = load_source(spec.data.source, base_dir)
    if len(table) == 0:
        raise DataError(f"{table.origin}: the dataset is empty")
    feature = spec.data.features[0].name
    if feature not in table.columns:
        hint = did_you_mean(feature, table.columns) or f"; columns are: {', '.join(table.columns)}"
        raise located(("data", "features", 0, "name"), f"no column {feature!r} in {table.origin}{hint}")
    images = _images(table, feature)
    labels = class_names = None
    source_rows = np.arange(len(table))  # rows of the source, kept when labels drop some
    if spec.data.target is not None:
        if spec.data.target.name not in table.columns:
            hint = did_you_mean(spec.data.target.name, table.columns) or f"; columns are: {', '.join(table.columns)}"
            raise located(("data", "target", "name"), f"no column {spec.data.target.name!r} in {table.origin}{hint}")
        labels, class_names, keep = _labels(spec, table, spec.data.target.name, base_dir, located)
        if not keep.all():  # data.target.on_unknown: drop
            rows = np.flatnonzero(keep)
            table.columns = {name: values[rows] for name, values in table.columns.items()}
            images, labels, source_rows = images[rows], labels[rows], source_rows[rows]
    extractor = spec.evaluation.generation.feature_extractor
    extractor_labels = extractor_classes = None
    if extractor.type == "classifier":
        if extractor.labels not in table.columns:
            hint = did_you_mean(extractor.labels, table.columns) or f"; columns are: {', '.join(table.columns)}"
            raise located(("evaluation", "generation", "feature_extractor", "labels"),
                          f"no column {extractor.labels!r} in {table.origin}{hint}")
        values = table.columns[extractor.labels]
        if values.ndim != 1:
            raise located(("evaluation", "generation", "feature_extractor", "labels"),
                          f"column {extractor.labels!r} holds {values.shape[1:]} values per row, not one class")
        classes, extractor_labels = np.unique(values.astype(str) if values.dtype.kind not in "iub" else values,
                                              return_inverse=True)
        if len(classes) < 2:
            raise DataError(f"{table.origin}: column {extractor.labels!r} has a single class; the feature "
                            "extractor needs at least two")
        extractor_classes = [str(c) for c in classes]
    fractions = {"train": spec.data.split.train, "validation": spec.data.split.validation,
                 "test": spec.data.split.test}
    index = split_indices(len(table), fractions, spec.seed, labels if spec.data.split.stratify else None)
    for name in ("train", "test"):
        if len(index[name]) < 2:
            raise located(("data", "split", name), f"the {name} split of {len(table)} images holds "
                          f"{len(index[name])}; FID needs at least 2")
    train = images[index["train"]]
    low, high = float(train.min()), float(train.max())
    if high <= low:
        raise DataError(f"{table.origin}: column {feature!r}: every training pixel is {low:g}; nothing to learn")

    def by_split(values):
        return None if values is None else {name: values[rows] for name, rows in index.items()}

    return ImageData(feature=feature, images=by_split(images), labels=by_split(labels), class_names=class_names,
                     extractor_labels=by_split(extractor_labels), extractor_classes=extractor_classes,
                     low=low, high=high, fingerprint=_fingerprint(spec, table), origin=table.origin,
                     splits=split_record(table.origin, {name: source_rows[rows] for name, rows in index.items()},
                                         table))  # the table's row_files still count the source's rows


def _images(table, name: str) -> np.ndarray:
    values = table.columns[name]
    if values.dtype == object or values.ndim not in (3, 4):
        raise DataError(f"{table.origin}: column {name!r} holds {values.shape[1:] or 'single values'} per row "
                        "(or values of mixed shapes); task generation needs images, height × width "
                        "(× channels) per row")
    if values.dtype.kind not in "iufb":
        raise DataError(f"{table.origin}: column {name!r}: images must hold numbers, not {values.dtype}")
    images = values.astype(np.float32)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    bad = ~np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{table.origin}: row {row + table.row_offset}, column {name!r}: the image holds "
                        "NaN or infinite values")
    return images
