"""`dlpipe tune`: an Optuna study whose trials are ordinary dlpipe runs.

The study directory (runs/<name>-tune, or --out):

    study.db              the SQLite storage, unless --storage names another database
    trials/trial-0007/    trial 7's run directory: spec.yaml, metrics.json, model.keras, ...
    logs/trial-0007.log   what the trial printed
    best.yaml             the best trial's resolved spec; `dlpipe run best.yaml` repeats it
    study.json            objective, space, every trial, best, parameter importance
    trials.csv            one row per trial
    report.html           one self-contained page

Trials run in this process, one after another: TensorFlow is imported once, the Keras
session is cleared before each trial, and each trial seeds itself from the spec's seed, so
a trial gives the same numbers here as `dlpipe run` of its spec in a fresh process.
Several `dlpipe tune` processes (on one machine or many) given the same storage share
one study: Optuna hands out trial numbers, and each process runs its own --trials.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna

from dlpipe import progress
from dlpipe.errors import DlpipeError, SpecError
from dlpipe.rundir import atomic_write_json
from dlpipe.spec import load_document
from dlpipe.tracking import finish_study, open_study_tracker
from dlpipe.tuning import report, space

_IDENTITY_EXEMPT = ("trials", "timeout", "sampler", "pruner")
"""Tuning keys that may change between runs of one study: how long and how to search,
not what a trial is."""


def _echo(message: str) -> None:
    progress.echo(message)  # above the study's progress line, on a terminal


def tune(spec_path: str | Path, *, overrides: Sequence[str] = (), trials: int | None = None,
         timeout: float | None = None, storage: str | None = None, study_name: str | None = None,
         out: str | Path | None = None, command: list[str] | None = None) -> Path:
    """Run (or continue) the study of a spec; returns the study directory."""
    overrides = list(overrides)
    spec, _ = load_document(spec_path, overrides)
    if spec.tuning is None:
        overrides.append("tuning={}")
        spec, _ = load_document(spec_path, overrides)
        searched = ", ".join(spec.tuning.search)
        _echo(f"tune: the spec has no tuning section; searching the default space ({searched})")
    tuning = spec.tuning
    trials = trials or tuning.trials
    timeout = timeout or tuning.timeout
    study_dir = Path(out) if out else Path("runs") / f"{spec.name}-tune"
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DlpipeError(f"{study_dir}: cannot create the study directory: {err.strerror}") from None
    url = storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    name = study_name or spec.name
    dims = space.dimensions(tuning.search)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    rdb, shown_url = open_storage(url)
    study = _open_study(rdb, shown_url, name, tuning.objective.direction, make_sampler(tuning, dims, spec.seed),
                        make_pruner(tuning, spec))
    _check_identity(study, spec, shown_url)
    _check_leftovers(study, study_dir, shown_url)

    # With tracking.mlflow: one MLflow run for this study, each trial a child run of it.
    tracker = open_study_tracker(spec, name, study_dir, shown_url)
    objective = _Objective(spec_path, spec, overrides, dims, study_dir, name, list(command or []),
                           tracking_parent=tracker.run_id if tracker is not None else None)
    sampler = study.sampler
    try:
        if tuning.sampler.type == "grid" and sampler.is_exhausted(study):
            _echo(f"tune: every point of the grid ({len(sampler._all_grids)}) has been tried; "
                  "nothing to run")
        else:
            until = f" (no new one after {timeout:g} s)" if timeout else ""
            _echo(f"tune: study {name!r} in {shown_url}: {trials} trial(s){until}, "
                  f"{tuning.sampler.type} sampler, {tuning.pruner.type} pruner, "
                  f"{tuning.objective.direction} validation {tuning.objective.shown}")
            with _console() as console, progress.task("tune", total=trials, unit="trials", stream=console,
                                                      always=True) as step:
                objective.step = step
                study.optimize(objective, n_trials=trials, timeout=timeout, catch=(DlpipeError,),
                               gc_after_trial=True)
                step.finish(f"{objective.ran} of {trials} trial(s) run by this process")
    finally:
        summary = report.write(study, spec, spec_path, study_dir, shown_url)
        finish_study(tracker, study_dir, summary)
    best = summary["best"]
    counts = ", ".join(f"{n} {state}" for state, n in summary["counts"].items() if n and state != "total")
    _echo(f"tune: {summary['counts']['total']} trial(s) in the study ({counts})")
    if best is None:
        raise DlpipeError(f"{study_dir}: no trial completed; see trials.csv for the reasons")
    _echo(f"tune: best trial {best['number']}: validation {tuning.objective.shown} "
          f"{best['value']:.6g}; {study_dir / 'best.yaml'} repeats it")
    return study_dir


# Storage and study -------------------------------------------------------------------------


# The module SQLAlchemy imports for a URL → the package that provides it.
_DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql",
            "MySQLdb": "mysqlclient", "mysql": "mysql-connector-python"}


def open_storage(url: str):
    """An RDB storage for `url`, and the URL to show (password hidden).

    SQLite: a worker waits up to 10 minutes for another's write instead of failing with
    "database is locked", and creating the tables is retried when workers start together."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise DlpipeError(f"--storage {url!r}: not a database URL; expected e.g. sqlite:///study.db, "
                          "postgresql://user:password@host/database, mysql+pymysql://user@host/database") from None
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 600}}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(10):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs), shown
        except ImportError as err:
            missing = getattr(err.__cause__ or err, "name", None) or str(err.__cause__ or err)
            package = _DRIVERS.get(missing, missing)
            raise DlpipeError(f"storage {shown}: its database driver is not installed (no module "
                              f"{missing!r}); pip install {package!r}") from None
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
            if attempt == 9:
                raise DlpipeError(f"storage {shown}: {_first_line(err)}") from None
            time.sleep(0.2 + random.random())  # another worker is creating the tables


def _open_study(rdb, shown_url: str, name: str, direction: str, sampler, pruner):
    import sqlalchemy

    for attempt in range(10):
        try:
            return optuna.create_study(storage=rdb, study_name=name, direction=direction, sampler=sampler,
                                       pruner=pruner, load_if_exists=True)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
            if attempt == 9:
                raise DlpipeError(f"storage {shown_url}: {_first_line(err)}") from None
            time.sleep(0.2 + random.random())


def _first_line(err: BaseException) -> str:
    text = str(err.__cause__ or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _identity(spec) -> dict:
    """What makes trials of one study comparable: the whole resolved spec, except the
    tuning keys that say how long and how to search, and where runs are tracked."""
    data = spec.model_dump(mode="json")
    data.pop("tracking", None)
    data["tuning"] = {k: v for k, v in data["tuning"].items() if k not in _IDENTITY_EXEMPT}
    return data


def _flatten(data, prefix: str = "") -> dict:
    if isinstance(data, dict) and data:
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(data, sort_keys=True)}


def _check_identity(study, spec, shown_url: str) -> None:
    mine = _identity(spec)
    stored = study.user_attrs.get("dlpipe.spec")
    if stored is None:
        study.set_user_attr("dlpipe.spec", mine)
        return
    if stored == mine:
        return
    ours, theirs = _flatten(mine), _flatten(stored)
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    listed = ", ".join(differ[:6]) + (", ..." if len(differ) > 6 else "")
    raise DlpipeError(f"study {study.study_name!r} in {shown_url} was started from a different spec "
                      f"(differs at: {listed}); trials of different specs are not comparable: "
                      "choose another --study-name or --out")


def _check_leftovers(study, study_dir: Path, shown_url: str) -> None:
    trials_dir = study_dir / "trials"
    # Listed before the storage is asked: a trial's directory is made after its record.
    leftovers = sorted(p.name for p in trials_dir.iterdir()) if trials_dir.is_dir() else []
    if leftovers and not study.get_trials(deepcopy=False):
        raise DlpipeError(f"{trials_dir}: holds trials ({leftovers[0]}, ...) of a study that {shown_url} "
                          "does not have; choose another --out, or remove them")


# Samplers and pruners -------------------------------------------------------------------------


def _trial_seed(seed: int, number: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class PerTrialSeed(optuna.samplers.BaseSampler):
    """A sampler whose random draws for trial N are seeded by (spec seed, N).

    One seeded sampler per process would make two workers of one study draw the same
    points; seeding per trial number keeps a study reproducible and its workers apart."""

    def __init__(self, make, seed: int):
        self._make, self._seed = make, seed
        self._current = make(seed)

    def before_trial(self, study, trial) -> None:
        self._current = self._make(_trial_seed(self._seed, trial.number))
        self._current.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._current.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._current.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._current.reseed_rng()


def make_sampler(tuning, dims, seed: int):
    kind = tuning.sampler.type
    if kind == "grid":
        # Trial N < grid size takes grid point N (shuffled by the seed), so workers that
        # start together split the grid instead of repeating points.
        return optuna.samplers.GridSampler({d.key: d.grid() for d in dims}, seed=seed)
    if kind == "random":
        return PerTrialSeed(lambda s: optuna.samplers.RandomSampler(seed=s), seed)
    startup = tuning.sampler.startup_trials
    # constant_liar: a worker treats trials still running elsewhere as poor results,
    # so parallel workers explore different regions.
    return PerTrialSeed(lambda s: optuna.samplers.TPESampler(
        seed=s, n_startup_trials=startup, constant_liar=True), seed)


def make_pruner(tuning, spec):
    pruner = tuning.pruner
    if pruner.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials,
                                           n_warmup_steps=pruner.warmup_epochs)
    if pruner.type == "hyperband":
        epochs_searched = any(key.split(".")[:2] == ["training", "epochs"] for key in tuning.search)
        return optuna.pruners.HyperbandPruner(
            min_resource=pruner.min_epochs, reduction_factor=pruner.reduction_factor,
            max_resource="auto" if epochs_searched else spec.training.epochs)
    return optuna.pruners.NopPruner()


# One trial ------------------------------------------------------------------------------------


class _Objective:
    def __init__(self, spec_path, spec, overrides, dims, study_dir: Path, name: str, command: list[str],
                 tracking_parent: str | None = None):
        self.spec_path, self.spec, self.overrides, self.dims = spec_path, spec, overrides, dims
        self.tracking_parent = tracking_parent
        self.study_dir, self.name, self.command = study_dir, name, command
        self.objective = spec.tuning.objective
        self.key, self.sign = space.progress_key(spec)
        self.step: progress.Task | None = None  # this process's progress over its trials
        self.ran = 0

    def __call__(self, trial: optuna.Trial) -> float:
        self._show(trial, "running")
        try:
            return self._run(trial)
        finally:
            self.ran += 1
            self._show(trial, "done")

    def _show(self, trial: optuna.Trial, state: str) -> None:
        if self.step is None:
            return
        best = ""
        with contextlib.suppress(ValueError):  # no completed trial yet
            if state == "done":  # this trial is not in the storage's best until it returns
                raise ValueError
            done = trial.study.best_trial  # as the storage holds it: every worker's trials
            best = f", best so far {done.value:.4g} (trial {done.number})"
        self.step.update(self.ran, note=f"trial {trial.number} {state}{best}")

    def _run(self, trial: optuna.Trial) -> float:
        from dlpipe.runner import dump_spec, run_spec
        from dlpipe.spec.paths import resolved

        values = {d.key: d.suggest(trial) for d in self.dims}
        params = ", ".join(f"{k}={space.shown(v)}" for k, v in values.items())
        label = f"trial {trial.number}"
        overrides = space.trial_overrides(self.spec, self.overrides, self.dims, values)
        try:
            trial_spec, _ = load_document(self.spec_path, overrides)
        except SpecError as err:
            reason = "invalid spec: " + "; ".join(
                f"{p.path}: {p.message}" if p.path else p.message for p in err.problems)
            trial.set_user_attr("reason", reason)
            _echo(f"{label}: pruned before training, {reason} ({params})")
            raise optuna.TrialPruned(reason) from None

        name = f"trial-{trial.number:04d}"
        run_dir = self.study_dir / "trials" / name
        log = self.study_dir / "logs" / f"{name}.log"
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        # Paths absolute, as in the trial's own spec.yaml: best.yaml lives in the study folder.
        trial.set_user_attr("spec", dump_spec(resolved(trial_spec, Path(self.spec_path).resolve().parent)))
        _echo(f"{label}: {params}")
        begun = time.perf_counter()
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _captured(log):
                _clear_keras()
                from dlpipe.tuning.callback import ReportEpochs  # imports Keras: its chatter goes to the log

                run_spec(self.spec_path, overrides=overrides, out=run_dir,
                         command=[*self.command, f"(trial {trial.number})"],
                         callbacks=[ReportEpochs(trial, self.key, self.sign)], tracking_parent=self.tracking_parent)
        except optuna.TrialPruned as pruned:
            _note_run(run_dir, "pruned", str(pruned), self.name, trial.number, values)
            trial.set_user_attr("reason", str(pruned))
            _echo(f"{label}: {pruned}")
            raise
        except DlpipeError as err:
            reason = str(err).splitlines()[0]
            trial.set_user_attr("reason", reason)
            _echo(f"{label}: failed: {reason} (log: {log})")
            raise
        seconds = time.perf_counter() - begun
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        scores = metrics.get(self.objective.split, {})
        value = self.objective.value(scores)  # null: undefined on this split (NaN)
        if value is None:
            raise DlpipeError(f"{run_dir}: metrics.json has no {self.objective.split} {self.objective.shown}")
        if not math.isfinite(value):
            reason = f"validation {self.objective.shown} is {value} (training diverged?)"
            trial.set_user_attr("reason", reason)
            _echo(f"{label}: failed: {reason}")
            raise DlpipeError(reason)
        trial.set_user_attr("metrics", scores)
        trial.set_user_attr("seconds", round(seconds, 3))
        _note_run(run_dir, None, None, self.name, trial.number, values)
        _echo(f"{label}: validation {self.objective.shown} {value:.6g} in {seconds:.1f} s")
        return value


@contextlib.contextmanager
def _console():
    """Where the study's progress line goes: stderr as it is now, which on a terminal stays
    the terminal while each trial's own output is captured to its log (_captured moves
    file descriptor 2)."""
    if not progress.is_terminal(sys.stderr):
        yield sys.stderr
        return
    sys.stderr.flush()
    console = os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding=sys.stderr.encoding or "utf-8",
                        errors="replace", buffering=1)
    try:
        yield console
    finally:
        console.close()


@contextlib.contextmanager
def _captured(path: Path):
    """Send everything a trial prints to its log file, down to the file descriptors:
    TensorFlow's C++ messages and the tensorflow logger (whose handler holds the original
    stderr) write there directly. The console keeps one line per trial."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            handle.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _clear_keras() -> None:
    """Free the previous trial's models; trial seeds are set again by the run itself."""
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def _note_run(run_dir: Path, status: str | None, error: str | None, study: str, number: int, values: dict) -> None:
    """Record in the trial's run.json which study it belongs to (and that it was pruned:
    the runner saw only an exception)."""
    path = run_dir / "run.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    record["tuning"] = {"study": study, "trial": number, "params": values}
    if status is not None:
        record["status"], record["error"] = status, error
    atomic_write_json(path, record)
