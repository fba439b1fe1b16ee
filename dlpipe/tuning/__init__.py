"""Hyperparameter search over spec keys (`dlpipe tune`), on Optuna.

Optuna is an optional dependency (the `tune` extra); it is imported only when a study
runs, never by `dlpipe validate` or the spec layer.
"""

from __future__ import annotations


def tune(spec_path, *, overrides=(), **options):
    """Validate the spec (every problem, before anything heavy is imported), then run
    dlpipe.tuning.study.tune."""
    from dlpipe import imports
    from dlpipe.spec import load_document

    imports.check(*load_document(spec_path, overrides))
    try:
        import optuna  # noqa: F401
    except ImportError:
        from dlpipe.errors import DlpipeError

        raise DlpipeError("dlpipe tune needs Optuna: pip install 'dlpipe[tune]'") from None
    from dlpipe.tuning.study import tune as run

    return run(spec_path, overrides=overrides, **options)
