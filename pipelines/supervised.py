"""Supervised learning — classification and regression — read top to bottom.

    data      read the source, check every value, split, fit normalization on train
    build     inputs (normalization inside) → architecture → head; compile
    train     fit on tf.data (or the multi-worker loop); checkpoints/ each epoch, resumed
              from when present; history.csv; model.keras
    evaluate  the spec's metrics on validation and test → metrics.json
    export    each format written, loaded back with its own runtime, compared → verification.json
"""

from __future__ import annotations

import sys

import numpy as np

from dlpipe import registry
from dlpipe.rundir import atomic_path, atomic_write_json, atomic_write_text


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir

    with run_dir.stage("setup"):
        from dlpipe.training.determinism import configure

        environment = configure(spec.seed, spec.training)
        run_dir.update(deterministic=environment["deterministic"], device=environment["device"],
                       backend=environment["backend"], training=environment["training"],
                       versions={**run_dir.record["versions"], **environment["versions"]})

    with run_dir.stage("data"):
        from dlpipe.data.prepare import prepare

        data = prepare(spec, ctx.base_dir, ctx.located)
        atomic_write_json(run_dir.path("data.json"), data.describe())
        run_dir.update(data_fingerprint=data.fingerprint)
        n_classes = len(data.class_names) if data.class_names else None

    with run_dir.stage("build"):
        from dlpipe.architectures.assemble import build_model
        from dlpipe.training.compile import compile_model

        model = build_model(spec, data)
        compile_model(model, spec, n_classes, ctx.located)
        run_dir.update(parameters=int(model.count_params()))

    with run_dir.stage("train"):
        from dlpipe.training.fit import train

        history = train(model, spec, data, run_dir=run_dir, located=ctx.located)
        if not ctx.chief:
            return  # another worker of a multi-worker run: the chief evaluates, exports, writes
        atomic_write_text(run_dir.path("history.csv"), history_csv(history))
        with atomic_path(run_dir.path("model.keras")) as tmp:
            model.save(tmp)

    with run_dir.stage("evaluate"):
        from dlpipe.metrics.evaluate import scores

        metrics = {}
        for name in spec.evaluation.splits:
            split = data.splits[name]
            if len(split):
                output = model.predict(split.x, batch_size=1024, verbose=0)
                metrics[name] = scores(spec.task, spec.evaluation.metrics, split.y, output, n_classes)
        atomic_write_json(run_dir.path("metrics.json"), metrics)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.get("test", {}).items())
        print(f"[dlpipe] test: {summary}", file=sys.stderr, flush=True)

    with run_dir.stage("export"):
        from dlpipe.exporters.verify import check, compare

        test = data.splits["test"]
        count = min(spec.export.samples, len(test))
        inputs = {name: values[:count] for name, values in test.x.items()}
        reference = model.predict(inputs, batch_size=1024, verbose=0)
        results = {}
        for name in spec.export.formats:
            export_format = registry.load("exporter", name)
            path = export_format.write(model, run_dir.path("export", name))
            results[name] = {"path": str(path.relative_to(run_dir.root))}
            if spec.export.verify != "off":
                exported = export_format.load(path)(inputs)
                results[name].update(compare(reference, exported, classifier=spec.task == "classification"))
        warnings = [] if spec.export.verify == "off" else check(results, spec.export.tolerance, spec.export.verify)
        atomic_write_json(run_dir.path("export", "verification.json"), results)
        for warning in warnings:
            print(f"[dlpipe] warning: export {warning}", file=sys.stderr, flush=True)


def history_csv(history: dict[str, list[float]]) -> str:
    names = sorted(history)
    epochs = len(next(iter(history.values()))) if history else 0
    rows = [",".join(["epoch", *names])]
    rows += [",".join([str(e + 1), *(repr(history[n][e]) for n in names)]) for e in range(epochs)]
    return "\n".join(rows) + "\n"
