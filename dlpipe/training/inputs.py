"""Training input: each epoch's order is a pure function of (seed, epoch).

tf.data's `shuffle(reshuffle_each_iteration=True)` draws each epoch's order from the state
of the iterator, so a run resumed at epoch 3 would replay epoch 1's order. Here every epoch
is shuffled with a seed derived from (seed, epoch) alone: an interrupted and resumed run
sees exactly the batches of an uninterrupted one. The dataset holds the epochs
[first_epoch, epochs) back to back, batches never straddle two epochs, and `fit` reads it
with `steps_per_epoch`.

On a backend other than TensorFlow (`backend: jax`), `numpy_batches` gives the same contract
without TensorFlow: numpy batches from a generator, each epoch's order a pure function of
(seed, epoch) drawn by NumPy (another order than tf's stateless shuffle: the two backends do
not see the same batches, each repeats its own exactly).
"""

from __future__ import annotations

import math

import numpy as np

# Seeds of different epochs must differ; a large odd multiplier keeps (seed, epoch) pairs apart.
_EPOCH_STRIDE = 1_000_003


def steps_per_epoch(examples: int, batch_size: int, drop_remainder: bool = False) -> int:
    if drop_remainder:
        return examples // batch_size
    return max(1, math.ceil(examples / batch_size))


def _columns(x, y, weights):
    """(x, y, weight) as tensors; unlabeled data (a GAN's images) is `(x,)` alone."""
    import tensorflow as tf

    if y is None:
        return (tf.nest.map_structure(tf.constant, x),)
    # y may be a dict of labels by output (task multi_output): count the examples by x.
    weights = np.ones(_examples(x), np.float32) if weights is None else weights.astype(np.float32)
    return tf.nest.map_structure(tf.constant, (x, y, weights))


def _examples(x) -> int:
    import tensorflow as tf

    return len(tf.nest.flatten(x)[0])


def epoch_order(n: int, seed: int, epoch, shuffle_buffer: int | None = None):
    """The example indices of one epoch, in training order (a dataset of int64).

    A full permutation seeded by (seed, epoch); with a `shuffle_buffer` smaller than the
    split, tf.data's windowed shuffle seeded the same way (for splits too large to permute
    at once in a streaming pipeline, kept so the spec's `data.shuffle_buffer` means what it says).
    """
    import tensorflow as tf

    epoch = tf.cast(epoch, tf.int64)
    if shuffle_buffer is not None and shuffle_buffer < n:
        return tf.data.Dataset.range(n).shuffle(shuffle_buffer, seed=tf.constant(seed, tf.int64) * _EPOCH_STRIDE + epoch,
                                                reshuffle_each_iteration=False)
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                     seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
    return tf.data.Dataset.from_tensor_slices(order)


def training_dataset(x: dict[str, np.ndarray], y: np.ndarray | None, weights: np.ndarray | None, *,
                     batch_size: int, seed: int, first_epoch: int, epochs: int, shuffle_buffer: int | None = None,
                     augment=None, drop_remainder: bool = False):
    """Batches of (x, y, weight) — of (x,) without labels — for the epochs [first_epoch,
    epochs); with `drop_remainder`, each epoch's last short batch is left out. `augment(x, y,
    weight, seed)` (dlpipe/data/augment.py) changes each batch, seeded by (seed, epoch, batch)."""
    import tensorflow as tf

    columns = _columns(x, y, weights)

    def augmented(number, batch, epoch_seed):
        x, y, weight = augment(*batch, *(None,) * (3 - len(batch)),
                               tf.random.experimental.stateless_fold_in(epoch_seed, number))
        return (x, y, weight)[:len(batch)]

    def one_epoch(epoch):
        batches = epoch_order(_examples(x), seed, epoch, shuffle_buffer).batch(
            batch_size, drop_remainder=drop_remainder).map(
            lambda index: tf.nest.map_structure(lambda column: tf.gather(column, index), columns),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if augment is None:
            return batches
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64) * _EPOCH_STRIDE])
        return batches.enumerate().map(lambda number, batch: augmented(number, batch, epoch_seed))

    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def replica_dataset(input_context, x: dict[str, np.ndarray], y: np.ndarray, weights: np.ndarray | None, *,
                    batch_size: int, seed: int, first_epoch: int, epochs: int, shuffle_buffer: int | None = None):
    """One worker's input under MultiWorkerMirroredStrategy (for
    `distribute_datasets_from_function`): every worker computes the same global batches, and
    replica r of R takes examples r, r+R, r+2R, … of each. Elements are
    (x, y, weight, global batch size), the last to scale the loss exactly on a short batch."""
    import tensorflow as tf

    columns = _columns(x, y, weights)
    replicas = input_context.num_replicas_in_sync
    local = replicas // input_context.num_input_pipelines
    first_replica = input_context.input_pipeline_id * local

    def shares(index):
        count = tf.cast(tf.size(index), tf.float32)

        def share(r):
            mine = index[first_replica + r::replicas]
            return (*tf.nest.map_structure(lambda column: tf.gather(column, mine), columns), count)

        return tf.data.Dataset.range(local).map(share)

    def one_epoch(epoch):
        return epoch_order(len(y), seed, epoch, shuffle_buffer).batch(batch_size).flat_map(shares)

    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(x: dict[str, np.ndarray], y: np.ndarray, *, batch_size: int):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(batch_size).prefetch(tf.data.AUTOTUNE)


def numpy_epoch_order(n: int, seed: int, epoch: int, shuffle_buffer: int | None = None) -> np.ndarray:
    """`epoch_order` in NumPy: a permutation seeded by (seed, epoch) alone; with a
    `shuffle_buffer` smaller than the split, a windowed shuffle (each example drawn from a
    buffer of that many, refilled in file order) seeded the same way."""
    rng = np.random.default_rng([seed, epoch])
    if shuffle_buffer is None or shuffle_buffer >= n:
        return rng.permutation(n)
    buffer = list(range(min(shuffle_buffer, n)))
    order = np.empty(n, np.int64)
    incoming = len(buffer)
    for position in range(n):
        pick = int(rng.integers(len(buffer)))
        order[position] = buffer[pick]
        if incoming < n:
            buffer[pick] = incoming
            incoming += 1
        else:
            buffer[pick] = buffer[-1]
            buffer.pop()
    return order


def numpy_batches(x: dict[str, np.ndarray], y: np.ndarray | None, weights: np.ndarray | None, *,
                  batch_size: int, seed: int, first_epoch: int, epochs: int, shuffle_buffer: int | None = None,
                  drop_remainder: bool = False):
    """`training_dataset` without TensorFlow: a generator of numpy batches (x, y, weight) —
    (x,) without labels — for the epochs [first_epoch, epochs), back to back. `x` may also be
    one array (a single-input model, as detection's images); `y` may be a dict of labels by
    output (task multi_output), each batch's y then a dict too."""
    examples = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    if y is not None:
        weights = np.ones(examples, np.float32) if weights is None else weights.astype(np.float32)
    for epoch in range(first_epoch, epochs):
        order = numpy_epoch_order(examples, seed, epoch, shuffle_buffer)
        stop = examples - examples % batch_size if drop_remainder else examples
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            batch = {name: values[index] for name, values in x.items()} if isinstance(x, dict) else x[index]
            if y is None:
                yield (batch,)
            else:
                labels = {name: values[index] for name, values in y.items()} if isinstance(y, dict) else y[index]
                yield (batch, labels, weights[index])
