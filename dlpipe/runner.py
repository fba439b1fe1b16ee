"""`dlpipe run`: load the spec, open a run directory, hand it to the task's pipeline.

Whatever happens, run.json ends with the outcome: completed, failed (with the reason) or
interrupted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dlpipe import registry
from dlpipe.errors import DlpipeError, SpecError
from dlpipe.rundir import RunDir, atomic_write_text
from dlpipe.spec import Spec, load_document, locate
from dlpipe.spec.loader import Document


@dataclass
class Context:
    """What a pipeline gets: the spec, where it came from, and where to write."""

    spec: Spec
    document: Document
    run_dir: RunDir
    base_dir: Path
    """The spec file's folder: relative data paths are resolved against it."""
    callbacks: list = field(default_factory=list)
    """Extra Keras callbacks for training (dlpipe tune reports each epoch to its pruner)."""

    def located(self, path: tuple, message: str) -> SpecError:
        """An error about the data that points at the spec line responsible for it."""
        return SpecError([locate(self.document, path, message)])


def dump_spec(spec: Spec) -> str:
    header = "# The resolved spec of this run: every default filled in. `dlpipe run` accepts it.\n"
    return header + yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def run_spec(spec_path: str | Path, *, overrides: Sequence[str] = (), out: str | Path | None = None,
             command: list[str] | None = None, callbacks: Sequence = ()) -> Path:
    spec, document = load_document(spec_path, overrides)
    run_dir = RunDir.create(Path(out) if out else RunDir.default_path(spec.name))
    try:
        run_dir.start(seed=spec.seed, command=list(command or []), spec_file=str(Path(spec_path).resolve()))
        atomic_write_text(run_dir.path("spec.yaml"), dump_spec(spec))
        context = Context(spec, document, run_dir, Path(spec_path).resolve().parent, list(callbacks))
        registry.load("pipeline", spec.pipeline)(context)
    except KeyboardInterrupt:
        run_dir.finish("interrupted", "interrupted (SIGINT)")
        raise
    except DlpipeError as err:
        run_dir.finish("failed", str(err))
        raise
    except BaseException as err:
        run_dir.finish("failed", f"{type(err).__name__}: {err}")
        raise
    else:
        run_dir.finish("completed")
    finally:
        run_dir.unlock()
    return run_dir.root
