"""Spec pieces of the `detection` task: its two sources (generated shapes, a COCO-style
JSON file) and its model (`centernet`). They join the `data.source` and `model` unions in
data.py and model.py; cross-field checks live in checks.py (`check_detection`)."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import Field

from dlpipe.spec.base import Fraction, PositiveFloat, PositiveInt, StrictModel, Width
from dlpipe.spec.paths import FilePath, FolderPath

SHAPES = ("rectangle", "circle", "triangle")
BoxFormat = Literal["xyxy", "xywh"]
BoxUnits = Literal["pixels", "relative"]


class ShapesSource(StrictModel):
    """Generated detection data (task detection): filled rectangles, circles and triangles
    of random colours on noisy backgrounds, their boxes known exactly. Seeded by the spec's
    `seed`: the same seed draws the same images and boxes."""

    type: Literal["shapes"]
    """Picks this variant: generated shapes with known boxes."""
    images: Annotated[int, Field(ge=10)] = 600
    """Number of images drawn (before the split)."""
    image_size: Annotated[int, Field(ge=16, le=1024)] = 64
    """Side of the square RGB images, in pixels."""
    classes: Annotated[list[Literal["rectangle", "circle", "triangle"]], Field(min_length=1)] = list(SHAPES)
    """The shapes drawn; class i is the i-th listed."""
    min_objects: PositiveInt = 1
    """Fewest objects per image."""
    max_objects: PositiveInt = 3
    """Most objects per image."""
    min_size: Annotated[int, Field(ge=4)] = 10
    """Smallest object side, in pixels."""
    max_size: Annotated[int, Field(ge=4)] = 24
    """Largest object side, in pixels."""
    max_overlap: Fraction = 0.1
    """Largest IoU between two objects of one image (a draw that overlaps more is redrawn)."""
    noise: Annotated[float, Field(ge=0, le=128)] = 20.0
    """Standard deviation of the background's pixel noise (0–255 scale)."""


class CocoSource(StrictModel):
    """A COCO-style detection set: a JSON file with `images` (id, file_name, width,
    height), `annotations` (image_id, category_id, bbox) and `categories` (id, name), and
    a folder of image files. Images are resized to `image_size` × `image_size`; boxes
    scale with them. Relative paths are resolved against the spec's folder."""

    type: Literal["coco"]
    """Picks this variant: a COCO-style annotations file and an image folder."""
    annotations: FilePath
    """The JSON file."""
    images: FolderPath
    """The folder that `file_name` is relative to."""
    box_format: BoxFormat = "xywh"
    """How `bbox` is written: x, y, width, height (COCO's own) or x1, y1, x2, y2."""
    box_units: BoxUnits = "pixels"
    """`bbox` in pixels of the original image, or as fractions (0–1) of its width and height."""
    image_size: Annotated[int, Field(ge=16, le=1024)] = 128
    """Side of the square the images are resized to (the model's input)."""
    channels: Literal[1, 3] = 3
    """1: images are read as grayscale; 3: as RGB."""


class Decode(StrictModel):
    """How the model's maps become boxes (inside the exported model): local maxima of the
    class heatmaps (a peak is the highest value in its `peak_window` neighbourhood — this
    replaces non-maximum suppression), the best `max_detections`, those scoring at least
    `score_threshold` kept."""

    peak_window: Annotated[int, Field(ge=1, le=15)] = 3
    """Side of the neighbourhood (in output cells, odd) a peak must be the maximum of."""
    max_detections: Annotated[int, Field(ge=1, le=1000)] = 20
    """Boxes returned per image (padded: score 0, class -1 beyond those kept)."""
    score_threshold: Fraction = 0.05
    """Detections scoring below it are dropped (mAP is computed over what is kept)."""
    box_format: BoxFormat = "xyxy"
    """Boxes returned as x1, y1, x2, y2 or x, y, width, height."""
    box_units: BoxUnits = "pixels"
    """Boxes returned in input pixels, or as fractions (0–1) of the input side."""


class CenterNet(StrictModel):
    """A compact CenterNet-style detector (task detection; "Objects as Points"): a
    convolutional backbone that halves the image per block, a top-down path back to
    `stride`, and three heads per output cell — a heatmap per class (object centres), the
    box's width and height, and the centre's sub-cell offset. No anchors."""

    type: Literal["centernet"]
    """Picks this variant: the CenterNet-style detector."""
    filters: Annotated[list[Width], Field(min_length=2, max_length=1000)] = [16, 32, 64, 96]
    """Filters of each backbone block (two 3×3 convolutions); every block after the first
    starts with a stride-2 convolution, so block i sees the image at 1/2^i."""
    stride: Literal[1, 2, 4, 8, 16] = 4
    """Output stride: one heatmap cell per stride × stride pixels. At most 2^(blocks-1)."""
    head_filters: Width = 64
    """Width of the 3×3 convolution before each head's output."""
    batch_norm: bool = True
    """Batch normalization after each 3×3 convolution of the backbone and the top-down path (the
    heads have none)."""
    heatmap_weight: PositiveFloat = 1.0
    """Weight of the heatmap's focal loss in the training loss."""
    size_weight: Annotated[float, Field(ge=0)] = 0.1
    """Weight of the L1 loss of box sizes (in output cells) at object centres."""
    offset_weight: Annotated[float, Field(ge=0)] = 1.0
    """Weight of the L1 loss of centre offsets at object centres."""
    decode: Decode = Decode()
    """How the output maps are turned into boxes, scores and classes."""
