"""Supervised learning — classification and regression — read top to bottom.

    data      read the source, check every value, split, fit normalization on train
    setup     import TensorFlow, seed everything, turn on op determinism
    build     inputs (normalization inside) → architecture → head; compile
    teacher   (with `distillation`) the teacher checked against the data, its outputs on every
              training and validation example computed once (cache/teacher.npz)
    train     fit on tf.data (or the multi-worker loop); checkpoints/ each epoch, resumed
              from when present; history.csv; model.keras
    evaluate  the spec's metrics on validation and test → metrics.json, evaluation/, plots/
    export    each format written, loaded back with its own runtime, compared → verification.json,
              model card
    explain   (with evaluation.explain) attributions per feature, global and for chosen test
              rows → explanations/
    report    learning curves and one self-contained page → report.html

Run again into the same folder, each stage whose cache key is unchanged is reused rather
than run (dlpipe/stagecache.py): change only `export` and nothing is prepared or trained.

Tasks classification, regression and forecasting (dlpipe/tasks/) run here. Hooks for the
other commands: `reevaluate` (dlpipe evaluate), `reexport` (dlpipe export), `deep_build`
(dlpipe validate --deep), `explain` (dlpipe explain).
"""

from __future__ import annotations

import sys

from dlpipe import stages
from dlpipe.rundir import atomic_write_json
from dlpipe.stagecache import (DATA_OUTPUTS, EVALUATION_OUTPUTS, EXPLAIN_OUTPUTS, EXPORT_OUTPUTS, MODEL_OUTPUTS,
                               load_metrics, load_model, stage_keys)


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir
    # Stage cache keys (dlpipe/stagecache.py): a stage whose key an earlier run into this
    # folder completed is reused, its outputs loaded instead of computed.
    # The data stage is reused only if every file it read last time hashes the same (reads).
    keys = stage_keys(spec, ctx.base_dir)
    reuse = {"data": run_dir.reusable("data", keys["data"], DATA_OUTPUTS, reads=True)}

    with run_dir.stage("data", key=keys["data"], reused=reuse["data"], reads=True):
        data = stages.prepared_data(ctx, reuse["data"])
        if not reuse["data"] and data.class_names is not None:  # class names in index order: output i is labels[i]
            atomic_write_json(run_dir.path("labels.json"), data.class_names)
        n_classes = len(data.class_names) if data.class_names else None
        from dlpipe.spec.checks import check_metric_classes

        for path, message in check_metric_classes(spec, n_classes):  # precision of 3 classes: refused before training
            raise ctx.located(path, message)
        if spec.evaluation.explain is not None:  # methods that do not fit the features found: before training
            from dlpipe.explanation import check_explainable

            check_explainable(spec, data, ctx.located)

    # The later stages chain on the prepared data itself: changed pixels retrain.
    keys = stage_keys(spec, ctx.base_dir, data.fingerprint)
    reuse.update(train=run_dir.reusable("train", keys["train"], MODEL_OUTPUTS),
                 evaluate=run_dir.reusable("evaluate", keys["evaluate"], EVALUATION_OUTPUTS),
                 export=run_dir.reusable("export", keys["export"], EXPORT_OUTPUTS),
                 explain=run_dir.reusable("explain", keys["explain"], EXPLAIN_OUTPUTS))

    with run_dir.stage("setup"):
        stages.setup(run_dir, spec)
        if spec.evaluation.explain is not None:  # a missing shap fails now, not after training
            from dlpipe.explain.stage import check_available

            check_available(spec.evaluation.explain.methods)

    with run_dir.stage("build", key=keys["train"], reused=reuse["train"]):
        from dlpipe.training.compile import compile_model

        if reuse["train"]:
            model = load_model(run_dir, spec)
        else:
            model = build(spec, data, ctx.located)
            compile_model(model, spec, n_classes, ctx.located)
        run_dir.update(parameters=int(model.count_params()))

    teacher, fitting = None, data
    if spec.distillation is not None:
        with run_dir.stage("teacher", key=keys["train"], reused=reuse["train"]):
            # The teacher's outputs on every training and validation example, once
            # (cache/teacher.npz), then carried by the targets (dlpipe/distillation.py).
            if not reuse["train"]:
                from dlpipe.distillation import cached, open_teacher

                teacher = open_teacher(spec, data, ctx.located)
                fitting = teacher.packed(data, cached(teacher, data, run_dir.path("cache")))

    with run_dir.stage("train", key=keys["train"], reused=reuse["train"], stale=("checkpoints",)):
        from dlpipe.training.fit import train

        if not reuse["train"]:
            history = train(model, spec, fitting, run_dir=run_dir, located=ctx.located,
                            callbacks=[*(ctx.callbacks or []), *quantize_from(spec)],
                            wrap_augment=teacher.augment if teacher is not None else None)
            if not ctx.chief:
                return  # another worker of a multi-worker run: the chief evaluates, exports, writes
            calibrate_quantization(model, spec, data, run_dir)
            stages.save_training(run_dir, history, {"model.keras": model})

    with run_dir.stage("evaluate", key=keys["evaluate"], reused=reuse["evaluate"]):
        from dlpipe.metrics.evaluate import evaluate

        if reuse["evaluate"]:
            metrics = load_metrics(run_dir)
        else:
            from dlpipe.report.evaluation import draw_evaluation

            outputs = {}
            metrics = evaluate(model, spec, data, run_dir.root, spec.evaluation.splits, outputs)
            draw_evaluation(run_dir.path("plots"), spec, data, outputs)
            if spec.evaluation.baselines:  # the same splits and metrics, plain predictors
                from dlpipe.metrics.baselines import baseline_scores, summary
                from dlpipe.metrics.evaluate import json_ready

                baselines = baseline_scores(spec, data, spec.evaluation.splits)
                if baselines:
                    atomic_write_json(run_dir.path("metrics.json"), {
                        **json_ready(metrics), "baselines": {split: json_ready(values)
                                                             for split, values in baselines.items()}})
                    line = summary(spec, metrics, baselines)
                    if line:
                        print(f"[dlpipe] {line}", file=sys.stderr, flush=True)

    with run_dir.stage("export", key=keys["export"], reused=reuse["export"], stale=("export",)):
        from dlpipe.exporters.stage import export_model

        if not reuse["export"]:
            export_model(model, spec, data, run_dir.path("export"), metrics=metrics,
                         keras_file=run_dir.path("model.keras"))

    if spec.evaluation.explain is not None:
        with run_dir.stage("explain", key=keys["explain"], reused=reuse["explain"]):
            if not reuse["explain"]:
                from dlpipe.explanation import explain_prepared

                explain_prepared(model, spec, data, run_dir.path("explanations"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report

        write_report(run_dir.root, model=model)


def reevaluate(run, data=None):
    """`dlpipe evaluate RUN_DIR [--data FILE]` (dlpipe/evaluation.py)."""
    from dlpipe.evaluation import reevaluate

    return reevaluate(run, data)


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR [--format F]`."""
    return stages.reexport(run, formats)


def explain(run, data=None, methods=None, rows=None):
    """`dlpipe explain RUN_DIR [--data FILE] [--method M] [--rows N]` (dlpipe/explanation.py)."""
    from dlpipe.explanation import reexplain

    return reexplain(run, data, methods, rows)


def build(spec, data, located):
    """The model to train: the architecture, rebuilt with int8-simulating layers for
    quantization-aware training."""
    from dlpipe.architectures.assemble import build_model

    model = build_model(spec, data, located)
    if spec.compression is not None and spec.compression.quantization_aware is not None:
        from dlpipe.architectures.quantization import quantization_aware

        model = quantization_aware(model, spec.compression.quantization_aware.ema_decay)
    return model


def calibrate_quantization(model, spec, data, run_dir) -> None:
    """Quantization-aware training: the trained model's input ranges set to those the int8
    TFLite export calibrates (the same seeded draw of training examples), so that its
    metrics are the int8 file's; run.json's `quantization_aware` records them."""
    if spec.compression is None or spec.compression.quantization_aware is None:
        return
    from dlpipe.architectures.quantization import calibrate
    from dlpipe.exporters.stage import representative

    examples = representative(spec, data)
    ranges = calibrate(model, examples)
    run_dir.update(quantization_aware={"start_epoch": spec.compression.quantization_aware.start_epoch,
                                       "calibration_examples": len(next(iter(examples.values()))),
                                       "input_ranges": ranges})


def quantize_from(spec) -> list:
    """The callback that starts int8 simulation at compression.quantization_aware.start_epoch."""
    if spec.compression is None or spec.compression.quantization_aware is None:
        return []
    from dlpipe.architectures.quantization import QuantizeFrom

    return [QuantizeFrom(spec.compression.quantization_aware.start_epoch)]


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: the model this pipeline would train, from the data's shapes."""
    from dlpipe.data.prepare import prepare

    data = prepare(spec, base_dir, located)
    if spec.distillation is not None:  # the teacher against the data: its classes, inputs, outputs
        from dlpipe.distillation import open_teacher

        open_teacher(spec, data, located, base_dir)
    return build(spec, data, located)
