"""COCO mAP against pycocotools' COCOeval on generated detection cases."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from dlpipe.metrics import detection
from dlpipe.metrics.detection import mean_average_precision

N_CASES = 60


def generate(seed: int):
    """Images with boxes of several classes, and predictions mixing near hits, wrong
    classes, confident false positives, duplicates, exact copies and empty images."""
    rng = np.random.default_rng(seed)
    n_images, n_classes = int(rng.integers(1, 9)), int(rng.integers(1, 6))
    skill = rng.uniform()  # from a detector that is mostly wrong to one that is mostly right
    truths, predictions = [], []
    for _ in range(n_images):
        n = 0 if rng.random() < 0.2 else int(rng.integers(1, 9))  # some images have no ground truth
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(2, 40, (n, 2))
        gt_boxes, gt_labels = np.concatenate([xy, wh], axis=1), rng.integers(0, n_classes, n)
        boxes, labels, scores = [], [], []
        for box, label in zip(gt_boxes, gt_labels):
            for _ in range(int(rng.integers(0, 3)) if rng.random() > skill else 1):  # 0: a miss, 2: a duplicate
                spread = rng.choice([0.5, 3.0, 8.0], p=[skill, (1 - skill) / 2, (1 - skill) / 2])
                jitter = rng.normal(0, spread, 4) * [1, 1, 0.5, 0.5]
                guess = box if rng.random() < 0.1 else box + jitter  # an exact copy: IoU 1
                guess[2:] = np.maximum(guess[2:], 0.5)
                boxes.append(guess)
                labels.append(label if rng.random() < 0.85 else rng.integers(0, n_classes))
                scores.append(rng.uniform(0.05, 0.9) * (0.5 + skill / 2) + skill / 10)
        for _ in range(int(rng.integers(0, 6) * (1 - skill))):  # false positives, often ranked above hits
            boxes.append(np.concatenate([rng.uniform(0, 100, 2), rng.uniform(2, 40, 2)]))
            labels.append(rng.integers(0, n_classes))
            scores.append(rng.uniform(0.5, 1.0))
        if seed % 10 == 3 and n:  # many boxes: more than the 100 per image and class that count
            for _ in range(130):  # some with a negative side: COCO ignores those unless they match
                boxes.append(gt_boxes[0] + rng.normal(0, 4, 4) * [1, 1, 0.5, 0.5])
                labels.append(gt_labels[0])
                scores.append(rng.uniform(0, 1))
        scores = np.asarray(scores, dtype=np.float64)
        if seed % 7 == 5:  # tied scores: order among equals must follow the input order
            scores = np.round(scores, 1)
        truths.append({"boxes": gt_boxes.reshape(-1, 4), "labels": gt_labels})
        predictions.append({"boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                            "labels": np.asarray(labels, dtype=np.int64), "scores": scores})
    if not any(len(t["labels"]) for t in truths):
        truths[0] = {"boxes": np.array([[10.0, 10.0, 20.0, 20.0]]), "labels": np.array([0])}
    if not any(len(p["labels"]) for p in predictions):
        predictions[0] = {"boxes": np.array([[12.0, 9.0, 18.0, 21.0]]), "labels": np.array([0]),
                          "scores": np.array([0.5])}
    return truths, predictions, n_classes


def coco_stats(truths, predictions, n_classes) -> np.ndarray:
    coco = pytest.importorskip("pycocotools.coco")
    from pycocotools.cocoeval import COCOeval

    annotations = []
    for i, t in enumerate(truths):
        for box, c in zip(t["boxes"], t["labels"]):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0})
    gt = coco.COCO()
    gt.dataset = {"images": [{"id": i + 1} for i in range(len(truths))], "annotations": annotations,
                  "categories": [{"id": c + 1} for c in range(n_classes)]}
    results = [{"image_id": i + 1, "category_id": int(c) + 1, "bbox": [float(v) for v in box], "score": float(s)}
               for i, p in enumerate(predictions) for box, c, s in zip(p["boxes"], p["labels"], p["scores"])]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats, evaluation.eval["precision"]


@pytest.mark.parametrize("seed", range(N_CASES))
def test_equals_cocoeval(seed):
    truths, predictions, n_classes = generate(seed)
    stats, precision = coco_stats(truths, predictions, n_classes)
    ours = mean_average_precision(truths, predictions, box_format="xywh")
    assert ours.map == pytest.approx(stats[0], abs=1e-6)
    assert ours.map_50 == pytest.approx(stats[1], abs=1e-6)
    assert ours.map_75 == pytest.approx(stats[2], abs=1e-6)
    # Per class: COCO's precision array [T, R, K, area, maxDets]; -1 marks "no ground truth".
    for c in range(n_classes):
        theirs = precision[:, :, c, 0, 2]
        if (theirs == -1).all():
            assert c not in ours.per_class or math.isnan(ours.per_class[c])
        else:
            assert ours.per_class[c] == pytest.approx(theirs.mean(), abs=1e-6)


def test_cases_are_varied():
    """The generated cases span bad to perfect detectors and hit every special path."""
    cases = [generate(seed) for seed in range(N_CASES)]
    maps = [mean_average_precision(t, p, box_format="xywh").map for t, p, _ in cases]
    assert min(maps) < 0.05 and max(maps) > 0.75
    assert sum(any(len(t["labels"]) == 0 for t in truths) for truths, _, _ in cases) >= 10
    assert sum(max(len(p["labels"]) for p in predictions) > 100 for _, predictions, _ in cases) >= 5
    assert sum(len(np.unique(p["scores"])) < len(p["scores"]) for _, preds, _ in cases for p in preds) >= 5
    assert sum(n > 1 for _, _, n in cases) >= 40


@pytest.mark.parametrize("seed", range(0, N_CASES, 6))
def test_corner_boxes_equal_cocoeval(seed):
    """x1, y1, x2, y2 boxes (the default) give COCOeval's numbers for the same boxes."""
    truths, predictions, n_classes = generate(seed)
    stats, _ = coco_stats(truths, predictions, n_classes)

    def corners(entry):
        boxes = entry["boxes"].copy()
        boxes[:, 2:] += boxes[:, :2]
        return {**entry, "boxes": boxes}

    ours = mean_average_precision([corners(t) for t in truths], [corners(p) for p in predictions])
    assert [ours.map, ours.map_50, ours.map_75] == pytest.approx(list(stats[:3]), abs=1e-6)


def test_hand_computed_case():
    """One box found at IoU 0.625: a hit at thresholds .50, .55, .60 only (3 of 10)."""
    truths = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    found = [{"boxes": [[0, 0, 10, 6.25]], "labels": [0], "scores": [0.9]}]  # IoU 62.5 / 100
    scores = mean_average_precision(truths, found)
    assert (scores.map, scores.map_50, scores.map_75) == pytest.approx((0.3, 1.0, 0.0), abs=1e-12)
    # A confident false positive ranked first halves precision at every recall.
    found[0]["boxes"].insert(0, [50, 50, 60, 60]); found[0]["labels"].insert(0, 0); found[0]["scores"].insert(0, 0.99)
    assert detection.map_50(truths, found) == pytest.approx(0.5, abs=1e-12)
    # Another class, only predicted, has no AP and does not change the mean.
    found[0]["boxes"].append([1, 1, 2, 2]); found[0]["labels"].append(7); found[0]["scores"].append(1.0)
    scores = mean_average_precision(truths, found)
    assert scores.map_50 == pytest.approx(0.5, abs=1e-12) and math.isnan(scores.per_class[7])


def test_max_detections_per_image_and_class():
    """Only the 100 best detections of a class in an image count: a hit ranked 101st is lost."""
    truths = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    misses = [[20 + i, 20, 25 + i, 25] for i in range(100)]
    found = [{"boxes": misses + [[0, 0, 10, 10]], "labels": [0] * 101, "scores": [0.9] * 100 + [0.1]}]
    assert detection.map_50(truths, found) == 0.0
    assert mean_average_precision(truths, found, max_detections=101).map_50 == pytest.approx(1 / 101, abs=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"ground_truth\[0\]: box 0 has a negative width or height \(-5 × 5\)"):
        mean_average_precision([{"boxes": [[10, 0, 5, 5]], "labels": [0]}], [{"boxes": [], "labels": [], "scores": []}])
    with pytest.raises(ValueError, match=r"predictions\[0\]: 1 boxes, 2 labels, 1 scores"):
        mean_average_precision([{"boxes": [], "labels": []}], [{"boxes": [[0, 0, 1, 1]], "labels": [0, 1], "scores": [1]}])
    with pytest.raises(ValueError, match="box_format: expected one of xyxy, xywh, got 'cxcywh'"):
        mean_average_precision([{"boxes": [[0, 0, 1, 1]], "labels": [0]}], [{"boxes": [], "labels": [], "scores": []}],
                               box_format="cxcywh")
