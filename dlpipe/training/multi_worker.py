"""The training loop for MultiWorkerMirroredStrategy.

Keras 3 `fit` fails under MultiWorkerMirroredStrategy (a PerReplica value reaches
`_maybe_symbolic_build`), so multi-worker runs train here: `strategy.run` of a
GradientTape step, with the model's own Keras optimizer, which sums the replicas'
gradients before it updates. Everything else is what `fit` does, through the same
callbacks: the progress bar or per-epoch lines, the learning-rate log and reduce-on-plateau, history,
checkpoints (chief only), TensorBoard (chief only), early stopping and the NaN stop.

How the work is shared: `training.batch_size` is the global batch. Every worker computes
the same epoch order (a function of seed and epoch) and the same global batches; replica r
of R takes every R-th example of each. Each replica's loss is its share's sum divided by
the global batch size, so the summed gradient is the gradient of the global batch's mean
loss, as on one device. Validation runs on every worker over the whole validation split
with the (identical) weights, so every worker takes the same early-stopping decision.
Gradient clipping applies to each replica's share before the sum, as under `fit` with
MirroredStrategy.
"""

from __future__ import annotations

import keras
import numpy as np

from dlpipe import tasks


def fit_multi_worker(model, strategy, spec, n_classes: int | None, inputs: dict, val_ds, steps: int,
                     callbacks: list, *, verbose: int) -> None:
    import tensorflow as tf

    from dlpipe.training.compile import make_loss
    from dlpipe.training.determinism import resolve_jit
    from dlpipe.training.inputs import replica_dataset

    training = spec.training
    replicas = strategy.num_replicas_in_sync
    optimizer = model.optimizer
    multi_label = spec.data.target is not None and spec.data.target.multi_label
    with strategy.scope():
        loss_sum = make_loss(tasks.get(spec.task), training.loss, n_classes, multi_label, reduction="sum")
    metric_name, metric_sum = _metric(tasks.get(spec.task).training_metric, n_classes)
    jit = resolve_jit(training.jit_compile, tf.config.list_physical_devices("GPU"))

    dataset = strategy.distribute_datasets_from_function(lambda context: replica_dataset(context, **inputs))
    iterator = iter(dataset)

    @tf.function(jit_compile=jit)
    def gradients(x, y, w, count):
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            data_loss = loss_sum(y, y_pred, sample_weight=w)
            regularization = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            loss = data_loss / count + regularization / replicas
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        return grads, data_loss, regularization, metric_sum(y, y_pred), tf.cast(tf.shape(y)[0], tf.float32)

    def replica_step(batch):
        grads, data_loss, regularization, metric, examples = gradients(*batch)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return data_loss, regularization, metric, examples

    @tf.function
    def train_step(iterator):
        data_loss, regularization, metric, examples = strategy.run(replica_step, args=(next(iterator),))
        total = strategy.reduce("SUM", data_loss, axis=None)
        # Every replica holds the same weights, hence the same regularization term.
        regularization = strategy.reduce("MEAN", regularization, axis=None)
        return total, regularization, strategy.reduce("SUM", metric, axis=None), strategy.reduce(
            "SUM", examples, axis=None)

    @tf.function
    def evaluate_batch(x, y):
        y_pred = model(x, training=False)
        regularization = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
        return loss_sum(y, y_pred), regularization, metric_sum(y, y_pred), tf.cast(tf.shape(y)[0], tf.float32)

    first_epoch = inputs["first_epoch"]
    callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                                                 verbose=verbose, epochs=training.epochs, steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(first_epoch, training.epochs):
        callback_list.on_epoch_begin(epoch)
        sums = np.zeros(3)  # loss (with regularization, per example), metric, examples
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            data_loss, regularization, metric, examples = (float(v) for v in train_step(iterator))
            sums += (data_loss + regularization * examples, metric, examples)
            logs = {"loss": sums[0] / sums[2], metric_name: sums[1] / sums[2]}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if val_ds is not None and not model.stop_training:
            epoch_logs.update(_evaluate(evaluate_batch, val_ds, metric_name))
        callback_list.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        if model.stop_training:
            break
    callback_list.on_train_end(logs)


def check_same_start(strategy, first_epoch: int, finished: bool) -> None:
    """Every worker must resume from the same checkpoint, or their collectives would never
    meet. Only the chief writes checkpoints; the others see them where the run directory
    is on a filesystem they share (the runner copies it for them)."""
    import tensorflow as tf

    from dlpipe.errors import StageError

    here = float(first_epoch * 2 + int(finished))

    @tf.function
    def agree():
        # Made inside the replica function, the value gets the replica's device, which the
        # collective needs; a tensor passed in from outside has none.
        value = strategy.run(lambda: tf.constant(here, tf.float64))
        return (strategy.reduce("SUM", value, axis=None),
                strategy.reduce("SUM", strategy.run(lambda v: v * v, args=(value,)), axis=None))

    total, squares = (float(v) for v in agree())
    # Only SUM and MEAN exist as all-reduce ops: n·Σv² = (Σv)² exactly when all v are equal.
    if strategy.num_replicas_in_sync * squares != total * total:
        raise StageError("train", f"the workers would resume from different points (this one after "
                         f"{first_epoch} epochs); resuming a multi-worker run needs its run directory (--out) "
                         "on a filesystem every worker sees, given to every worker")


def _evaluate(evaluate_batch, dataset, metric_name: str) -> dict[str, float]:
    sums = np.zeros(3)
    regularization = 0.0
    for x, y in dataset:
        loss, regularization, metric, examples = (float(v) for v in evaluate_batch(x, y))
        sums += (loss, metric, examples)
    return {"val_loss": sums[0] / sums[2] + regularization, f"val_{metric_name}": sums[1] / sums[2]}


def _metric(name: str, n_classes: int | None):
    """The task's training metric (accuracy, mae or reconstruction_mse), summed over a batch."""
    ops = keras.ops
    if name == "reconstruction_mse":  # per example, the mean over its values
        return "reconstruction_mse", lambda y, p: ops.sum(ops.mean(ops.square(
            ops.reshape(ops.cast(y, p.dtype), (ops.shape(p)[0], -1)) - ops.reshape(p, (ops.shape(p)[0], -1))), axis=-1))
    if name == "mae":
        return "mae", lambda y, p: ops.sum(ops.abs(ops.reshape(ops.cast(y, p.dtype), (-1,)) - ops.reshape(p, (-1,))))
    if n_classes == 2:
        return "accuracy", lambda y, p: ops.sum(ops.cast(
            ops.equal(ops.reshape(ops.cast(p > 0.5, "int64"), (-1,)), ops.reshape(ops.cast(y, "int64"), (-1,))), "float32"))
    return "accuracy", lambda y, p: ops.sum(ops.cast(
        ops.equal(ops.argmax(p, axis=-1), ops.reshape(ops.cast(y, "int64"), (-1,))), "float32"))
