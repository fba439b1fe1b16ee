"""Compiling a model with several outputs (task multi_output; built by
dlpipe/architectures/outputs.py): a loss, a loss weight and a training metric per output."""

from __future__ import annotations


def compile_multi_output(model, spec, data) -> None:
    """Each output's loss (auto: binary or sparse categorical cross-entropy; mse) and weight,
    and a training metric per output (`<output>_accuracy`, `<output>_mae` in the history)."""
    import keras

    from dlpipe import tasks
    from dlpipe.training.compile import make_loss
    from dlpipe.training.determinism import gpus, resolve_jit
    from dlpipe.tasks.multi_output import gives_classes
    from dlpipe.training.optimizers import make_optimizer

    described = data.extra["outputs"]
    losses, weights, metrics = {}, {}, {}
    for output in spec.data.targets:
        names = described[output.name]["class_names"]
        n_classes = len(names) if names else None
        losses[output.name] = make_loss(tasks.get(output.kind), output.loss, n_classes)
        weights[output.name] = output.loss_weight
        if gives_classes(output):
            metric = (keras.metrics.BinaryAccuracy(name="accuracy") if n_classes == 2
                      else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        else:
            metric = keras.metrics.MeanAbsoluteError(name="mae")
        metrics[output.name] = [metric]
    jit = resolve_jit(spec.training.jit_compile, gpus(), keras.backend.backend())
    model.compile(optimizer=make_optimizer(spec.training.optimizer), loss=losses, loss_weights=weights,
                  metrics=metrics, jit_compile=jit)
