"""A compact CenterNet-style detector ("Objects as Points", Zhou et al. 2019), in
keras.layers / keras.ops only.

    image (0–255) → ×1/255 → backbone blocks (each after the first halves the size)
          → top-down path: upsample the deepest features, add a 1×1 projection of each
            shallower block's, until 1/stride
          → heads per cell: class heatmaps (sigmoid), box width/height (in cells), centre offset
    `maps` model: image → G × G × (K + 4), what training fits (loss: `centernet_loss`)
    detector:    image → {"boxes", "scores", "classes"} (`DecodeDetections`: peaks of the
                 heatmaps, top k, threshold) — model.keras and the SavedModel are this one.

Why not anchors (keras-hub RetinaNet): objects a few cells across, small images and a
2-core CPU; one heatmap cell per object needs no anchor sizing and no NMS.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

HEATMAP_PRIOR = 0.1
"""Initial heatmap probability everywhere (the focal loss is stable from there)."""


def _conv(x, filters, spec, name, strides=1):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=not spec.batch_norm,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    if spec.batch_norm:
        # momentum 0.9: the moving statistics settle in ~50 steps. With Keras's 0.99 a
        # 130-step run still kept a quarter of the initial statistics at inference
        # (400 shapes, 10 epochs: test map_50 0.09; with 0.9: 0.44).
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_maps_model(spec, image_shape: tuple[int, int, int], n_classes: int) -> keras.Model:
    """image → the raw maps (heatmap sigmoid, size, offset), concatenated on channels."""
    model = spec.model
    image = keras.Input(shape=image_shape, name="image", dtype="float32")
    x = layers.Rescaling(1 / 255, name="scale")(image)
    features = []
    for i, filters in enumerate(model.filters):
        x = _conv(x, filters, model, f"block{i + 1}a", strides=1 if i == 0 else 2)
        x = _conv(x, filters, model, f"block{i + 1}b")
        features.append(x)
    # Top-down: from the deepest block up to the output stride, adding lateral projections.
    level = int(np.log2(model.stride))
    width = model.head_filters
    x = layers.Conv2D(width, 1, name=f"lateral{len(features)}")(features[-1])
    for i in range(len(features) - 2, level - 1, -1):
        x = layers.UpSampling2D(2, name=f"up{i + 1}")(x)
        x = layers.Add(name=f"merge{i + 1}")([x, layers.Conv2D(width, 1, name=f"lateral{i + 1}")(features[i])])
        x = _conv(x, width, model, f"smooth{i + 1}")

    def head(name, channels, activation=None, bias=0.0):
        y = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_hidden")(x)
        return layers.Conv2D(channels, 1, activation=activation, name=name,
                             bias_initializer=keras.initializers.Constant(bias))(y)

    prior = float(np.log(HEATMAP_PRIOR / (1 - HEATMAP_PRIOR)))
    heatmap = head("heatmap", n_classes, "sigmoid", prior)
    size = head("size", 2, "relu", 1.0)
    offset = head("offset", 2, "sigmoid")
    maps = layers.Concatenate(name="maps")([heatmap, size, offset])
    return keras.Model(image, maps, name="centernet_maps")


def build_detector(spec, maps_model: keras.Model, n_classes: int) -> keras.Model:
    """The maps model with decoding on top (shares its weights)."""
    decode = spec.model.decode
    side = maps_model.input.shape[1]
    outputs = DecodeDetections(n_classes, spec.model.stride, side, decode.peak_window, decode.max_detections,
                               decode.score_threshold, decode.box_format, decode.box_units,
                               name="decode")(maps_model.output)
    return keras.Model(maps_model.input, outputs, name="centernet")


@keras.saving.register_keras_serializable(package="dlpipe")
class DecodeDetections(keras.layers.Layer):
    """Maps → the best `max_detections` boxes per image. A detection is a cell whose class
    score is the maximum of its `peak_window` neighbourhood (peak extraction, in place of
    NMS); box = (cell + offset) · stride ± size · stride / 2, clipped to the image. Below
    `score_threshold`: box 0, score 0, class -1."""

    def __init__(self, n_classes, stride, image_side, peak_window=3, max_detections=20, score_threshold=0.05,
                 box_format="xyxy", box_units="pixels", **kwargs):
        super().__init__(**kwargs)
        self.n_classes, self.stride, self.image_side = int(n_classes), int(stride), int(image_side)
        self.peak_window, self.max_detections = int(peak_window), int(max_detections)
        self.score_threshold = float(score_threshold)
        self.box_format, self.box_units = box_format, box_units

    def call(self, maps):
        k = self.n_classes
        grid_h, grid_w = maps.shape[1], maps.shape[2]
        heat, size, offset = maps[..., :k], maps[..., k:k + 2], maps[..., k + 2:k + 4]
        pooled = ops.max_pool(heat, pool_size=self.peak_window, strides=1, padding="same")
        peaks = ops.where(ops.equal(heat, pooled), heat, ops.zeros_like(heat))
        batch = ops.shape(maps)[0]
        flat = ops.reshape(peaks, (batch, grid_h * grid_w * k))
        if keras.backend.backend() == "jax":
            # jax.lax.top_k lowers to a StableHLO composite op that TensorFlow cannot load (a
            # SavedModel exported from JAX fails when run); a stable sort picks the same cells,
            # ties to the lower index as top_k does.
            index = ops.argsort(-flat, axis=-1)[:, :self.max_detections]
            scores = ops.take_along_axis(flat, index, axis=-1)
        else:
            scores, index = ops.top_k(flat, k=self.max_detections)
        classes = index % k
        cell = index // k
        row, col = cell // grid_w, cell % grid_w

        def at_cells(values):  # B × G·G × 2 read at each detection's cell → B × N × 2
            flat = ops.reshape(values, (batch, grid_h * grid_w, 2))
            return ops.take_along_axis(flat, ops.repeat(ops.expand_dims(cell, -1), 2, axis=-1), axis=1)

        wh, dxy = at_cells(size), at_cells(offset)
        s = float(self.stride)
        cx = (ops.cast(col, maps.dtype) + dxy[..., 0]) * s
        cy = (ops.cast(row, maps.dtype) + dxy[..., 1]) * s
        limit = float(self.image_side)
        x1 = ops.clip(cx - wh[..., 0] * s / 2, 0.0, limit)
        y1 = ops.clip(cy - wh[..., 1] * s / 2, 0.0, limit)
        x2 = ops.clip(cx + wh[..., 0] * s / 2, 0.0, limit)
        y2 = ops.clip(cy + wh[..., 1] * s / 2, 0.0, limit)
        if self.box_format == "xywh":
            x2, y2 = x2 - x1, y2 - y1
        boxes = ops.stack([x1, y1, x2, y2], axis=-1)
        if self.box_units == "relative":
            boxes = boxes / limit
        keep = scores >= self.score_threshold
        return {
            "boxes": ops.where(ops.expand_dims(keep, -1), boxes, ops.zeros_like(boxes)),
            "scores": ops.where(keep, scores, ops.zeros_like(scores)),
            "classes": ops.where(keep, ops.cast(classes, "int32"), -ops.ones_like(classes, dtype="int32")),
        }

    def compute_output_spec(self, maps):
        n = self.max_detections
        batch = maps.shape[0]
        return {"boxes": keras.KerasTensor((batch, n, 4), dtype=maps.dtype),
                "scores": keras.KerasTensor((batch, n), dtype=maps.dtype),
                "classes": keras.KerasTensor((batch, n), dtype="int32")}

    def get_config(self):
        return {**super().get_config(), "n_classes": self.n_classes, "stride": self.stride,
                "image_side": self.image_side, "peak_window": self.peak_window,
                "max_detections": self.max_detections, "score_threshold": self.score_threshold,
                "box_format": self.box_format, "box_units": self.box_units}


def detection_loss(spec, n_classes: int):
    """Task detection's loss (dlpipe/tasks/detection.py `loss_factory`), weighted by the spec's model."""
    return centernet_loss(n_classes, spec.model.heatmap_weight, spec.model.size_weight, spec.model.offset_weight)


def centernet_loss(n_classes: int, heatmap_weight: float = 1.0, size_weight: float = 0.1,
                   offset_weight: float = 1.0):
    """Per-image loss of `y_pred` (B × G × G × (K+4) maps) against `centernet_targets`:
    the penalty-reduced focal loss of CenterNet on the heatmaps (α = 2, β = 4) plus L1 on
    size and offset at object centres, each summed over the image and divided by the
    batch's mean object count, so the batch mean is CenterNet's per-object loss."""
    k = n_classes

    def loss(y_true, y_pred):
        heat_true, mask = y_true[..., :k], y_true[..., k + 4:k + 5]
        heat = ops.clip(y_pred[..., :k], 1e-4, 1 - 1e-4)
        positive = ops.cast(ops.equal(heat_true, 1.0), heat.dtype)
        focal = positive * ops.log(heat) * ops.square(1 - heat) + \
            (1 - positive) * ops.log(1 - heat) * ops.square(heat) * ops.power(1 - heat_true, 4)
        per_image_objects = ops.sum(mask, axis=(1, 2, 3))
        mean_objects = ops.maximum(ops.mean(per_image_objects), 1.0 / ops.cast(ops.shape(y_true)[0], heat.dtype))
        size = ops.sum(ops.abs(y_pred[..., k:k + 2] - y_true[..., k:k + 2]) * mask, axis=(1, 2, 3))
        offset = ops.sum(ops.abs(y_pred[..., k + 2:k + 4] - y_true[..., k + 2:k + 4]) * mask, axis=(1, 2, 3))
        total = -heatmap_weight * ops.sum(focal, axis=(1, 2, 3)) + size_weight * size + offset_weight * offset
        return total / mean_objects

    return loss
