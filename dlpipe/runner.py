"""`dlpipe run`: load the spec, open a run directory, hand it to the task's pipeline.

Whatever happens, run.json ends with the outcome: completed, failed (with the reason) or
interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dlpipe import backend, imports, tasks, testhooks
from dlpipe.errors import DlpipeError, Interrupted, SpecError
from dlpipe.rundir import RunDir, atomic_write_text, write_error
from dlpipe.spec import Spec, load_document, locate
from dlpipe.spec.loader import Document
from dlpipe.spec.paths import resolved
from dlpipe.tracking import open_run_tracker


@dataclass
class Context:
    """What a pipeline gets: the spec, where it came from, and where to write."""

    spec: Spec
    document: Document
    run_dir: RunDir
    base_dir: Path
    """The spec file's folder (absolute): relative data paths are resolved against it."""
    callbacks: list = field(default_factory=list)
    """Extra Keras callbacks for training (dlpipe tune reports each epoch to its pruner)."""
    chief: bool = True
    """False on the other workers of a multi-worker run: they train, and write nothing."""

    def located(self, path: tuple, message: str) -> SpecError:
        """An error about the data that points at the spec line responsible for it."""
        return SpecError([locate(self.document, path, message)])


def dump_spec(spec: Spec) -> str:
    """The resolved spec as YAML. Give it a spec whose paths are absolute (`resolved`): the
    file lives in another folder than the spec it came from."""
    header = ("# The resolved spec of this run: every default filled in, every path absolute. `dlpipe run` "
              "accepts it from any folder.\n")
    return header + yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def run_spec(spec_path: str | Path, *, overrides: Sequence[str] = (), out: str | Path | None = None,
             command: list[str] | None = None, resume: bool = False, callbacks: Sequence = (),
             cache: bool = True, base_dir: Path | None = None, tracking_parent: str | None = None) -> Path:
    """Run a spec into `out` (default runs/<name>-<time>). With `resume`, continue the
    interrupted run in `out` from its last checkpoint; an empty or missing `out` starts
    afresh, so a job script can always pass it. Without `resume`, an `out` that holds a run
    is run into again: stages whose cache key is unchanged are reused (dlpipe/stagecache.py)
    unless `cache` is False. `base_dir`: the folder relative data paths resolve against
    (default: the spec file's folder). `tracking_parent`: the MLflow run this run is a child
    of (a `dlpipe tune` study's), with the spec's `tracking.mlflow`.

    SIGINT and SIGTERM stop the run between two Python steps: run.json says `interrupted`
    and in which stage, the last checkpoint stays, and `Interrupted` is raised (exit 130/143)."""
    from dlpipe.training.distribute import writes_run_directory

    spec, document = load_document(spec_path, overrides)
    imports.check(spec, document)  # before any work: a module the command line did not allow is one line
    _check_backend(spec, document)
    # The run reads, keys, fingerprints and writes the spec with its paths made absolute, so
    # its spec.yaml is the very spec it ran, and running that file from anywhere repeats it.
    spec = resolved(spec, Path(base_dir or Path(spec_path).resolve().parent).resolve())
    if resume and out is None:
        raise DlpipeError("--resume needs --out DIR: the run directory to continue")
    root = Path(out) if out else RunDir.default_path(spec.name)
    chief = writes_run_directory(spec.training.strategy)
    if not chief:
        _activate(spec)
        return _train_as_worker(spec, document, spec_path, root, resume)
    task = tasks.get(spec.task)
    pipeline = task.hook("run")
    existing = RunDir.holds_run(root)
    resuming, rerun = resume and existing, existing and not resume
    if rerun and not task.supports("rerun"):
        # Only a pipeline that keys its stages can tell stale outputs (checkpoints of
        # another spec) from reusable ones.
        raise DlpipeError(f"{root}: already holds a run; choose another --out or remove it "
                          f"(the {spec.task} task does not rerun into a run directory yet)")
    if resuming:
        tasks.require(spec.task, "resume", root)
    run_dir = RunDir.reopen(root, rerun=rerun) if existing else RunDir.create(root)
    run_dir.cache = cache
    if resuming:
        try:
            _check_same_spec(run_dir, spec)
        except DlpipeError:
            run_dir.unlock()  # the interrupted run stays as it was
            raise
    # run.json's spec_file: its folder is where `dlpipe evaluate`/`export` resolve data paths
    # again; a spec given as a mapping (dlpipe.run) has no file, only that folder.
    spec_file = str(Path(spec_path).resolve()) if base_dir is None else str(Path(base_dir).resolve() / "(mapping)")
    tracker = None
    with _signals_interrupt():  # also while the outcome is recorded: a second signal waits
        try:
            if resuming:
                run_dir.resume(command=list(command or []))
            elif rerun:
                run_dir.restart(seed=spec.seed, command=list(command or []), spec_file=spec_file)
                atomic_write_text(run_dir.path("spec.yaml"), dump_spec(spec))
            else:
                run_dir.start(seed=spec.seed, command=list(command or []), spec_file=spec_file)
                atomic_write_text(run_dir.path("spec.yaml"), dump_spec(spec))
            # An experiment tracker that cannot be reached stops the run here, in one line,
            # before anything is read or trained (dlpipe/tracking.py).
            tracker = open_run_tracker(spec, run_dir.root, spec_file, parent=tracking_parent)
            # The spec is valid and the run directory writable (an unwritable --out fails in
            # a fraction of a second): import Keras on the spec's backend (TensorFlow without its
            # noise; on jax no TensorFlow at all: dlpipe/backend.py).
            _activate(spec)
            logger = [tracker.callback()] if tracker is not None else []  # first: a pruned epoch is logged too
            context = Context(spec, document, run_dir, Path(base_dir or Path(spec_path).resolve().parent).resolve(),
                              callbacks=[*logger, *callbacks, *testhooks.callbacks()])
            with backend.inference():  # on torch, autograd only inside train steps
                pipeline(context)
        except KeyboardInterrupt as err:
            signal_name = getattr(err, "signal_name", "SIGINT")
            stage = run_dir.current_stage
            during = f" during the {stage} stage" if stage else ""
            run_dir.finish("interrupted", f"interrupted by {signal_name}{during}", interrupted_stage=stage)
            _close(tracker, run_dir, "interrupted", f"interrupted by {signal_name}{during}")
            kept = " (checkpoints kept)" if run_dir.path("checkpoints", "last.npz").exists() else ""
            message = (f"interrupted by {signal_name}{during}{kept}; continue with: dlpipe run {spec_path} "
                       f"--out {run_dir.root} --resume")
            raise Interrupted(getattr(err, "signum", signal.SIGINT), message) from None
        except DlpipeError as err:
            run_dir.finish("failed", str(err))
            _close(tracker, run_dir, "failed", str(err))
            raise
        except BaseException as err:
            problem = write_error(err)
            if problem is not None:  # a full disk, a read-only folder: the user's to fix, one line
                run_dir.finish("failed", str(problem))
                _close(tracker, run_dir, "failed", str(problem))
                raise problem from None
            run_dir.finish("failed", f"{type(err).__name__}: {err}")
            _close(tracker, run_dir, "failed", f"{type(err).__name__}: {err}")
            raise
        else:
            run_dir.finish("completed")
            _close(tracker, run_dir, "completed")
        finally:
            run_dir.unlock()
    return run_dir.root


def _check_backend(spec: Spec, document: Document) -> None:
    """Before any work: the packages the spec's backend and steps need are installed
    (spec/backends.py, as `dlpipe validate` checks), and this process has not imported Keras
    on another backend."""
    from dlpipe import backend
    from dlpipe.spec.backends import check_environment
    from dlpipe.validation_cache import Observations

    problems = [locate(document, path, message) for path, message in check_environment(spec, Observations())]
    if problems:
        raise SpecError(problems)
    before = backend.current()
    if before is not None and before != spec.backend:
        backend.activate(spec.backend)  # raises the one line


def _activate(spec: Spec) -> None:
    from dlpipe import backend, collection

    backend.activate(spec.backend, deterministic=spec.training.deterministic is True)
    collection.settle()  # `dlpipe run`: the imports are done; collect less often from here


def _close(tracker, run_dir: RunDir, status: str, error: str | None = None) -> None:
    """Log the finished run directory to the tracker and end its run (never raises: a run's
    outcome does not depend on its tracker after the start)."""
    if tracker is None:
        return
    try:
        tracker.finish_run(run_dir.root, status, error)
    except Exception as err:  # noqa: BLE001 — the run's own outcome stands
        print(f"[dlpipe] warning: tracking.mlflow: the run's end was not logged: {type(err).__name__}: {err}",
              file=sys.stderr, flush=True)


@contextlib.contextmanager
def _signals_interrupt():
    """SIGINT and SIGTERM raise `Interrupted` in the main thread while the block runs (a
    second one, while the first is being handled, is ignored so the run can record it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def _check_same_spec(run_dir: RunDir, spec: Spec) -> None:
    """A resumed run must continue the spec it started with."""
    try:
        before = yaml.safe_load(run_dir.path("spec.yaml").read_text())
    except (OSError, yaml.YAMLError):
        raise DlpipeError(f"{run_dir.root}: cannot resume: spec.yaml is missing or unreadable") from None
    now = spec.model_dump(mode="json")
    difference = _first_difference(before, now)
    if difference is not None:
        key, old, new = difference
        raise DlpipeError(f"{run_dir.root}: cannot resume with a different spec: {key} was {old!r}, is now "
                          f"{new!r}; use the run's spec.yaml, or start a new run")


def _first_difference(a, b, path: str = ""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if a == b else (path, a, b)


def _train_as_worker(spec: Spec, document: Document, spec_path: str | Path, root: Path, resume: bool) -> Path:
    """A non-chief worker of a multi-worker run: it trains in lockstep with the others and
    writes nothing to the run directory (the chief does); its scratch folder is removed.
    To resume, it reads the chief's last checkpoint where `root` is on a shared filesystem."""
    import shutil
    import sys
    import tempfile

    from dlpipe.training.distribute import cluster

    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-worker-"))  # a new name: no other process uses it
    run_dir = None
    try:
        run_dir = RunDir.create(scratch)
        last = root / "checkpoints" / "last.npz"
        if resume and last.is_file():
            run_dir.path("checkpoints").mkdir()
            shutil.copyfile(last, run_dir.path("checkpoints", "last.npz"))
        run_dir.start(seed=spec.seed, command=[], spec_file=str(Path(spec_path).resolve()))
        context = Context(spec, document, run_dir, Path(spec_path).resolve().parent, chief=False)
        tasks.get(spec.task).hook("run")(context)
    finally:
        if run_dir is not None:
            run_dir.unlock()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"[dlpipe] {cluster().name}: training done; the chief writes the run directory", file=sys.stderr,
          flush=True)
    return root
