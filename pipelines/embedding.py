"""Embeddings — an autoencoder learns to reproduce its input through a narrow latent
vector; its encoder is the product. Read top to bottom.

    data      read the source (labels optional), check every value, split, fit normalization on train
    setup     import Keras on the spec's backend, seed everything, turn on op determinism
    build     inputs (normalization inside) → encoder → latent → decoder; compile with the
              mean squared reconstruction error
    train     fit on the normalized inputs as their own targets; checkpoints/ each epoch,
              resumed from when present; history.csv; model.keras (the ENCODER) and
              autoencoder.keras (encoder + decoder)
    evaluate  reconstruction_mse on each split; with labels, knn_accuracy: a k-nearest-
              neighbours classifier fitted on the training embeddings, scored on each split
              → metrics.json; the test embeddings drawn → plots/embeddings.png
    export    the encoder in each format, loaded back with its own runtime, compared →
              verification.json, model card
    report    learning curves and one self-contained page → report.html

`dlpipe predict RUN_DIR rows.csv` then writes one embedding per example. Hooks:
`reevaluate` (dlpipe evaluate: the metrics on the rebuilt splits), `reexport` (dlpipe
export: the encoder), `deep_build` (dlpipe validate --deep: the autoencoder).
"""

from __future__ import annotations

import dataclasses

from dlpipe import stages
from dlpipe.rundir import atomic_write_json


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir

    with run_dir.stage("data"):
        from dlpipe.data.prepare import prepare

        data = prepare(spec, ctx.base_dir, ctx.located)
        atomic_write_json(run_dir.path("data.json"), data.describe())
        stages.write_splits(run_dir, data)
        run_dir.update(data_fingerprint=data.fingerprint)

    with run_dir.stage("setup"):
        stages.setup(run_dir, spec)

    with run_dir.stage("build"):
        from dlpipe.architectures.autoencoder import build_embedding
        from dlpipe.training.compile import compile_model

        models = build_embedding(spec, data, ctx.located)
        compile_model(models.autoencoder, spec, None, ctx.located)
        run_dir.update(parameters=int(models.autoencoder.count_params()),
                       encoder_parameters=int(models.encoder.count_params()))

    with run_dir.stage("train"):
        from dlpipe.data.pipeline import predict
        from dlpipe.training.fit import train

        # The target of each example is its own normalized input. The `original` model
        # computes it with the very normalization layers the autoencoder reads through.
        targets = {name: predict(models.original, split.x) for name, split in data.splits.items()}
        to_reproduce = dataclasses.replace(data, splits={
            name: dataclasses.replace(split, y=targets[name]) for name, split in data.splits.items()})
        history = train(models.autoencoder, spec, to_reproduce, run_dir=run_dir, located=ctx.located,
                        callbacks=ctx.callbacks)
        if not ctx.chief:
            return  # another worker of a multi-worker run: the chief evaluates, exports, writes
        stages.save_training(run_dir, history, {"model.keras": models.encoder,
                                                "autoencoder.keras": models.autoencoder})

    with run_dir.stage("evaluate"):
        metrics = evaluate_embedding(models, spec, data, targets, run_dir.root)

    with run_dir.stage("export"):
        from dlpipe.exporters.stage import export_model

        export_model(models.encoder, spec, data, run_dir.path("export"), metrics=metrics)

    with run_dir.stage("report"):
        from dlpipe.report import write_report

        write_report(run_dir.root, model=models.autoencoder)  # the model section: all that trained


def evaluate_embedding(models, spec, data, targets, out) -> dict:
    """The spec's metrics per split → out/metrics.json; the last split's embeddings drawn →
    out/plots/embeddings.png."""
    from dlpipe.data.pipeline import predict
    from dlpipe.metrics.embedding import evaluate
    from dlpipe.metrics.evaluate import json_ready
    from dlpipe.report.evaluation import draw_embeddings

    metrics = evaluate(models, spec, data, targets, spec.evaluation.splits)
    atomic_write_json(out / "metrics.json", json_ready(metrics))
    if metrics:
        last = list(metrics)[-1]
        draw_embeddings(out / "plots", data, last, predict(models.encoder, data.splits[last].x))
    return metrics


def reevaluate(run, data=None):
    """`dlpipe evaluate RUN_DIR`: reconstruction_mse and knn_accuracy on the splits rebuilt
    from the run's spec → RUN_DIR/evaluations/<time>/. The three views of the autoencoder are
    built again from the spec and given autoencoder.keras's weights (model.keras is the
    encoder alone; the reconstruction needs the decoder too)."""
    from dlpipe.architectures.autoencoder import build_embedding
    from dlpipe.data.pipeline import predict
    from dlpipe.data.prepare import prepare
    from dlpipe.errors import DlpipeError
    from dlpipe.evaluation import Evaluation, new_folder, record_evaluation, warn_if_changed
    from dlpipe.report import write_report
    from dlpipe.training.determinism import configure

    if data is not None:
        raise DlpipeError(f"--data {data}: task embedding re-evaluates on the run's own splits; leave out --data")
    spec = run.spec
    prepared = prepare(spec, run.base_dir, run.located)
    warn_if_changed(run, prepared.fingerprint)
    configure(spec.seed)
    trained = run.load_model("autoencoder.keras")
    models = build_embedding(spec, prepared, run.located)
    models.autoencoder.set_weights(trained.get_weights())
    targets = {name: predict(models.original, split.x) for name, split in prepared.splits.items()}
    folder = new_folder(run.root)
    atomic_write_json(folder / "data.json", prepared.describe())
    metrics = evaluate_embedding(models, spec, prepared, targets, folder)
    record_evaluation(folder, run, list(metrics), models=("autoencoder.keras",))
    write_report(run.root, folder, model=models.autoencoder, title=f"{spec.name}: evaluation of {folder.name}")
    return Evaluation(folder, metrics)


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR`: model.keras is the encoder; it is exported as in the run."""
    return stages.reexport(run, formats)


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: what trains is the autoencoder (encoder + decoder)."""
    from dlpipe.architectures.autoencoder import build_embedding
    from dlpipe.data.prepare import prepare

    return build_embedding(spec, prepare(spec, base_dir, located), located).autoencoder
