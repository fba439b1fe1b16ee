"""The report's pictures, drawn with matplotlib's Agg canvas and written atomically as PNG.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never pyplot: no
global state, no display needed, nothing left open between calls.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dlpipe.rundir import atomic_path

DPI = 100
MAX_ANNOTATED_CLASSES = 20
"""Confusion matrices with more classes are drawn without a number in each cell."""


def _figure(width: float, height: float, columns: int = 1, rows: int = 1, margins: dict | None = None):
    """A figure and its grid of axes. With `margins` (subplots_adjust's fractions), a fixed
    layout, for charts whose tick labels are known in advance (ROC and PR: both axes 0..1):
    that skips the constrained-layout solver, about a third of such a chart's drawing time.
    Without, constrained layout, which makes room for whatever the labels turn out to be."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout=None if margins else "constrained")
    FigureCanvasAgg(figure)
    if margins:
        figure.subplots_adjust(**margins)
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def _margins(width: float, height: float, left: float = 0.62, bottom: float = 0.5, top: float = 0.32,
             right: float = 0.15) -> dict:
    """subplots_adjust fractions from margins in inches: room for 0..1 tick labels, an axis
    label and a one-line title."""
    return {"left": left / width, "right": 1 - right / width, "bottom": bottom / height, "top": 1 - top / height}


def _save(figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv → {column: values}; the epoch column included."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    return {name: [float(row[name]) if row[name] not in ("", None) else float("nan") for row in rows]
            for name in rows[0]}


def learning_curves(history: dict[str, list[float]], path: Path) -> Path | None:
    """One panel per quantity (loss, accuracy, ...): training and validation over epochs."""
    names = [n for n in history if n != "epoch" and not n.startswith("val_")]
    if not names:
        return None
    epochs = history.get("epoch") or list(range(1, len(history[names[0]]) + 1))
    figure, axes = _figure(4.2 * len(names), 3.2, columns=len(names))
    from matplotlib.ticker import MaxNLocator

    marker = "o" if len(epochs) <= 30 else None
    for ax, name in zip(axes[0], names):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # A quantity measured at some epochs only (a GAN's FID): its points, joined.
        values = np.asarray(history[name], dtype=np.float64)
        seen = np.isfinite(values)
        ax.plot(np.asarray(epochs)[seen], values[seen], marker=marker if seen.all() else "o", label="training")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker=marker, label="validation")
        ax.set(title=name.replace("_", " "), xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(figure, path)


def confusion_matrix(counts: np.ndarray, fractions: np.ndarray, class_names: Sequence[str], path: Path,
                     split: str) -> Path:
    """Counts and their row-normalized fractions (recall per class on the diagonal), side
    by side. The caller computes both (dlpipe/metrics): plotting only draws."""
    k = len(class_names)
    size = min(3.0 + 0.45 * k, 12.0)
    figure, axes = _figure(2 * size + 1.0, size, columns=2)
    for ax, values, title, fmt in ((axes[0][0], counts, "counts", "d"),
                                   (axes[0][1], fractions, "fraction of row", ".2f")):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=ax, shrink=0.8)
        ax.set(title=f"Confusion matrix ({split}): {title}", xlabel="predicted", ylabel="true",
               xticks=range(k), yticks=range(k))
        ax.set_xticklabels(class_names, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
        ax.set_yticklabels(class_names)
        if k <= MAX_ANNOTATED_CLASSES:
            threshold = values.max() / 2 if values.max() > 0 else 1
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=8,
                            color="white" if values[i, j] > threshold else "black")
    return _save(figure, path)


def roc_curve(y: np.ndarray, score: np.ndarray, path: Path, split: str, positive: str) -> Path | None:
    """ROC curve of a binary classifier (score = probability of the positive class)."""
    from sklearn import metrics as sk

    if len(np.unique(y)) < 2:
        return None  # undefined with one class
    false_positive, true_positive, _ = sk.roc_curve(y, score)
    figure, axes = _figure(4.6, 4.2, margins=_margins(4.6, 4.2))
    ax = axes[0][0]
    ax.plot(false_positive, true_positive, label=f"AUC {sk.auc(false_positive, true_positive):.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    ax.set(title=f"ROC curve ({split}), positive: {positive}", xlabel="false positive rate",
           ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(figure, path)


def pr_curve(y: np.ndarray, score: np.ndarray, path: Path, split: str, positive: str) -> Path | None:
    """Precision-recall curve of a binary classifier, with the positive rate as baseline."""
    from sklearn import metrics as sk

    if not (y == 1).any():
        return None  # recall is undefined without positives
    precision, recall, _ = sk.precision_recall_curve(y, score)
    figure, axes = _figure(4.6, 4.2, margins=_margins(4.6, 4.2))
    ax = axes[0][0]
    ax.step(recall, precision, where="post", label=f"AP {sk.average_precision_score(y, score):.4f}")
    ax.axhline(float(np.mean(y == 1)), linestyle="--", color="gray", label="positive rate")
    ax.set(title=f"Precision-recall ({split}), positive: {positive}", xlabel="recall", ylabel="precision",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return _save(figure, path)


def residuals(y: np.ndarray, prediction: np.ndarray, path: Path, split: str) -> Path:
    """Predicted against true (the diagonal is perfect), and residuals against predicted."""
    y, prediction = np.asarray(y, dtype=np.float64).reshape(-1), np.asarray(prediction, dtype=np.float64).reshape(-1)
    figure, axes = _figure(9.0, 4.0, columns=2)
    left, right = axes[0]
    low, high = float(min(y.min(), prediction.min())), float(max(y.max(), prediction.max()))
    left.scatter(y, prediction, s=10, alpha=0.6)
    left.plot([low, high], [low, high], linestyle="--", color="gray")
    left.set(title=f"Predicted vs true ({split})", xlabel="true", ylabel="predicted")
    right.scatter(prediction, y - prediction, s=10, alpha=0.6)
    right.axhline(0.0, linestyle="--", color="gray")
    right.set(title=f"Residuals ({split})", xlabel="predicted", ylabel="true − predicted")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(figure, path)


def embedding_map(embeddings: np.ndarray, labels: np.ndarray | None, class_names: Sequence[str] | None,
                  path: Path, split: str) -> Path:
    """The embeddings projected on their first two principal components (an SVD of the
    centred vectors), one colour per class when there are labels: neighbours that share a
    colour are what knn_accuracy counts."""
    vectors = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    centred = vectors - vectors.mean(axis=0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    points = centred @ directions[:2].T
    if points.shape[1] == 1:  # a 1-number embedding: spread along one axis
        points = np.concatenate([points, np.zeros_like(points)], axis=1)
    share = singular[:2] ** 2 / max(float(np.sum(singular ** 2)), 1e-300)
    figure, axes = _figure(6.0, 5.0)
    ax = axes[0][0]
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=10, alpha=0.6)
    else:
        for index, name in enumerate(class_names or sorted(set(np.asarray(labels).tolist()))):
            chosen = np.asarray(labels) == index
            ax.scatter(points[chosen, 0], points[chosen, 1], s=10, alpha=0.7, label=str(name))
        ax.legend(fontsize="small", markerscale=1.5, loc="best", ncols=2 if len(class_names or []) > 5 else 1)
    ax.set(title=f"Embeddings ({split}), first two principal components",
           xlabel=f"PC 1 ({share[0]:.0%} of variance)",
           ylabel=f"PC 2 ({share[1]:.0%} of variance)" if len(share) > 1 else "PC 2")
    ax.grid(alpha=0.3)
    return _save(figure, path)


Box = tuple[Sequence[float], str, str]
"""(x1, y1, x2, y2) in pixels, a caption, a matplotlib colour."""


def image_grid(images: np.ndarray, captions: Sequence[str], path: Path, title: str,
               boxes: Sequence[Sequence[Box]] | None = None, columns: int = 8,
               fixed_range: bool = False) -> Path | None:
    """A grid of images (N × H × W × C, any value range: each is scaled to its own
    min..max, or with `fixed_range` all to the set's min..max, so a faint image stays faint)
    with a caption each and, optionally, boxes drawn on them: misclassified examples,
    generated samples, detections."""
    from matplotlib.patches import Rectangle

    images = np.asarray(images, dtype=np.float64)
    if len(images) == 0:
        return None
    if images.ndim == 3:
        images = images[..., np.newaxis]
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    figure, axes = _figure(1.6 * columns, 1.75 * rows + 0.4, columns=columns, rows=rows)
    figure.suptitle(title)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        image = images[index]
        low, high = (images.min(), images.max()) if fixed_range else (image.min(), image.max())
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(image[..., :3], interpolation="nearest")
        ax.set_title(captions[index], fontsize=8)
        for (x1, y1, x2, y2), caption, colour in (boxes[index] if boxes else ()):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5))
            if caption:
                ax.text(x1, y1, caption, color="white", fontsize=6, va="bottom",
                        bbox={"facecolor": colour, "alpha": 0.7, "pad": 1, "linewidth": 0})
    return _save(figure, path)


def fid_curve(results: Sequence[dict], path: Path, reference: float | None = None) -> Path | None:
    """FID (log scale) and Inception Score at each evaluation of a GAN's training; the FID
    of real against real at the same counts (`reference`) as a dashed line: its floor."""
    if not results:
        return None
    epochs = [r["epoch"] for r in results]
    scored = all("inception_score" in r for r in results)  # not with InceptionV3's pool features
    figure, axes = _figure(8.4 if scored else 4.2, 3.2, columns=2 if scored else 1)
    fid_axis = axes[0][0]
    fid_axis.plot(epochs, [max(r["fid"], 1e-6) for r in results], marker="o")
    if reference is not None:
        fid_axis.axhline(max(reference, 1e-6), color="tab:grey", linestyle="--",
                         label="real vs real (fid_reference)")
        fid_axis.legend(fontsize=7)
    fid_axis.set_yscale("log")
    fid_axis.set_title("FID (lower is better)")
    used = [fid_axis]
    if scored:
        is_axis = axes[0][1]
        is_axis.plot(epochs, [r["inception_score"] for r in results], marker="o", color="tab:green")
        is_axis.set_title("Inception Score (higher is better)")
        used.append(is_axis)
    for ax in used:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return _save(figure, path)
