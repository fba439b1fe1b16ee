"""A finished run re-opened: what `dlpipe evaluate` and `dlpipe export` start from.

`open_run(RUN_DIR, command)` checks that the folder holds a trained run, loads its resolved
spec.yaml (with `--set` overrides where the command allows them), asks the run's task whether
it supports the command (one line if not), and returns a `FinishedRun`; the command then
calls its task's pipeline hook (`reevaluate`, `reexport`) with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dlpipe import tasks
from dlpipe.errors import DlpipeError, SpecError
from dlpipe.tasks import Task


@dataclass
class FinishedRun:
    root: Path
    spec: object
    document: object
    record: dict
    """run.json as the run left it ({} when unreadable)."""
    task: Task

    @property
    def base_dir(self) -> Path:
        """The folder relative data paths were resolved against: the spec file the run started from."""
        spec_file = self.record.get("spec_file")
        return Path(spec_file).parent if spec_file else self.root

    def located(self, path: tuple, message: str) -> SpecError:
        from dlpipe.spec import locate

        return SpecError([locate(self.document, path, message)])

    def load_model(self, name: str = "model.keras"):
        """A .keras file of the run, through the one model loader (safe mode unless the spec opts out)."""
        from dlpipe.imports import needed
        from dlpipe.modelfile import load_keras_model

        return load_keras_model(self.root / name, allow_unsafe=self.spec.allow_unsafe_deserialization,
                                imports=[module for _, module in needed(self.spec)])


def open_run(path: str | Path, command: str, overrides: Sequence[str] = ()) -> FinishedRun:
    from dlpipe.spec import load_document

    root = Path(path)
    if not root.is_dir():
        raise DlpipeError(f"{root}: no such run directory")
    record = read_json(root / "run.json")
    for name in ("spec.yaml", "model.keras"):
        if not (root / name).is_file():
            status = record.get("status")
            state = f" (run status: {status})" if status else ""
            raise DlpipeError(f"{root}: not a trained dlpipe run: no {name}{state}")
    try:
        spec, document = load_document(root / "spec.yaml", overrides)
    except SpecError as err:
        if overrides:
            raise
        raise DlpipeError(f"{root / 'spec.yaml'}: the run's spec no longer validates: "
                          f"{err.problems[0].path}: {err.problems[0].message}") from None
    task = tasks.require(spec.task, command, root)
    return FinishedRun(root, spec, document, record, task)


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def export_run(path: str | Path, *, formats: Sequence[str] | None = None, overrides: Sequence[str] = ()) -> dict:
    """`dlpipe export RUN_DIR [--format F] [--set export.K=V]`: the run's task exports it again
    (pipeline hook `reexport`). Overrides may change `export.*` keys only: the model and its
    data are fixed."""
    for override in overrides:
        if not override.strip().startswith("export."):
            raise DlpipeError(f"--set {override}: dlpipe export may change export.* keys only")
    run = open_run(path, "export", overrides)
    return run.task.hook("reexport")(run, formats)
