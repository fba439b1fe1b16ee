"""Plots of an evaluation, drawn from the numbers and outputs the metrics stage computed:
confusion matrix, ROC and PR curves and the most confident mistakes (classes), residuals
(values), the embedding map (embeddings). They describe the last evaluated split (the test
split in a run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe import tasks

MISCLASSIFIED_SHOWN = 16


def draw_evaluation(folder: Path, spec, data, outputs: dict) -> None:
    """Plots of the last split in `outputs` (split → model output) under `folder`."""
    if not outputs:
        return
    name = list(outputs)[-1]
    split, task = data.splits[name], tasks.get(spec.task)
    if spec.data.target.multi_label or split.y.ndim != 1 or task.horizon:
        return  # several decisions per example: no single confusion matrix or residual plot
    _plots(folder, task.output == "classes", data, name, split, outputs[name])


def draw_outputs(folder: Path, spec, data, outputs: dict) -> None:
    """A model with several outputs (task multi_output): each output's plots of the last split,
    named `<output>_confusion_matrix.png`, `<output>_residuals.png`, ..."""
    import dataclasses

    from dlpipe.tasks.multi_output import gives_classes

    if not outputs:
        return
    name = list(outputs)[-1]
    split = data.splits[name]
    for target in spec.data.targets:
        view = dataclasses.replace(data, class_names=data.extra["outputs"][target.name]["class_names"])
        one = dataclasses.replace(split, y=split.y[target.name])
        _plots(folder, gives_classes(target), view, name, one, outputs[name][target.name], prefix=f"{target.name}_")


def draw_embeddings(folder: Path, data, name: str, embeddings: np.ndarray) -> None:
    """The embeddings of split `name`, projected to 2-D and coloured by label."""
    from dlpipe.report import plots

    plots.embedding_map(embeddings, data.splits[name].y, data.class_names, Path(folder) / "embeddings.png", name)


def _plots(folder: Path, classes: bool, data, split_name: str, split, output: np.ndarray, prefix: str = "") -> None:
    """`prefix` begins each file's name (an output's name when a model has several)."""
    from dlpipe.metrics.classification import confusion, normalized, predicted
    from dlpipe.metrics.evaluate import probabilities
    from dlpipe.report import plots

    if not classes:
        plots.residuals(split.y, output, folder / f"{prefix}residuals.png", split_name)
        return
    names = data.class_names
    proba = probabilities(output, len(names))
    counts = confusion(split.y, proba)
    plots.confusion_matrix(counts, normalized(counts), names, folder / f"{prefix}confusion_matrix.png", split_name)
    if len(names) == 2:
        plots.roc_curve(split.y, proba[:, 1], folder / f"{prefix}roc_curve.png", split_name, names[1])
        plots.pr_curve(split.y, proba[:, 1], folder / f"{prefix}pr_curve.png", split_name, names[1])
    images = [f for f in data.features if f.type == "image"]
    guess = predicted(proba)
    wrong = np.flatnonzero(guess != split.y)
    if images and len(wrong):
        # The most confident mistakes first: they say most about what the model learned.
        wrong = wrong[np.argsort(-proba[wrong, guess[wrong]], kind="stable")][:MISCLASSIFIED_SHOWN]
        captions = [f"{names[split.y[i]]} → {names[guess[i]]} ({proba[i, guess[i]]:.2f})" for i in wrong]
        stream = getattr(split, "stream", None)  # a streamed folder holds a sample: decode the ones shown
        name = images[0].input_name
        shown = split.x[name][wrong] if stream is None else stream.examples(wrong)[name]
        plots.image_grid(shown, captions, folder / f"{prefix}misclassified.png",
                         f"Misclassified ({split_name}, {len(np.flatnonzero(guess != split.y))} of {len(split)}): "
                         "true → predicted (probability)")
