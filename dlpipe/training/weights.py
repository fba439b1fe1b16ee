"""Per-example weights of the training loss: class weights × the sample-weight column."""

from __future__ import annotations

import numpy as np

from dlpipe.errors import DataError


def class_weights(spec, labels: np.ndarray, class_names: list[str], located=None) -> np.ndarray:
    """One weight per class, in class-index order."""
    setting = spec.training.class_weight
    classes = len(class_names)
    if setting == "balanced":
        # n / (classes × count): every class contributes the same total weight (scikit-learn's rule).
        counts = np.bincount(labels, minlength=classes).astype(np.float64)
        missing = [class_names[i] for i in np.flatnonzero(counts == 0)]
        if missing:
            raise DataError(f"class_weight balanced: the training split has no example of class "
                            f"{', '.join(map(repr, missing))}")
        return len(labels) / (classes * counts)
    weights = np.ones(classes)
    for name, weight in setting.items():
        if name not in class_names:
            from dlpipe.errors import did_you_mean

            message = (f"no class {name!r} in the data{did_you_mean(name, class_names)}; "
                       f"classes are: {', '.join(class_names)}")
            if located is not None:
                raise located(("training", "class_weight", name), message)
            raise DataError(f"training.class_weight: {message}")
        weights[class_names.index(name)] = weight
    return weights


def example_weights(spec, data, located=None) -> np.ndarray | None:
    """The training split's per-example weights, or None when every example weighs 1."""
    split = data.splits["train"]
    weights = None if split.weight is None else split.weight.astype(np.float64)
    if spec.training.class_weight is not None:
        per_class = class_weights(spec, split.y, data.class_names, located)[split.y]
        weights = per_class if weights is None else weights * per_class
    return None if weights is None else weights.astype(np.float32)
