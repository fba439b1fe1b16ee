"""Drawing of detections: test images with their ground-truth boxes (dashed) and the
detector's boxes (solid, labelled with class and score), one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe.rundir import atomic_path

COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999")


def draw_detections(images: np.ndarray, truths: list[dict], predictions: list[dict], class_names: list[str],
                    path: Path, *, columns: int = 4, min_score: float = 0.3) -> Path:
    """Boxes are x1, y1, x2, y2 in pixels. Predictions below `min_score` are not drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    count = len(images)
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(2.6 * columns, 2.6 * rows), dpi=100)
    FigureCanvasAgg(figure)
    for i in range(rows * columns):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.set_axis_off()
        if i >= count:
            continue
        image = images[i]
        axes.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                    vmin=0, vmax=255)
        for (x1, y1, x2, y2), label in zip(truths[i]["boxes"], truths[i]["labels"]):
            axes.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, linestyle="--",
                                     linewidth=1, edgecolor="white"))
        prediction = predictions[i]
        for (x1, y1, x2, y2), label, score in zip(prediction["boxes"], prediction["labels"], prediction["scores"]):
            if score < min_score:
                continue
            colour = COLOURS[int(label) % len(COLOURS)]
            axes.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, linewidth=1.5,
                                     edgecolor=colour))
            axes.text(x1 - 0.5, y1 - 1, f"{class_names[int(label)]} {score:.2f}", color="white", fontsize=7,
                      va="bottom", bbox={"facecolor": colour, "edgecolor": "none", "pad": 1})
    figure.suptitle(f"test images: detections (solid, score ≥ {min_score:g}) and ground truth (dashed)",
                    fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(tmp, format="png")
    return path
