"""The `evaluation` section: which metrics, on which splits."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import AfterValidator, WithJsonSchema

from dlpipe import registry
from dlpipe.errors import did_you_mean
from dlpipe.spec.base import PositiveInt, StrictModel, unknown_name

METRIC_NAMES = tuple(
    name for kind in registry.kinds() if kind.startswith("metric:") for name in registry.names(kind)
)


def _check_metric(name: str) -> str:
    if name not in METRIC_NAMES:
        hint = did_you_mean(name, METRIC_NAMES) or f"; choose from {', '.join(METRIC_NAMES)}"
        raise unknown_name("metric", name, hint)
    return name


Metric = Annotated[str, AfterValidator(_check_metric),
                   WithJsonSchema({"type": "string", "enum": list(METRIC_NAMES)})]


class Evaluation(StrictModel):
    metrics: list[Metric] | None = None
    """Names as in metrics.json; by default accuracy and f1_macro for classification,
    mae, mse, rmse and r2 for regression, map_50 and map for detection, reconstruction_mse
    and (with a target) knn_accuracy for embedding."""
    splits: list[Literal["validation", "test"]] = ["validation", "test"]
    """The splits scored into metrics.json (the training split never is)."""
    knn_neighbors: PositiveInt = 5
    """Embedding task: neighbours that vote in knn_accuracy (a k-nearest-neighbours
    classifier fitted on the training split's embeddings and labels, scored on each split)."""
