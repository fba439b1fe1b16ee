"""`dlpipe explain RUN_DIR [--data FILE] [--method M] [--rows N]`: explain a trained run.

Without `--data`, the run's own test split (rebuilt from RUN_DIR/spec.yaml; the same seed
gives the same split) is explained into RUN_DIR/explanations/, as the run's explain stage
(`evaluation.explain`) does, and report.html is written again with the section. With
`--data FILE` (raw rows as `dlpipe predict` reads them: CSV, JSONL, images), those rows are
explained into RUN_DIR/explanations/data-<time>/ with a page of their own; permutation
importance, which needs labels, still reads the run's validation split. The methods and
their settings are dlpipe/explain/stage.py's.
"""

from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import dataclass
from pathlib import Path

from dlpipe.errors import DlpipeError


@dataclass
class Explanation:
    folder: Path
    index: dict
    """explanations.json: methods, rows, files."""


def explain_run(run_dir: str | Path, data: str | Path | None = None, methods=None, rows=None) -> Explanation:
    """The run's task explains it (pipeline hook `explain`), or says in one line that it cannot."""
    from dlpipe.finished import open_run

    run = open_run(run_dir, "explain")  # a task without explain: one line, before TensorFlow is imported
    from dlpipe.backend_import import import_tensorflow

    import_tensorflow()
    return run.task.hook("explain")(run, data, methods, rows)


def settings_of(spec):
    """The spec's evaluation.explain, or its defaults when the spec has none."""
    from dlpipe.spec.evaluation import Explain

    return spec.evaluation.explain if spec.evaluation.explain is not None else Explain()


def check_explainable(spec, data, located) -> None:
    """Before training (the data stage): the named methods fit the features found, the rows
    lie inside the test split, and the target is one label or value per example."""
    from dlpipe.spec.checks import check_explain_features

    for path, message in check_explain_features(spec, [(f.name, f.type) for f in data.features]):
        raise located(path, message)
    test = data.splits.get("test")
    settings = settings_of(spec)
    if test is None or not len(test):
        raise located(("evaluation", "explain"), "explanations read the test split; it is empty "
                      "(give data.split.test a share)")
    if isinstance(settings.rows, list) and max(settings.rows) >= len(test):
        raise located(("evaluation", "explain", "rows"), f"row {max(settings.rows)} is beyond the {len(test)} rows "
                      "of the test split (counted from 0)")
    if data.class_names is None and test.y is not None and test.y.ndim > 1 and test.y.shape[1] > 1:
        raise located(("evaluation", "explain"), f"explanations cover one predicted value; the target has "
                      f"{test.y.shape[1]} values per example")


def _subject(model, spec, features: list[dict], class_names):
    from dlpipe.explain.stage import Subject

    return Subject(model, features, class_names, spec.seed)


def explain_prepared(model, spec, data, folder: Path, methods=None, rows=None) -> dict:
    """The explain stage on a PreparedData: its test split explained into `folder`."""
    from dlpipe.explain.stage import Examples, explain_model

    test = data.splits["test"]
    examples = Examples(test.x, test.y, [f"test row {i}" for i in range(len(test))], "the test split")
    _clear(folder)
    return explain_model(_subject(model, spec, [f.describe() for f in data.features], data.class_names),
                         settings_of(spec), examples, data.splits.get("validation"), data.splits["train"], folder,
                         methods=methods, rows=rows, log=_log)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _clear(folder: Path) -> None:
    """An earlier explanation's files (not the folders of `dlpipe explain --data`)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.suffix in (".json", ".png"):
                path.unlink()


def reexplain(run, data: str | Path | None = None, methods=None, rows=None) -> Explanation:
    """`dlpipe explain` for the supervised tasks (see the module doc)."""
    from dlpipe.data.prepare import prepare

    prepared = prepare(run.spec, run.base_dir, run.located)
    if run.record.get("data_fingerprint") and run.record["data_fingerprint"] != prepared.fingerprint:
        print(f"[dlpipe] warning: the data differs from the run's (fingerprint {prepared.fingerprint} ≠ "
              f"{run.record['data_fingerprint']}); the splits may hold other examples", file=sys.stderr, flush=True)
    examples = _read(Path(data), run.root, prepared) if data is not None else None
    from dlpipe.training.determinism import configure

    configure(run.spec.seed)
    model = run.load_model()
    if examples is None:
        from dlpipe.report import write_report
        from dlpipe.rundir import RunDir

        run_dir = RunDir(run.root)
        run_dir.lock()
        try:
            folder = run.root / "explanations"
            index = explain_prepared(model, run.spec, prepared, folder, methods, rows)
            write_report(run.root, model=model)
        finally:
            run_dir.unlock()
        return Explanation(folder, index)
    from dlpipe.explain.stage import explain_model
    from dlpipe.report.explanations import write_page

    folder = _new_folder(run.root / "explanations")
    subject = _subject(model, run.spec, [f.describe() for f in prepared.features], prepared.class_names)
    index = explain_model(subject, settings_of(run.spec), examples, prepared.splits.get("validation"),
                          prepared.splits["train"], folder, methods=methods, rows=rows, log=_log)
    write_page(folder, f"{run.spec.name}: explanations of {Path(data).name}")
    return Explanation(folder, index)


def _read(path: Path, run_root: Path, prepared):
    """Raw rows of a CSV, JSONL or image files, read as `dlpipe predict` reads them."""
    from dlpipe.explain.stage import Examples
    from dlpipe.prediction import read_examples

    interface = _interface(run_root, prepared)
    found = read_examples(path, interface)
    x = found.batch(0, found.count)
    if found.labels is not None:
        names = list(found.labels)
    else:
        first = 2 if path.suffix.lower() == ".csv" else 1
        names = [f"{path.name} {'row' if first == 2 else 'line'} {i + first}" for i in range(found.count)]
    return Examples(x, None, names, str(path))


def _interface(run_root: Path, prepared) -> dict:
    """The model card's description of the inputs (image value ranges included), or the
    run's data.json features when the run wrote no card."""
    import json

    card = run_root / "export" / "model_card.json"
    if card.is_file():
        try:
            return json.loads(card.read_text(encoding="utf-8"))
        except ValueError:
            pass
    return {"inputs": [f.describe() for f in prepared.features]}


def _new_folder(base: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = base / (f"data-{stamp}" if n == 1 else f"data-{stamp}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise DlpipeError(f"{base}: cannot create a new explanation folder")


def top_features(index: dict, folder: Path, count: int = 5) -> list[str]:
    """One line per method: its most important features (for the command's output)."""
    import json

    lines = []
    for method in index["methods"]:
        document = json.loads((folder / f"{method}.json").read_text(encoding="utf-8"))
        ranked = document["global"]["features"][:count]
        lines.append(f"{method}\t" + ", ".join(f"{f['feature']} {f['importance']:.4g}" for f in ranked))
    return lines

