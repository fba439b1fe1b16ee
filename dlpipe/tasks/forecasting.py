"""Task forecasting: the next `horizon` values of a series from the `lookback` before them.

Pipeline: pipelines/supervised.py, on windows cut by dlpipe/data/windows.py. Each evaluation
says whether the model beat the last-value forecast. On `backend: jax` the same windows reach
`fit` as numpy batches (training/inputs.py: numpy_batches), with no TensorFlow imported.
"""

from __future__ import annotations

from dlpipe.tasks.base import Found, Task
from dlpipe.tasks.common import ALL_COMMANDS, EVERY_TASK, SUPERVISED_EXPORT, SUPERVISED_TRAINING, VALUE_LOSSES

def check_windows(spec) -> Found:
    windows = spec.data.windows
    if windows is None:
        yield (("data",), "task forecasting needs data.windows (lookback, horizon) to turn the series into examples")
        return
    for i, feature in enumerate(spec.data.features):
        if feature.type != "numerical":
            yield (("data", "features", i, "type"), f"a forecasting window holds numbers per step; "
                   f"feature {feature.name!r} is {feature.type}")
        if feature.name == windows.order_by:
            yield (("data", "features", i, "name"), f"{feature.name!r} is data.windows.order_by (the time); "
                   "it orders the rows and cannot also be a feature")
    if spec.data.target is not None and windows.order_by == spec.data.target.name:
        yield (("data", "windows", "order_by"), f"{windows.order_by!r} is the target; order by a time column")
    for key in spec.prepare.normalization:
        if key in ("image", "tokens"):  # feature-type keys a window has no feature of
            yield (("prepare", "normalization", key), f"{key!r}: a forecasting window is normalized per channel "
                   "with the key numerical (or sequence)")


TASK = Task(
    name="forecasting",
    pipeline="supervised",
    summary="forecast the next values of a series; exports a model mapping a window to its forecast",
    target="values",
    output="values",
    # naive_mae: the last-value forecast's error, so every run says whether it beats it.
    default_metrics=("mae", "rmse", "naive_mae"),
    losses=VALUE_LOSSES,
    training_metric="mae",
    objective="mae",
    commands=ALL_COMMANDS,
    honours=(*EVERY_TASK, "backend", "data.source", "data.features", "data.target.name", "data.split.train",
             "data.split.validation", "data.split.test", "data.split.stratify", "data.windows", "data.shuffle_buffer",
             "prepare.normalization", "prepare.augmentation", "model", *SUPERVISED_TRAINING, "evaluation.metrics",
             "evaluation.splits", "evaluation.baselines", *SUPERVISED_EXPORT, "tuning"),
    refusals={"training.sample_weight": "task forecasting has no per-example weights yet (its windows carry none); remove sample_weight",
              "data.split.files": "task forecasting splits a series by time (the first split.train of the "
                                  "rows train); give train/validation/test fractions",
              "data.split.time_column": "task forecasting orders the series by data.windows.order_by; remove split.time_column",
              "data.split.folds": "task forecasting splits a series by time; folds do not apply",
              "prepare.imputation": "task forecasting does not impute its windows; clean the series",
              "model.return_sequences": "task forecasting gives the next `horizon` values of the target, one "
                                        "output per example; remove return_sequences",
              "model.embedding_dim": "task forecasting reads windows of numbers, no tokens to embed; "
                                     "remove embedding_dim"},
    horizon=True,
    baseline=("mae", "naive_mae", "the last-value forecast"),
    checks=(check_windows,),
)
