"""Steady-state training throughput: dlpipe's input pipeline and model against the best
hand-written Keras input (tf.data cache + shuffle + batch + prefetch), in one process.

    python benchmarks/steady_state.py [--spec specs/image-classification.yaml] [--rounds 9]
                                      [--epochs 3] [--set training.batch_size=128 ...]

Both train the same architecture (the hand-written side trains a fresh clone of the model
dlpipe built, compiled the same way) on the same training split with the same batch size.
dlpipe's side is what `dlpipe run` feeds `fit`: its seeded per-epoch dataset of
(x, y, weight) and its callbacks (learning rate, NaN guard, history); no checkpoints,
TensorBoard or validation on either side, so only the input pipeline, the step and the
per-step callbacks are compared. The hand-written side reads its dataset two ways (a new
iterator each epoch; `repeat()` with steps_per_epoch) and the faster counts. After one
warm-up `fit` each (tracing), the sides take turns going first, round after round, so that
load from other processes hits all alike; each round times one short `fit` of `--epochs`
epochs per side. Prints samples/s per side (median of rounds) and the median of the
per-round ratios dlpipe / faster hand-written. Target ≥ 0.97.

The process runs under dlpipe's training environment (`configure`: seed, op determinism
as the spec asks), which both sides share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs/image-classification.yaml"))
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per timed fit (short fits are mostly noise here)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one fit per side with cProfile and print its N costliest functions")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=UserWarning)  # Keras: early stopping without validation data
    from dlpipe.backend_import import import_tensorflow
    from dlpipe.spec import load_document

    spec, _ = load_document(args.spec, args.overrides)
    import_tensorflow()
    import keras
    import tensorflow as tf

    from dlpipe.architectures.assemble import build_model
    from dlpipe.data.augment import augmenter
    from dlpipe.data.prepare import prepare
    from dlpipe.training.compile import compile_model
    from dlpipe.training.determinism import configure
    from dlpipe.training.fit import _Callbacks
    from dlpipe.training.inputs import steps_per_epoch, training_dataset
    from dlpipe.training.weights import example_weights

    def located(path, message):
        return ValueError(f"{'.'.join(map(str, path))}: {message}")

    data = prepare(spec, Path(args.spec).resolve().parent, located)
    environment = configure(spec.seed, spec.training)
    n_classes = len(data.class_names) if data.class_names else None
    train = data.splits["train"]
    batch, n = spec.training.batch_size, len(train)
    steps = steps_per_epoch(n, batch)

    # dlpipe: the dataset and callbacks `dlpipe.training.fit.train` hands to `fit`.
    model = build_model(spec, data, located)
    compile_model(model, spec, n_classes, located)
    weights = example_weights(spec, data, located)
    epochs = 1 + args.epochs  # a fit reads the dataset from its start; it must hold a fit's epochs
    dlpipe_ds = training_dataset(train.x, train.y, weights, batch_size=batch, seed=spec.seed, first_epoch=0,
                                 epochs=epochs, shuffle_buffer=spec.data.shuffle_buffer,
                                 augment=augmenter(spec, data))

    def dlpipe_fit(n_epochs: int) -> None:
        run = _Callbacks.create(spec, steps, None, None, has_validation=False, extra=[])
        model.fit(dlpipe_ds, epochs=n_epochs, steps_per_epoch=steps, callbacks=run.callbacks, shuffle=False,
                  verbose=0)

    # Hand-written: the same architecture and compile, the textbook fast tf.data input,
    # read two ways: a fresh iterator each epoch, and one repeated iterator with
    # steps_per_epoch (no end-of-epoch restart). The faster of the two in each round counts.
    baseline = keras.models.clone_model(model)
    compile_model(baseline, spec, n_classes, located)
    cached = tf.data.Dataset.from_tensor_slices((train.x, train.y)).cache()
    per_epoch = cached.shuffle(n, seed=spec.seed, reshuffle_each_iteration=True).batch(batch) \
        .prefetch(tf.data.AUTOTUNE)
    repeated = cached.repeat().shuffle(n, seed=spec.seed).batch(batch).prefetch(tf.data.AUTOTUNE)

    sides = {
        "dlpipe": dlpipe_fit,
        "hand-written, iterator per epoch": lambda k: baseline.fit(per_epoch, epochs=k, verbose=0),
        "hand-written, repeat + steps_per_epoch": lambda k: baseline.fit(repeated, epochs=k, steps_per_epoch=steps,
                                                                         verbose=0),
    }

    cpu_seconds: dict[str, list[float]] = {name: [] for name in sides}

    def timed(name: str) -> float:
        """samples/s of wall time; also keeps the process's CPU seconds per 1000 samples (all
        threads), which load from other processes disturbs less than wall time."""
        begun, cpu = time.perf_counter(), time.process_time()
        sides[name](args.epochs)
        wall = time.perf_counter() - begun
        cpu_seconds[name].append((time.process_time() - cpu) * 1000 / (n * args.epochs))
        return n * args.epochs / wall

    for fit in sides.values():
        fit(1)  # warm-up: trace the train functions (full and last partial batch), fill the cache
    names = list(sides)
    if args.profile:
        import cProfile
        import pstats

        for name in names:
            profiler = cProfile.Profile()
            profiler.runcall(sides[name], args.epochs)
            print(f"\n### profile: {name}, {args.epochs} epochs ({steps * args.epochs} steps)\n")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    rows = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # each side goes first in turn
        row = {name: timed(name) for name in order}
        best = max(row[name] for name in names[1:])
        row["ratio"] = row["dlpipe"] / best
        rows.append(row)
        print(f"round {r + 1}: " + ", ".join(f"{name} {row[name]:,.0f}" for name in names)
              + f" samples/s; ratio to the faster hand-written {row['ratio']:.3f}", flush=True)
    median = statistics.median
    result = {name: median(row[name] for row in rows) for name in [*names, "ratio"]}
    # The best hand-written input is the variant with the higher median; each round's dlpipe
    # figure is compared with that variant's figure of the same round. (The per-round maximum
    # of two noisy variants, `ratio`, is biased against dlpipe by the noise itself: kept as the
    # stricter figure.)
    best_variant = max(names[1:], key=lambda name: result[name])
    result["ratio_to_best"] = median(row["dlpipe"] / row[best_variant] for row in rows)
    result.update(handwritten=max(result[name] for name in names[1:]), rounds=args.rounds, epochs=args.epochs,
                  examples=n, batch_size=batch, deterministic=environment["deterministic"],
                  load=os.getloadavg()[0])
    print(f"\n{spec.name}: {n} training examples, batch {batch}, {args.epochs} epochs a round, "
          f"{args.rounds} rounds, op determinism {'on' if result['deterministic'] else 'off'}, "
          f"load average {result['load']:.2f}, cpu count {os.cpu_count()}")
    result["cpu_ms_per_sample"] = {name: median(values) for name, values in cpu_seconds.items()}
    print("\n| | samples/s (median) | CPU ms per sample (median) |\n|---|---:|---:|")
    for name in names:
        print(f"| {name} | {result[name]:,.0f} | {result['cpu_ms_per_sample'][name]:.3f} |")
    print(f"| ratio dlpipe / best hand-written variant ({best_variant}; median of rounds), target ≥ 0.97 "
          f"| {result['ratio_to_best']:.3f} | |")
    print(f"| stricter: ratio dlpipe / faster hand-written in each round (median of rounds) | {result['ratio']:.3f} | |")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
