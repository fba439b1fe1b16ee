"""COCO-style mean average precision for object detection.

The same numbers as pycocotools' COCOeval (iouType "bbox") reports in stats[0], [1], [2]
for area "all" and 100 detections, computed here without it:

- IoU thresholds .50, .55, ..., .95; recall thresholds 0, .01, ..., 1 (101 points).
- Per image and class, detections are ranked by score (ties keep their input order) and
  only the first `max_detections` count.
- At each threshold a detection, best score first, takes the still unmatched ground-truth
  box of its class with the highest IoU at or above the threshold (ties: the later box).
- Per class, the detections of all images are ranked by score; precision is made
  monotone (each point takes the best precision at any higher recall) and read at each
  recall threshold, 0 beyond the highest recall reached.
- AP of a class = the mean over IoU and recall thresholds. A class without ground truth
  in any image has no AP (NaN here, -1 in COCOeval) and is left out of the mean.

No crowd boxes and no area ranges: every box counts. Boxes are (x1, y1, x2, y2) corners by
default, or (x, y, width, height) with box_format="xywh" (COCO's own), in any unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Built exactly as COCOeval builds them, so that `== .75` finds the same entry.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
BOX_FORMATS = ("xyxy", "xywh")


@dataclass(frozen=True)
class DetectionScores:
    map: float
    """AP averaged over IoU thresholds .50:.95 and over classes with ground truth."""
    map_50: float
    map_75: float
    per_class: dict[int, float]
    """AP@[.50:.95] of each class seen in the ground truth or the predictions; NaN for a
    class without ground truth."""

    def metrics(self) -> dict[str, float]:
        return {"map": self.map, "map_50": self.map_50, "map_75": self.map_75}


def _xywh(boxes, box_format: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if box_format == "xywh":
        return boxes
    if box_format != "xyxy":
        raise ValueError(f"box_format: expected one of {', '.join(BOX_FORMATS)}, got {box_format!r}")
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)


def iou(detections: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """D × G intersection over union of xywh boxes (the same operations, in the same
    order, as pycocotools' C code, so that threshold decisions agree to the last bit)."""
    d, g = detections[:, None, :], truths[None, :, :]
    width = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    height = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    overlap = (width > 0) & (height > 0)
    intersection = np.where(overlap, width * height, 0.0)
    union = d[..., 2] * d[..., 3] + g[..., 2] * g[..., 3] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=overlap)


def _match(ious: np.ndarray) -> np.ndarray:
    """T × D: whether each detection (best score first) matched a box at each threshold."""
    n_detections, n_truths = ious.shape
    matched = np.zeros((len(IOU_THRESHOLDS), n_detections), dtype=bool)
    if n_truths == 0:
        return matched
    for t, threshold in enumerate(IOU_THRESHOLDS):
        floor = min(threshold, 1 - 1e-10)
        taken = np.zeros(n_truths, dtype=bool)
        for d in range(n_detections):
            candidates = np.where(taken, -np.inf, ious[d])
            best = candidates.max()
            if best >= floor:
                g = n_truths - 1 - int(np.argmax(candidates[::-1] == best))  # the last of equals
                taken[g] = True
                matched[t, d] = True
    return matched


def _precision(scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, n_truths: int) -> np.ndarray:
    """T × R interpolated precision of one class over all images."""
    order = np.argsort(-scores, kind="mergesort")
    matched, ignored = matched[:, order], ignored[:, order]
    true_positives = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    false_positives = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    out = np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)))
    for t in range(len(IOU_THRESHOLDS)):
        tp, fp = true_positives[t], false_positives[t]
        recall = tp / n_truths
        precision = tp / (fp + tp + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
        inside = at < len(precision)
        out[t, inside] = precision[at[inside]]
    return out


def _image(entry: Mapping, with_scores: bool, box_format: str, index: int, what: str):
    boxes = _xywh(entry["boxes"], box_format)
    labels = np.asarray(entry["labels"]).reshape(-1).astype(np.int64)
    scores = np.asarray(entry["scores"], dtype=np.float64).reshape(-1) if with_scores else None
    if len(labels) != len(boxes) or (scores is not None and len(scores) != len(boxes)):
        sizes = f"{len(boxes)} boxes, {len(labels)} labels" + (f", {len(scores)} scores" if with_scores else "")
        raise ValueError(f"{what}[{index}]: {sizes}; expected one of each per box")
    if not with_scores and (boxes[:, 2:] < 0).any():
        box = int(np.flatnonzero((boxes[:, 2:] < 0).any(axis=1))[0])
        raise ValueError(f"{what}[{index}]: box {box} has a negative width or height "
                         f"({boxes[box, 2]:g} × {boxes[box, 3]:g}); is box_format {box_format!r} right?")
    return boxes, labels, scores


def mean_average_precision(ground_truth: Sequence[Mapping], predictions: Sequence[Mapping], *,
                           box_format: str = "xyxy", max_detections: int = 100) -> DetectionScores:
    """`ground_truth[i]` = {"boxes": (n, 4), "labels": (n,)} for image i;
    `predictions[i]` = {"boxes": (m, 4), "scores": (m,), "labels": (m,)} for the same image."""
    if len(ground_truth) != len(predictions):
        raise ValueError(f"ground truth for {len(ground_truth)} images, predictions for {len(predictions)}")
    truths = [_image(e, False, box_format, i, "ground_truth") for i, e in enumerate(ground_truth)]
    detections = [_image(e, True, box_format, i, "predictions") for i, e in enumerate(predictions)]
    classes = sorted({int(c) for _, labels, _ in truths + detections for c in labels})

    per_class: dict[int, float] = {}
    curves = {}
    for c in classes:
        scores, matched, ignored, n_truths = [], [], [], 0
        for (gt_boxes, gt_labels, _), (dt_boxes, dt_labels, dt_scores) in zip(truths, detections):
            gt = gt_boxes[gt_labels == c]
            dt, score = dt_boxes[dt_labels == c], dt_scores[dt_labels == c]
            top = np.argsort(-score, kind="mergesort")[:max_detections]
            dt, score = dt[top], score[top]
            n_truths += len(gt)
            scores.append(score)
            matched.append(_match(iou(dt, gt)))
            # COCO's area range "all" is [0, 1e10]: an unmatched detection whose w·h falls
            # outside (a box with one negative side) is ignored, neither hit nor miss.
            area = dt[:, 2] * dt[:, 3]
            ignored.append(~matched[-1] & ((area < 0) | (area > 1e10)))
        if n_truths == 0:
            per_class[c] = float("nan")
            continue
        curves[c] = _precision(np.concatenate(scores), np.concatenate(matched, axis=1),
                               np.concatenate(ignored, axis=1), n_truths)
        per_class[c] = float(curves[c].mean())

    if not curves:
        nan = float("nan")
        return DetectionScores(nan, nan, nan, per_class)
    stacked = np.stack(list(curves.values()), axis=-1)  # T × R × classes
    at_50, at_75 = (int(np.flatnonzero(IOU_THRESHOLDS == t)[0]) for t in (0.5, 0.75))
    return DetectionScores(map=float(stacked.mean()), map_50=float(stacked[at_50].mean()),
                           map_75=float(stacked[at_75].mean()), per_class=per_class)


# Registered metrics (`map` is map_50_95): (ground_truth, predictions) → a number, boxes
# as x1, y1, x2, y2.


def map_50_95(ground_truth: Sequence[Mapping], predictions: Sequence[Mapping]) -> float:
    return mean_average_precision(ground_truth, predictions).map


def map_50(ground_truth: Sequence[Mapping], predictions: Sequence[Mapping]) -> float:
    return mean_average_precision(ground_truth, predictions).map_50


def map_75(ground_truth: Sequence[Mapping], predictions: Sequence[Mapping]) -> float:
    return mean_average_precision(ground_truth, predictions).map_75


def kept_detections(outputs: Mapping, decode, side: int) -> list[dict]:
    """A detector's batch outputs ({"boxes", "scores", "classes"}, classes -1 where nothing was
    kept) → per image {"boxes" (x1, y1, x2, y2 in pixels), "scores", "labels"}, as
    `mean_average_precision` takes them. `decode`: the spec's model.decode (box format, units)."""
    out = []
    for b, s, c in zip(*(np.asarray(outputs[k]) for k in ("boxes", "scores", "classes"))):
        kept = c >= 0
        out.append({"boxes": to_xyxy_pixels(b[kept], decode.box_format, decode.box_units, side),
                    "scores": s[kept].astype(np.float64), "labels": c[kept].astype(np.int64)})
    return out


def to_xyxy_pixels(boxes: np.ndarray, box_format: str, box_units: str, side: int) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if box_units == "relative":
        boxes = boxes * side
    if box_format == "xywh":
        boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    return boxes
