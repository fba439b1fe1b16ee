"""Experiment tracking: a run recorded in MLflow as well as in its run directory.

With `tracking.mlflow` in the spec, `dlpipe run` (dlpipe/runner.py) opens an MLflow run
before the pipeline starts — the one moment a tracker that cannot be reached fails the run,
in one line, before any data is read or anything trained — and logs:

    params     the resolved spec, flattened to dotted keys (training.optimizer.learning_rate);
               lists as JSON text; the tracking section itself is left out (its URI may
               hold a password)
    metrics    every epoch's training values as the epoch ends (loss, val_loss, accuracy,
               learning_rate, ...; step = the epoch, 1-based as in history.csv), and at the
               end every number of metrics.json by its path: `<split>/<metric>`
               (test/accuracy) and the baselines' `baselines/<split>/<baseline>/<metric>`
    tags       dlpipe.task, dlpipe.run_dir, dlpipe.status (completed, failed, interrupted),
               dlpipe.data_fingerprint, versions (dlpipe, python, tensorflow, keras, ...)
    artifacts  report.html, export/model_card.md and .json, model.keras (under model/),
               history.csv, metrics.json, spec.yaml, run.json

Epochs the run did not train in this process (reused by the stage cache, or done before a
`--resume`) are logged from history.csv at the end. `dlpipe tune` opens one run for the
study and passes its id: each trial is its child run (`mlflow.parentRunId`).

After the start, the tracker never fails a run: a lost connection prints one warning and
logging stops. MLflow's HTTP retries are shortened (3 tries, 20 s each; the environment's
MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT win) so a lost server cannot stall a run long.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dlpipe.version import __version__
from dlpipe.errors import DlpipeError

PARAM_LIMIT = 6000
"""MLflow's longest parameter value (characters); longer values are cut and marked."""
BATCH = 100
"""Most params (and metrics) MLflow takes in one log_batch call."""
ARTIFACTS = ("report.html", "export/model_card.md", "export/model_card.json", "history.csv", "metrics.json",
             "spec.yaml", "run.json")


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """{"training": {"epochs": 3}} → {"training.epochs": "3"}; lists and scalars as JSON text."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > PARAM_LIMIT:
        mark = "… (cut; see spec.yaml)"
        text = text[: PARAM_LIMIT - len(mark)] + mark
    return {prefix: text}


def _check_reachable(uri: str) -> None:
    """An http(s) tracking server answers /health within seconds, or the run stops here."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            answer.read(64)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):  # behind authentication: MLflow's client brings the credentials
            return
        raise _unreachable(uri, f"HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise _unreachable(uri, str(getattr(reason, "strerror", None) or reason)) from None


def _unreachable(uri: str, reason: str) -> DlpipeError:
    return DlpipeError(f"tracking.mlflow.tracking_uri: cannot reach the MLflow server at {_shown(uri)} ({reason}); "
                       "start it, or remove tracking from the spec; nothing was trained")


def _shown(uri: str) -> str:
    """The URI without a password (https://user:secret@host → https://user:***@host)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def versions() -> dict[str, str]:
    """Tags of the software that made the run (TensorFlow and Keras only when imported)."""
    found = {"dlpipe.version": __version__, "python.version": platform.python_version()}
    for module in ("tensorflow", "keras", "numpy"):
        if module in sys.modules:
            found[f"{module}.version"] = str(getattr(sys.modules[module], "__version__", "?"))
    return found


class MLflowRun:
    """One MLflow run for one dlpipe run (or for a `dlpipe tune` study)."""

    def __init__(self, client, run_id: str, uri: str, log=None):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.log = log or sys.stderr
        self.lost = False
        self.epochs_logged: set[int] = set()
        self.experiment_id: str | None = None

    @classmethod
    def start(cls, settings, *, name: str, run_name: str, tags: dict[str, str] | None = None,
              params: dict[str, str] | None = None, parent: str | None = None, log=None) -> "MLflowRun":
        """Open a run (experiment `settings.experiment` or `name`, created when missing);
        every failure is one line naming `tracking.mlflow`."""
        uri = settings.tracking_uri
        _check_reachable(uri)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        # MLflow writes the run's address on stdout, where `dlpipe run` prints only the run
        # directory; finish_run says it on stderr instead.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as err:
            raise DlpipeError(f"tracking.mlflow: needs the mlflow package ({err.name} is missing): "
                              "pip install 'dlpipe[mlflow]'") from None
        experiment = settings.experiment or name
        try:
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(experiment)
            if found is None:
                try:
                    experiment_id = client.create_experiment(experiment)
                except Exception:  # noqa: BLE001 — another process created it meanwhile
                    found = client.get_experiment_by_name(experiment)
                    if found is None:
                        raise
                    experiment_id = found.experiment_id
            else:
                experiment_id = found.experiment_id
            all_tags = {**(tags or {}), **({"mlflow.parentRunId": parent} if parent else {})}
            run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        except DlpipeError:
            raise
        except Exception as err:  # noqa: BLE001 — MLflow raises many kinds; the user gets one line
            raise DlpipeError(f"tracking.mlflow: cannot open a run at {_shown(uri)}, experiment {experiment!r}: "
                              f"{_first_line(err)}") from None
        tracker = cls(client, run.info.run_id, uri, log)
        tracker.experiment_id = experiment_id
        if params:
            tracker.log_params(params, strict=True)
        return tracker

    # Logging: after the start, a failure warns once and logging stops ------------------------

    def _safely(self, what: str, call, *args, **kwargs) -> bool:
        if self.lost:
            return False
        try:
            call(*args, **kwargs)
            return True
        except Exception as err:  # noqa: BLE001 — the run goes on without its tracker
            self.lost = True
            print(f"[dlpipe] warning: tracking.mlflow: cannot log {what} to {_shown(self.uri)} "
                  f"({_first_line(err)}); the run goes on without MLflow", file=self.log, flush=True)
            return False

    def log_params(self, params: dict[str, str], strict: bool = False) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), BATCH):
            if strict:
                try:
                    self.client.log_batch(self.run_id, params=items[start:start + BATCH])
                except Exception as err:  # noqa: BLE001
                    raise DlpipeError(f"tracking.mlflow: cannot log the spec as parameters to {_shown(self.uri)}: "
                                      f"{_first_line(err)}") from None
            elif not self._safely("parameters", self.client.log_batch, self.run_id,
                                  params=items[start:start + BATCH]):
                return

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step or 0) for key, value in values.items()
                 if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool)]
        for start in range(0, len(items), BATCH):
            if not self._safely("metrics", self.client.log_batch, self.run_id, metrics=items[start:start + BATCH]):
                return

    def log_epoch(self, epoch: int, logs: dict) -> None:
        """One epoch's values (epoch 1-based, as history.csv counts)."""
        values = {}
        for key, value in logs.items():
            try:
                number = float(value)  # Keras may log NumPy or tensor scalars
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                values[key] = number
        self.log_metrics(values, step=epoch)
        self.epochs_logged.add(epoch)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            if not self._safely("tags", self.client.set_tag, self.run_id, key, str(value)[:PARAM_LIMIT]):
                return

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if path.is_file():
            self._safely(path.name, self.client.log_artifact, self.run_id, str(path), folder)

    def end(self, status: str) -> None:
        """status: completed, failed or interrupted (MLflow: FINISHED, FAILED, KILLED)."""
        state = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}.get(status, "FAILED")
        self._safely("the run's end", self.client.set_terminated, self.run_id, state)

    # A dlpipe run ------------------------------------------------------------------------------

    def callback(self):
        """A Keras callback logging each epoch's values as it ends."""
        import keras

        tracker = self

        class LogEpochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                tracker.log_epoch(epoch + 1, dict(logs or {}))

        return LogEpochs()

    def finish_run(self, root: Path, status: str, error: str | None = None) -> None:
        """Log what the run directory holds at its end, then close the MLflow run."""
        from dlpipe.rundir import read_history

        history = read_history(root / "history.csv")
        epochs = history.pop("epoch", None) or []
        for row, epoch in enumerate(epochs):  # epochs not trained in this process (reused, resumed)
            step = int(epoch) if _finite(epoch) else row + 1
            if step not in self.epochs_logged:
                self.log_epoch(step, {key: values[row] for key, values in history.items()})
        self.log_metrics(numbers(_read_json(root / "metrics.json")))
        record = _read_json(root / "run.json")
        tags = {"dlpipe.status": status, **versions()}
        if record.get("data_fingerprint"):
            tags["dlpipe.data_fingerprint"] = record["data_fingerprint"]
        for name, version in (record.get("versions") or {}).items():
            tags[f"{name}.version"] = str(version)
        if error:
            tags["dlpipe.error"] = error.splitlines()[0] if error.strip() else error
        self.set_tags(tags)
        for name in ARTIFACTS:
            self.log_artifact(root / name, str(Path(name).parent) if "/" in name else None)
        self.log_artifact(root / "model.keras", "model")
        self.end(status)
        if not self.lost:
            print(f"[dlpipe] tracking: logged to MLflow as {self.address()}", file=self.log, flush=True)

    def address(self) -> str:
        """Where a person finds the run: its page on an http(s) server, else the store and run id."""
        if self.uri.startswith(("http://", "https://")) and self.experiment_id is not None:
            return f"{_shown(self.uri).rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return f"run {self.run_id} in {_shown(self.uri)}"


def open_run_tracker(spec, root: Path, spec_file: str, parent: str | None = None, log=None) -> MLflowRun | None:
    """The MLflow run of a dlpipe run about to start in `root`, or None without tracking."""
    settings = getattr(spec.tracking, "mlflow", None) if spec.tracking is not None else None
    if settings is None:
        return None
    dump = spec.model_dump(mode="json")
    dump.pop("tracking", None)
    tags = {"dlpipe.task": spec.task, "dlpipe.run_dir": str(Path(root).resolve()), "dlpipe.status": "running",
            "mlflow.source.name": spec_file, "mlflow.source.type": "LOCAL", **versions()}
    return MLflowRun.start(settings, name=spec.name, run_name=settings.run_name or Path(root).name, tags=tags,
                           params=flatten(dump), parent=parent, log=log)


def open_study_tracker(spec, study: str, study_dir: Path, storage: str, log=None) -> MLflowRun | None:
    """The MLflow run of a `dlpipe tune` study (its trials are child runs), or None."""
    settings = getattr(spec.tracking, "mlflow", None) if spec.tracking is not None else None
    if settings is None:
        return None
    tuning = spec.model_dump(mode="json").get("tuning") or {}
    tags = {"dlpipe.task": spec.task, "dlpipe.study": study, "dlpipe.storage": storage,
            "dlpipe.run_dir": str(Path(study_dir).resolve()), "dlpipe.status": "running", **versions()}
    return MLflowRun.start(settings, name=spec.name, run_name=Path(study_dir).name, tags=tags,
                           params=flatten({"tuning": tuning}), log=log)


def finish_study(tracker: MLflowRun | None, study_dir: Path, summary: dict) -> None:
    """The study's outcome: its best value (`best/<split>_<metric>`), counts, and its files."""
    if tracker is None:
        return
    best, objective = summary.get("best"), summary.get("objective") or {}
    counts = {f"trials/{state}": n for state, n in (summary.get("counts") or {}).items()}
    if best is not None:
        key = f"best/{objective.get('split', 'validation')}_{objective.get('metric', 'objective')}"
        tracker.log_metrics({key: best["value"], "best/trial": best["number"], **counts})
        tracker.set_tags({"dlpipe.best_trial": best["number"], "dlpipe.best_run_dir": best.get("run_dir", "")})
    else:
        tracker.log_metrics(counts)
    for name in ("best.yaml", "study.json", "trials.csv", "report.html"):
        tracker.log_artifact(Path(study_dir) / name)
    status = "completed" if best is not None else "failed"
    tracker.set_tags({"dlpipe.status": status})
    tracker.end(status)
    if not tracker.lost:
        print(f"[dlpipe] tracking: study logged to MLflow as {tracker.address()}", file=tracker.log, flush=True)


def numbers(value, prefix: str = "") -> dict[str, float]:
    """metrics.json's finite numbers by path: {"test": {"accuracy": x}} → {"test/accuracy": x};
    the baselines' {"baselines": {"test": {"majority_class": {...}}}} → baselines/test/majority_class/…"""
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for key, item in value.items():
            out.update(numbers(item, f"{prefix}/{key}" if prefix else str(key)))
        return out
    return {prefix: float(value)} if _finite(value) else {}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
