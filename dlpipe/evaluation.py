"""`dlpipe evaluate RUN_DIR [--data CSV]`: evaluate a trained run again, without training.

`evaluate_run` re-opens the run and calls its task's `reevaluate` hook. Every hook writes
into a new RUN_DIR/evaluations/<time>/ (`new_folder`; metrics.json, evaluation/, plots/,
data.json, evaluation.json, report.html) and leaves the run's own files as they are.

`reevaluate` here is the supervised tasks' hook. The model is RUN_DIR/model.keras (loaded
in safe mode). The data is either the run's own validation and test splits, rebuilt from
RUN_DIR/spec.yaml (the same seed gives the same split; a changed data fingerprint is
reported), or a CSV of new labeled examples with the run's feature and target columns. The
metrics are computed by the same function as in `dlpipe run`
(dlpipe.metrics.evaluate.evaluate).
"""

from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlpipe.errors import DataError, DlpipeError
from dlpipe.finished import open_run, read_json
from dlpipe.rundir import atomic_write_json

NEW_DATA = "data"
"""The split name under which new labeled data is reported in metrics.json."""


@dataclass
class Evaluation:
    folder: Path
    metrics: dict[str, dict[str, float]]


def new_folder(run_root: Path) -> Path:
    """A new, empty RUN_DIR/evaluations/<time>/ (numbered when one exists for this second)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = run_root / "evaluations"
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise DlpipeError(f"{base}: cannot create a new evaluation folder")


def evaluate_run(run_dir: str | Path, data: str | Path | None = None) -> Evaluation:
    """`dlpipe evaluate RUN_DIR [--data FILE]`: the run's task re-evaluates it (pipeline hook
    `reevaluate`), or says in one line that it cannot."""
    run = open_run(run_dir, "evaluate")
    return run.task.hook("reevaluate")(run, data)


def reevaluate(run, data: str | Path | None = None) -> Evaluation:
    """Re-evaluation of a model with one output of classes or values (the supervised tasks)."""
    run_root, spec, located = run.root, run.spec, run.located
    # The data first: a bad CSV is reported before TensorFlow is imported (seconds).
    if data is None:
        from dlpipe.data.prepare import prepare

        prepared = prepare(spec, run.base_dir, located)
        warn_if_changed(run, prepared.fingerprint)
        splits = list(spec.evaluation.splits)
    else:
        prepared = labeled_csv(Path(data), spec, read_json(run_root / "data.json"), values=run.task.target == "values")
        splits = [NEW_DATA]

    from dlpipe.training.determinism import configure

    configure(spec.seed)
    model = run.load_model()
    from dlpipe.metrics.evaluate import evaluate
    from dlpipe.report import write_report

    folder = new_folder(run_root)
    atomic_write_json(folder / "data.json", prepared.describe())
    from dlpipe.report.evaluation import draw_evaluation

    outputs = {}
    metrics = evaluate(model, spec, prepared, folder, splits, outputs)
    draw_evaluation(folder / "plots", spec, prepared, outputs)
    record_evaluation(folder, run, list(metrics), data)
    write_report(run_root, folder, model=model, title=f"{spec.name}: evaluation of {folder.name}")
    return Evaluation(folder, metrics)


def warn_if_changed(run, fingerprint: str) -> None:
    """A warning when the rebuilt data's fingerprint is not the one the run trained on."""
    trained_on = run.record.get("data_fingerprint")
    if trained_on and trained_on != fingerprint:
        print(f"[dlpipe] warning: the data differs from the run's (fingerprint {fingerprint} ≠ {trained_on}); "
              "the splits may hold other examples", file=sys.stderr, flush=True)


def record_evaluation(folder: Path, run, splits: list[str], data: str | Path | None = None,
                      models: tuple[str, ...] = ("model.keras",)) -> None:
    """evaluation.json: which run, model files and data this evaluation used, and when."""
    atomic_write_json(folder / "evaluation.json", {
        "run": str(run.root.resolve()),
        "model": models[0] if len(models) == 1 else list(models),
        "data": str(Path(data).resolve()) if data is not None else "the run's own splits, rebuilt from spec.yaml",
        "splits": splits,
        "written": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    })


def labeled_csv(path: Path, spec, described: dict, values: bool):
    """New labeled examples from a CSV, encoded as the run encoded its training data:
    the same feature columns, and labels mapped onto the run's classes (`values`: the target
    is numbers, not classes)."""
    from dlpipe.data.prepare import FeatureInfo, PreparedData, Split
    from dlpipe.data.sources import load_source
    from dlpipe.errors import did_you_mean
    from dlpipe.spec.data import CsvSource

    if not described.get("features"):
        raise DlpipeError("the run has no data.json describing its features; cannot read new data for it")
    table = load_source(CsvSource(type="csv", path=str(path.resolve())), path.parent)
    origin, offset = table.origin, table.row_offset
    features = [FeatureInfo(f["name"], f["input"], f["type"], tuple(f["shape"]), f["normalization"])
                for f in described["features"]]
    x = {}
    for feature in features:
        if feature.type != "numerical":
            raise DataError(f"{origin}: the model takes {feature.type} feature {feature.name!r}; "
                            "a CSV holds numerical columns only")
        if feature.name not in table.columns:
            hint = did_you_mean(feature.name, table.columns) or f"; the model needs {_names(features)}"
            raise DataError(f"{origin}: no column {feature.name!r}{hint}")
        x[feature.input_name] = _numbers(table.columns[feature.name], origin, feature.name, offset).reshape(-1, 1)
    target = described["target"]
    if target not in table.columns:
        hint = did_you_mean(target, table.columns) or ""
        raise DataError(f"{origin}: no column {target!r} (the target){hint}")
    if values:
        y = _numbers(table.columns[target], origin, target, offset)
    else:
        y = _class_codes(table.columns[target], described["class_names"], origin, target, offset,
                         by_index=spec.data.target.class_names is not None or spec.data.source.type == "builtin")
    rows = np.arange(len(y))
    return PreparedData(features=features, target=target, task=spec.task, class_names=described.get("class_names"),
                        splits={NEW_DATA: Split(x, y, rows)}, fingerprint="", origin=origin)


def _names(features) -> str:
    names = [f.name for f in features]
    return ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def _numbers(values: np.ndarray, origin: str, column: str, offset: int) -> np.ndarray:
    try:
        numbers = values.astype(np.float32)
    except (TypeError, ValueError):
        row = next(i for i, v in enumerate(values) if not _is_number(v))
        raise DataError(f"{origin}: row {row + offset}, column {column!r}: expected a number, "
                        f"got {values[row]!r}") from None
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        raise DataError(f"{origin}: row {int(bad[0]) + offset}, column {column!r}: a missing or infinite value")
    return numbers


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _class_codes(values: np.ndarray, class_names: list[str], origin: str, column: str, offset: int,
                 by_index: bool) -> np.ndarray:
    """Labels → the run's class indices. `by_index`: the run's labels were integers
    0..K-1 with names (a builtin dataset, or class_names in the spec); new data may give
    either the index or the name. Otherwise the run named classes by their label values."""
    lookup = {name: i for i, name in enumerate(class_names)}
    codes = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        if by_index and isinstance(value, (int, np.integer)) and 0 <= value < len(class_names):
            codes[row] = int(value)
        elif str(value) in lookup:
            codes[row] = lookup[str(value)]
        else:
            known = ", ".join(class_names[:10]) + (" ..." if len(class_names) > 10 else "")
            raise DataError(f"{origin}: row {row + offset}, column {column!r}: label {value!r} is not one of "
                            f"the run's classes ({known})")
    return codes
