"""The `tracking` section: where a run is also recorded, beside its run directory."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Optional

from pydantic import Field

from dlpipe.spec.base import StrictModel

Name = Annotated[str, Field(min_length=1, max_length=250)]


class MLflow(StrictModel):
    """An MLflow tracking server (or store) that each run is logged to: the resolved spec as
    parameters, every epoch's training metrics, the final metrics, the data fingerprint and
    versions as tags, and report.html, the model card and model.keras as artifacts. `dlpipe
    tune` logs each trial as a child run of one run for the study. A tracker that cannot be
    reached fails the run before any data is read, in one line; one lost later only warns."""

    tracking_uri: Annotated[str, Field(min_length=1, max_length=2000)]
    """The tracking server, e.g. http://127.0.0.1:5000 (or a store MLflow opens itself:
    sqlite:///mlflow.db, a folder). Needs `pip install 'dlpipe[mlflow]'`."""
    experiment: Optional[Name] = None
    """The experiment runs are logged under (created when missing); default: the spec's name."""
    run_name: Optional[Name] = None
    """The run's name in MLflow; default: the run directory's name (a trial's: trial-NNNN)."""


class Tracking(StrictModel):
    """Experiment trackers to record runs in."""

    mlflow: Optional[MLflow] = None
    """Log to MLflow."""
