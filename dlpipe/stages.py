"""Stage blocks every pipeline shares, written once: the setup stage, history.csv, saving a
model file, and re-exporting a finished run. The pipelines (pipelines/*.py) stay readable
recipes; what they have in common lives here."""

from __future__ import annotations

from collections.abc import Sequence

from dlpipe.rundir import atomic_path, atomic_write_text


def setup(run_dir, spec) -> dict:
    """The setup stage's work: TensorFlow imported, seeds, op determinism, the environment in
    run.json; a missing export extra fails now, not after training."""
    from dlpipe.exporters.stage import check_available
    from dlpipe.training.determinism import configure

    environment = configure(spec.seed, spec.training)
    check_available(spec.export.formats)
    run_dir.update(deterministic=environment["deterministic"], device=environment["device"],
                   backend=environment["backend"], training=environment["training"],
                   versions={**run_dir.record["versions"], **environment["versions"]})
    return environment


def prepared_data(ctx, reused: bool):
    """The data stage's work for the supervised pipelines: the prepared data loaded from the
    stage cache when `reused`, else prepared from the spec and saved with data.json and
    splits.json; the data's fingerprint goes into run.json either way. Call it inside the
    run's `data` stage block; what a pipeline adds (labels.json, checks) follows it there."""
    from dlpipe.rundir import atomic_write_json
    from dlpipe.stagecache import load_data, save_data

    run_dir = ctx.run_dir
    if reused:
        data = load_data(run_dir)
    else:
        from dlpipe.data.prepare import prepare

        data = prepare(ctx.spec, ctx.base_dir, ctx.located)
        save_data(run_dir, data)
        atomic_write_json(run_dir.path("data.json"), data.describe())
        write_splits(run_dir, data)
    run_dir.update(data_fingerprint=data.fingerprint)
    return data


def write_splits(run_dir, data) -> None:
    """splits.json: which source rows (or files) each split holds (data/splits.py:
    split_record), so that anything else can be scored on the same rows. `data`: prepared
    data whose `extra["splits"]` holds the record, or the record itself."""
    from dlpipe.rundir import atomic_write_json

    record = data if isinstance(data, dict) else getattr(data, "extra", {}).get("splits")
    if record is not None:
        splits = {name: rows.tolist() if hasattr(rows, "tolist") else list(rows)
                  for name, rows in record["splits"].items()}
        atomic_write_json(run_dir.path("splits.json"), {**record, "splits": splits})


def history_csv(history: dict[str, list[float]]) -> str:
    """One row per epoch, a column per logged quantity (sorted), the epoch counted from 1."""
    names = sorted(history)
    epochs = len(next(iter(history.values()))) if history else 0
    rows = [",".join(["epoch", *names])]
    rows += [",".join([str(e + 1), *(repr(history[n][e]) for n in names)]) for e in range(epochs)]
    return "\n".join(rows) + "\n"


def save_training(run_dir, history: dict[str, list[float]], models: dict) -> None:
    """history.csv and each model file (name → Keras model), each written atomically."""
    atomic_write_text(run_dir.path("history.csv"), history_csv(history))
    for name, model in models.items():
        with atomic_path(run_dir.path(name)) as tmp:
            model.save(tmp)


def reexport(run, formats: Sequence[str] | None = None, *, prepare=None, export=None) -> dict:
    """`dlpipe export RUN_DIR`: the run's data prepared again (it must be the data it trained
    on: same fingerprint), its model.keras exported to `formats` and verified by the one
    export loop (exporters/stage.py). `prepare(spec, base_dir, located)` → the data and
    `export(model, spec, data, export_dir, formats=, metrics=, keras_file=)` are the task's
    (defaults: the supervised data stage and `export_model`)."""
    from dlpipe.errors import DataError
    from dlpipe.finished import read_json
    from dlpipe.rundir import RunDir
    from dlpipe.training.determinism import configure

    if prepare is None:
        from dlpipe.data.prepare import prepare
    if export is None:
        from dlpipe.exporters.stage import export_model as export

    run_dir = RunDir(run.root)
    run_dir.lock()
    try:
        configure(run.spec.seed)
        data = prepare(run.spec, run.base_dir, run.located)
        trained_on = run.record.get("data_fingerprint")
        if trained_on and trained_on != data.fingerprint:
            raise DataError(f"{data.origin}: the data differs from what {run.root} trained on (fingerprint "
                            f"{data.fingerprint[:19]}…, the run's {trained_on[:19]}…); retrain instead")
        model = run.load_model()
        metrics = {split: values for split, values in (read_json(run.root / "metrics.json") or {}).items()
                   if split != "baselines"} or None  # the model card lists the model's own numbers
        return export(model, run.spec, data, run.root / "export", formats=formats, metrics=metrics,
                      keras_file=run.root / "model.keras")
    finally:
        run_dir.unlock()
