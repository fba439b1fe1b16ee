"""Detection data: images with boxes and classes, from generated shapes or a COCO-style
JSON file; seeded split; the training targets of a CenterNet-style detector.

Boxes are kept as x1, y1, x2, y2 in pixels of the (resized) image everywhere inside dlpipe;
the spec's box formats are converted at the edges (reading COCO, decoding outputs).
No TensorFlow here: the data stage runs before it is imported.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlpipe import readlog
from dlpipe.data.splits import split_indices
from dlpipe.errors import DataError


@dataclass
class DetectionSplit:
    images: np.ndarray
    """N × H × W × C, uint8."""
    boxes: list[np.ndarray]
    """Per image, n × 4 x1, y1, x2, y2 in pixels."""
    labels: list[np.ndarray]
    """Per image, n class indices."""
    rows: np.ndarray
    """Indices into the source (image order of the JSON file, or generation order)."""

    def __len__(self) -> int:
        return len(self.images)

    def ground_truth(self) -> list[dict]:
        return [{"boxes": b, "labels": c} for b, c in zip(self.boxes, self.labels)]


@dataclass
class DetectionData:
    class_names: list[str]
    splits: dict[str, DetectionSplit]
    image_shape: tuple[int, int, int]
    fingerprint: str
    origin: str
    names: list[str] = field(default_factory=list)
    """A name per source image (file name, or shape-NNNN)."""

    def describe(self) -> dict:
        objects = {name: int(sum(len(b) for b in split.boxes)) for name, split in self.splits.items()}
        return {"origin": self.origin, "fingerprint": self.fingerprint, "task": "detection",
                "class_names": self.class_names, "image_shape": list(self.image_shape),
                "box_format": "xyxy", "box_units": "pixels",
                "split_sizes": {name: len(split) for name, split in self.splits.items()},
                "objects": objects}


def prepare_detection(spec, base_dir: Path, located) -> DetectionData:
    source = spec.data.source
    if source.type == "shapes":
        images, boxes, labels = generate_shapes(source, spec.seed)
        class_names, names = list(source.classes), [f"shape-{i:04d}" for i in range(len(images))]
        origin = f"shapes (seed {spec.seed})"
    else:
        images, boxes, labels, class_names, names = read_coco(source, base_dir)
        origin = str((base_dir / source.annotations).resolve())
    split = spec.data.split
    fractions = {"train": split.train, "validation": split.validation, "test": split.test}
    indices = split_indices(len(images), fractions, spec.seed)
    for name in ("train", "test"):
        if len(indices[name]) == 0:
            raise located(("data", "split", name), f"the {name} split of {len(images)} images is empty")
    splits = {name: DetectionSplit(images[idx], [boxes[i] for i in idx], [labels[i] for i in idx], idx)
              for name, idx in indices.items()}
    digest = hashlib.sha256(images.tobytes())
    for b, c in zip(boxes, labels):
        digest.update(b.astype(np.float64).tobytes() + c.astype(np.int64).tobytes())
    return DetectionData(class_names, splits, tuple(images.shape[1:]), "sha256:" + digest.hexdigest(), origin, names)


# --- generated shapes --------------------------------------------------------------------


def _shape_mask(kind: str, size_x: int, size_y: int) -> np.ndarray:
    """A size_y × size_x mask of the shape inscribed in the box, tested at pixel centres."""
    y, x = np.mgrid[0:size_y, 0:size_x]
    u, v = (x + 0.5) / size_x, (y + 0.5) / size_y  # pixel centres in 0..1
    if kind == "rectangle":
        return np.ones((size_y, size_x), bool)
    if kind == "circle":  # an ellipse filling the box
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    return np.abs(u - 0.5) <= 0.5 * v + 0.5 / size_x  # apex at the top middle, base at the bottom


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight box of a mask: first column, first row, last column + 1, last row + 1."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def generate_shapes(source, seed: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """`source.images` RGB images with 1..n filled shapes each; the same seed draws the
    same images. Boxes are the exact pixel extent of each shape as drawn (x2, y2 exclusive);
    a later shape may cover part of an earlier one (at most `max_overlap` IoU)."""
    rng = np.random.default_rng([seed, 0x5A4E5])
    side = source.image_size
    images = np.empty((source.images, side, side, 3), np.uint8)
    all_boxes, all_labels = [], []
    for n in range(source.images):
        background = rng.uniform(0, 255, 3)
        canvas = background + rng.normal(0, source.noise, (side, side, 3)) if source.noise else \
            np.broadcast_to(background, (side, side, 3)).copy()
        boxes, labels = [], []
        for _ in range(int(rng.integers(source.min_objects, source.max_objects + 1))):
            for _attempt in range(30):
                w, h = (int(v) for v in rng.integers(source.min_size, source.max_size + 1, 2))
                x, y = int(rng.integers(0, side - w + 1)), int(rng.integers(0, side - h + 1))
                box = np.array([x, y, x + w, y + h], np.float64)
                if all(_iou(box, other) <= source.max_overlap for other in boxes):
                    break
            else:
                continue  # no room for another object in this image
            label = int(rng.integers(len(source.classes)))
            colour = rng.uniform(0, 255, 3)
            while np.abs(colour - background).sum() < 150:  # visible against the background
                colour = rng.uniform(0, 255, 3)
            mask = _shape_mask(source.classes[label], w, h)
            canvas[y:y + h, x:x + w][mask] = colour
            left, top, right, bottom = _extent(mask)  # the box is what was drawn, to the pixel
            boxes.append(np.array([x + left, y + top, x + right, y + bottom], np.float64))
            labels.append(label)
        images[n] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        all_boxes.append(np.array(boxes, np.float64).reshape(-1, 4))
        all_labels.append(np.array(labels, np.int64))
    return images, all_boxes, all_labels


# --- COCO-style JSON ---------------------------------------------------------------------


class _Json:
    """A parsed JSON file whose errors point at the line and column of the entry at fault.

    json parses (fast, also large files); only when an error is raised is the text composed
    again by dlpipe's YAML loader (JSON is YAML) to find where the entry was written."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def fail(self, key: tuple, message: str):
        from dlpipe.spec.loader import format_path, parse

        where = str(self.path)
        try:
            _, line, column = parse(self.text, str(self.path)).value_position(key)
            where = f"{where}:{line}:{column}"
        except Exception:  # noqa: BLE001 — no position is still a useful message
            pass
        raise DataError(f"{where}: {format_path(key)}: {message}" if key else f"{where}: {message}")

    def entries(self, document: dict, key: str) -> list:
        value = document.get(key)
        if not isinstance(value, list):
            self.fail((key,) if key in document else (), f"expected a list under {key!r}, got "
                      f"{type(value).__name__ if key in document else 'nothing'}")
        if not value and key != "annotations":
            self.fail((key,), f"{key!r} is empty")
        return value

    def field(self, entry, key: tuple, name: str, kind):
        if not isinstance(entry, dict) or name not in entry:
            self.fail(key, f"missing {name!r}")
        value = entry[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            self.fail((*key, name), f"expected {'an integer' if kind is int else 'text' if kind is str else 'a list'}, "
                      f"got {value!r}")
        return value


def read_coco(source, base_dir: Path):
    """Images (resized to the spec's square), boxes as xyxy pixels of the resized image,
    class indices (categories in id order), class names, file names."""
    from PIL import Image, UnidentifiedImageError

    from dlpipe.data.sources import eight_bit, open_image

    path = (base_dir / source.annotations)
    folder = (base_dir / source.images)
    readlog.named(source.images, base_dir)  # listed: the folder the spec names
    readlog.opened(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    coco = _Json(path, text)
    if not isinstance(document, dict):
        coco.fail((), "expected a JSON object with images, annotations and categories")

    categories = coco.entries(document, "categories")
    category_ids = [coco.field(c, ("categories", i), "id", int) for i, c in enumerate(categories)]
    for i, category in enumerate(category_ids):
        if category in category_ids[:i]:
            coco.fail(("categories", i, "id"), f"category id {category} is used twice")
    order = sorted(range(len(categories)), key=lambda i: category_ids[i])
    class_of = {category_ids[i]: k for k, i in enumerate(order)}
    class_names = [coco.field(categories[i], ("categories", i), "name", str) for i in order]

    images_meta = coco.entries(document, "images")
    position, sizes, files = {}, [], []
    for i, entry in enumerate(images_meta):
        image_id = coco.field(entry, ("images", i), "id", int)
        if image_id in position:
            coco.fail(("images", i, "id"), f"image id {image_id} is used twice")
        position[image_id] = i
        name = coco.field(entry, ("images", i), "file_name", str)
        width, height = (coco.field(entry, ("images", i), key, int) for key in ("width", "height"))
        if width <= 0 or height <= 0:
            coco.fail(("images", i), f"width and height must be positive, got {width} × {height}")
        file = folder / name
        if not file.is_file():
            coco.fail(("images", i, "file_name"), f"image file {name!r} not found in {folder}")
        sizes.append((width, height))
        files.append(file)

    side = source.image_size
    boxes: list[list] = [[] for _ in images_meta]
    labels: list[list] = [[] for _ in images_meta]
    for i, entry in enumerate(coco.entries(document, "annotations")):
        image_id = coco.field(entry, ("annotations", i), "image_id", int)
        category = coco.field(entry, ("annotations", i), "category_id", int)
        bbox = coco.field(entry, ("annotations", i), "bbox", list)
        if image_id not in position:
            coco.fail(("annotations", i, "image_id"), f"image id {image_id} is not in 'images'")
        if category not in class_of:
            coco.fail(("annotations", i, "category_id"), f"category id {category} is not in 'categories'")
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                     for v in bbox):
            coco.fail(("annotations", i, "bbox"), f"expected 4 finite numbers, got {bbox!r}")
        k = position[image_id]
        width, height = sizes[k]
        x1, y1, a, b = (float(v) for v in bbox)
        x2, y2 = (x1 + a, y1 + b) if source.box_format == "xywh" else (a, b)
        if source.box_units == "relative":
            x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
        if x2 <= x1 or y2 <= y1:
            coco.fail(("annotations", i, "bbox"), f"{bbox} has no area as {source.box_format} "
                      "(data.source.box_format)")
        slack = 0.5  # half a pixel of rounding is forgiven and clipped
        if x1 < -slack or y1 < -slack or x2 > width + slack or y2 > height + slack:
            coco.fail(("annotations", i, "bbox"), f"{bbox} ({source.box_format}, {source.box_units}) lies outside "
                      f"image id {image_id} ({width} × {height})")
        x1, x2 = max(x1, 0.0), min(x2, float(width))
        y1, y2 = max(y1, 0.0), min(y2, float(height))
        boxes[k].append([x1 * side / width, y1 * side / height, x2 * side / width, y2 * side / height])
        labels[k].append(class_of[category])

    mode = "RGB" if source.channels == 3 else "L"
    images = np.empty((len(files), side, side, source.channels), np.uint8)
    for k, file in enumerate(files):
        readlog.opened(file)
        try:
            with open_image(file) as image:
                if image.size != sizes[k]:
                    coco.fail(("images", k), f"{file.name} is {image.size[0]} × {image.size[1]} pixels, "
                              f"the entry says {sizes[k][0]} × {sizes[k][1]}")
                pixels = np.asarray(Image.fromarray(eight_bit(image, mode, str(file))).resize((side, side),
                                                                                             Image.BILINEAR))
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"{file}: cannot read as an image: {err}") from None
        images[k] = pixels.reshape(side, side, source.channels)
    return (images, [np.array(b, np.float64).reshape(-1, 4) for b in boxes],
            [np.array(c, np.int64) for c in labels], class_names, [f.name for f in files])


# --- training targets --------------------------------------------------------------------


def centernet_targets(boxes: list[np.ndarray], labels: list[np.ndarray], image_side: int, stride: int,
                      n_classes: int) -> np.ndarray:
    """N × G × G × (K + 5), G = side / stride: per class a Gaussian heatmap peaking at 1 on
    each object's centre cell, then at centre cells the box width and height (in cells),
    the centre's offset within its cell (x, y) and a 1 marking the cell."""
    grid = image_side // stride
    out = np.zeros((len(boxes), grid, grid, n_classes + 5), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid]
    for n, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
        for (x1, y1, x2, y2), label in zip(image_boxes, image_labels):
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            w, h = (x2 - x1) / stride, (y2 - y1) / stride
            col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
            sx, sy = max(w / 6, 0.4), max(h / 6, 0.4)
            blob = np.exp(-((xs - col) ** 2 / (2 * sx * sx) + (ys - row) ** 2 / (2 * sy * sy)))
            out[n, :, :, label] = np.maximum(out[n, :, :, label], blob)
            out[n, row, col, label] = 1.0
            out[n, row, col, n_classes:] = (w, h, cx - col, cy - row, 1.0)
    return out
