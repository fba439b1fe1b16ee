"""`dlpipe evaluate RUN_DIR [--data CSV]`: evaluate a trained run again, without training.

`evaluate_run` re-opens the run and calls its task's `reevaluate` hook. Every hook writes
into a new RUN_DIR/evaluations/<time>/ (`new_folder`; metrics.json, evaluation/, plots/,
data.json, evaluation.json, report.html) and leaves the run's own files as they are.
`reevaluate` here is the supervised tasks' hook:

The model is RUN_DIR/model.keras (loaded in safe mode). The data is either the run's own
validation and test splits, rebuilt from RUN_DIR/spec.yaml (the same seed gives the same
split; a changed data fingerprint is reported), or a file of new labeled examples with the
run's feature and target columns (CSV, JSON lines, Parquet, ... — any table the run's source
type reads, every feature type), read and checked by the data stage itself
(dlpipe/data/prepare.py: prepare_labeled). Results go to RUN_DIR/evaluations/<time>/ (metrics.json,
evaluation/, plots/, data.json, report.html); the run's own files are left as they are.
The metrics are computed by the same function as in `dlpipe run`
(dlpipe.metrics.evaluate.evaluate).
"""

from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path

from dlpipe.errors import DlpipeError
from dlpipe.finished import open_run, read_json
from dlpipe.rundir import atomic_write_json


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
        from dlpipe.data.prepare import NEW_DATA, prepare_labeled

        described = read_json(run_root / "data.json")
        if not described.get("features"):
            raise DlpipeError(f"{run_root}: the run has no data.json describing its features; cannot read new data for it")
        prepared = prepare_labeled(spec, Path(data), described)
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
