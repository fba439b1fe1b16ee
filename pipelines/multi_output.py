"""Several targets from one set of features — task multi_output — read top to bottom.

    data      read the source, check every value, one label array per output of data.targets
              (classes or numbers), split, fit normalization on train
    setup     import Keras on the spec's backend, seed everything, turn on op determinism
    build     inputs (normalization inside) → architecture (the shared body) → one head per
              output; compile with each output's loss and loss weight
    train     fit with a dict of labels (tf.data on TensorFlow, numpy batches on jax); checkpoints/
              each epoch, resumed from when present; history.csv (loss, <output>_loss, <output>_accuracy / <output>_mae); model.keras
    evaluate  each output's metrics on validation and test → metrics.json as
              {split: {"<output>/<metric>": value}}, evaluation/<split>/<output>/, plots per
              output (plots/<output>_confusion_matrix.png, <output>_residuals.png); baselines
              fitted per output
    export    each format written, loaded back with its own runtime, every output compared →
              verification.json, model card
    report    learning curves and one self-contained page → report.html

Hooks: `reevaluate` (dlpipe evaluate, on the run's own splits), `reexport` (dlpipe export),
`deep_build` (dlpipe validate --deep).
"""

from __future__ import annotations

import sys

from dlpipe import stages
from dlpipe.rundir import atomic_write_json
from dlpipe.stagecache import (DATA_OUTPUTS, EVALUATION_OUTPUTS, EXPORT_OUTPUTS, MODEL_OUTPUTS, load_metrics, load_model,
                               stage_keys)


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir
    keys = stage_keys(spec, ctx.base_dir)
    reuse = {"data": run_dir.reusable("data", keys["data"], DATA_OUTPUTS, reads=True)}

    with run_dir.stage("data", key=keys["data"], reused=reuse["data"], reads=True):
        data = stages.prepared_data(ctx, reuse["data"])

    keys = stage_keys(spec, ctx.base_dir, data.fingerprint)
    reuse.update(train=run_dir.reusable("train", keys["train"], MODEL_OUTPUTS),
                 evaluate=run_dir.reusable("evaluate", keys["evaluate"], EVALUATION_OUTPUTS),
                 export=run_dir.reusable("export", keys["export"], EXPORT_OUTPUTS))

    with run_dir.stage("setup"):
        stages.setup(run_dir, spec)

    with run_dir.stage("build", key=keys["train"], reused=reuse["train"]):
        if reuse["train"]:
            model = load_model(run_dir, spec)
        else:
            from dlpipe.training.outputs import compile_multi_output

            model = deep_build(spec, ctx.base_dir, ctx.located, data)
            compile_multi_output(model, spec, data)
        run_dir.update(parameters=int(model.count_params()))

    with run_dir.stage("train", key=keys["train"], reused=reuse["train"], stale=("checkpoints",)):
        from dlpipe.training.fit import train

        if not reuse["train"]:
            history = train(model, spec, data, run_dir=run_dir, located=ctx.located, callbacks=ctx.callbacks)
            stages.save_training(run_dir, history, {"model.keras": model})

    with run_dir.stage("evaluate", key=keys["evaluate"], reused=reuse["evaluate"]):
        if reuse["evaluate"]:
            metrics = load_metrics(run_dir)
        else:
            metrics = _evaluate(model, spec, data, run_dir.root)

    with run_dir.stage("export", key=keys["export"], reused=reuse["export"], stale=("export",)):
        from dlpipe.exporters.outputs import export_outputs

        if not reuse["export"]:
            export_outputs(model, spec, data, run_dir.path("export"), metrics=metrics,
                           keras_file=run_dir.path("model.keras"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report

        write_report(run_dir.root, model=model)


def _evaluate(model, spec, data, folder, splits=None) -> dict:
    """metrics.json of every output (and its baselines, as the spec asks) into `folder`."""
    from dlpipe.metrics.evaluate import json_ready
    from dlpipe.metrics.outputs import baseline_summary, evaluate_outputs, output_baselines

    from dlpipe.report.evaluation import draw_outputs

    splits = list(spec.evaluation.splits if splits is None else splits)
    outputs = {}
    metrics = evaluate_outputs(model, spec, data, folder, splits, outputs)
    draw_outputs(folder / "plots", spec, data, outputs)
    if spec.evaluation.baselines:  # the same splits and metrics, plain predictors per output
        baselines = output_baselines(spec, data, splits)
        if baselines:
            atomic_write_json(folder / "metrics.json", {
                **json_ready(metrics), "baselines": {split: json_ready(values) for split, values in baselines.items()}})
            line = baseline_summary(spec, metrics, baselines)
            if line:
                print(f"[dlpipe] {line}", file=sys.stderr, flush=True)
    return metrics


def reevaluate(run, data=None):
    """`dlpipe evaluate RUN_DIR`: every output's metrics on the splits rebuilt from the run's
    spec → RUN_DIR/evaluations/<time>/ (metrics.json as in the run, baselines included)."""
    from dlpipe.data.prepare import prepare
    from dlpipe.errors import DlpipeError
    from dlpipe.evaluation import Evaluation, new_folder, record_evaluation, warn_if_changed
    from dlpipe.report import write_report
    from dlpipe.training.determinism import configure

    if data is not None:
        raise DlpipeError(f"--data {data}: task multi_output re-evaluates on the run's own splits; leave out --data")
    spec = run.spec
    prepared = prepare(spec, run.base_dir, run.located)
    warn_if_changed(run, prepared.fingerprint)
    configure(spec.seed)
    model = run.load_model()
    folder = new_folder(run.root)
    atomic_write_json(folder / "data.json", prepared.describe())
    metrics = _evaluate(model, spec, prepared, folder)
    record_evaluation(folder, run, list(metrics))
    write_report(run.root, folder, model=model, title=f"{spec.name}: evaluation of {folder.name}")
    return Evaluation(folder, metrics)


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR [--format F]`: model.keras, every output exported and verified."""
    from dlpipe.exporters.outputs import export_outputs

    return stages.reexport(run, formats, export=export_outputs)


def deep_build(spec, base_dir, located, data=None):
    """`dlpipe validate --deep`: the model this pipeline would train, from the data's shapes."""
    from dlpipe.architectures.assemble import build_with
    from dlpipe.architectures.outputs import build_multi_output

    if data is None:
        from dlpipe.data.prepare import prepare

        data = prepare(spec, base_dir, located)
    return build_with(build_multi_output, spec, data, located)
