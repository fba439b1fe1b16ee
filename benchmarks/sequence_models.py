"""Sequence models side by side: `ssm`, an LSTM and a transformer at about the same parameter
count, on long sequences where only order decides the label.

    python benchmarks/sequence_models.py [--steps 256] [--rows 2000] [--epochs 8]
                                         [--models ssm,lstm,transformer] [--out DIR]
    python benchmarks/sequence_models.py --scans [--steps 256]   # the scan variants alone

Data: dlpipe's `order_pairs` generator (seeded) at `--steps` steps: each row's token ids hold
pattern A (1, 2) and pattern B (3, 4) once, anywhere; the label says whether A comes first.
Both patterns are in every row, so a model blind to order stays at chance (0.5). Written to
an npz file that the specs read with the npz source; split 70/10/20.

Each model trains in its own process (a fresh Keras, nothing shared), through dlpipe's own
stages (prepare, build, compile, train), for a fixed number of epochs with no early
stopping. Printed per model: parameters (Keras's count_params, as `dlpipe validate --deep`
shows), test accuracy after the last epoch, the first epoch's seconds (it includes tracing
and compiling the graph) and the median of the other epochs' seconds, and the load average
before and after, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    # About 20,000 parameters each (printed exactly by the run). The ssm's state is
    # steps × 2·model_dim × state_size numbers per example: on a CPU its time per epoch grows
    # with state_size (state_size 16 at model_dim 32 took 126 s an epoch here under load);
    # max pooling picks out the steps where B meets a remembered A.
    "ssm": "{type: ssm, blocks: 2, model_dim: 36, state_size: 4, pooling: max}",
    "ssm_parallel": "{type: ssm, blocks: 2, model_dim: 36, state_size: 4, pooling: max, scan: parallel}",
    "ssm_state16": "{type: ssm, blocks: 2, model_dim: 32, state_size: 16, expand: 2}",
    "lstm": "{type: rnn, cell: lstm, units: [56], embedding_dim: 32}",
    "transformer": "{type: transformer, blocks: 2, heads: 2, key_dim: 16, model_dim: 32, feed_forward: 32, "
                   "dropout: 0.0}",
}

SPEC = """\
name: order-{model}
task: classification
seed: 42
data:
  source: {{type: npz, path: {path}}}
  features: [{{name: tokens, type: tokens}}]
  target: {{name: label}}
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
model: {model_spec}
training:
  epochs: {epochs}
  batch_size: 32
  optimizer: {{type: adam, learning_rate: 3.0e-3}}
  progress: none
evaluation: {{metrics: [accuracy]}}
"""


def write_data(path: Path, rows: int, steps: int) -> None:
    import numpy as np

    from dlpipe.data.builtin import load_order_pairs

    table = load_order_pairs(n=rows, steps=steps, seed=0)
    np.savez(path, tokens=table.columns["tokens"], label=table.columns["label"])


def spec_text(model: str, path: Path, epochs: int) -> str:
    return SPEC.format(model=model.replace("_", "-"), model_spec=MODELS[model], path=path, epochs=epochs)


def train_one(model: str, path: Path, epochs: int) -> dict:
    """In this process: dlpipe's stages on one model; the numbers as a dict."""
    import keras

    from dlpipe.architectures.assemble import build_model
    from dlpipe.data.prepare import prepare
    from dlpipe.metrics.evaluate import scores
    from dlpipe.spec.loader import parse
    from dlpipe.spec.validation import validate_document
    from dlpipe.training.compile import compile_model
    from dlpipe.training.determinism import configure
    from dlpipe.training.fit import train

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.began)

    seconds: list[float] = []
    spec = validate_document(parse(spec_text(model, path, epochs), f"{model}.yaml"))
    data = prepare(spec, path.parent, None)
    configure(spec.seed)
    built = build_model(spec, data)
    compile_model(built, spec, len(data.class_names))
    train(built, spec, data, callbacks=[EpochTimer()])
    test = data.splits["test"]
    found = scores(spec.task, ["accuracy"], test.y, built.predict(test.x, verbose=0), len(data.class_names))
    trainable = sum(int(keras.ops.size(w)) for w in built.trainable_weights)
    return {"model": model, "backend": keras.backend.backend(), "parameters": int(built.count_params()),
            "trainable": trainable, "accuracy": float(found["accuracy"]), "epoch_seconds": seconds,
            "steps": int(test.x["tokens"].shape[1]), "train_rows": len(data.splits["train"])}


def time_scans(steps: int, repeat: int = 3) -> list[tuple[str, float, float]]:
    """One training step's scan alone (forward and gradient, batch 32 × `steps` × 64 channels
    × state 16, TensorFlow): (name, first call's seconds with tracing, later calls' median)."""
    import numpy as np
    import tensorflow as tf
    from keras import ops

    from dlpipe.architectures import ssm

    rng = np.random.default_rng(0)
    batch, channels, state = 32, 64, 16
    u = tf.constant(rng.normal(size=(batch, steps, channels)), "float32")
    delta = tf.constant(rng.uniform(0.01, 0.2, size=(batch, steps, channels)), "float32")
    a = tf.Variable(-rng.uniform(0.5, 3.0, size=(channels, state)).astype("float32"))
    b, c = (tf.constant(rng.normal(size=(batch, steps, state)), "float32") for _ in range(2))
    d = tf.constant(np.ones(channels), "float32")

    def keras_associative(u, delta, a, b, c, d):
        decay = ops.exp(delta[..., None] * a)
        _, states = ops.associative_scan(ssm._compose, (decay, (delta * u)[..., None] * b[:, :, None, :]), axis=1)
        return ops.sum(states * c[:, :, None, :], axis=-1) + u * d

    variants = {"sequential (keras.ops.scan)": lambda *x: ssm.selective_scan(*x),
                "parallel (pairwise, static slices)": lambda *x: ssm.selective_scan(*x, parallel=True),
                "keras.ops.associative_scan": keras_associative}
    found = []
    for name, scan in variants.items():
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                y = scan(u, delta, a, b, c, d)
                loss = tf.reduce_sum(y * y)
            return tape.gradient(loss, a)

        began = time.perf_counter()
        step()
        first = time.perf_counter() - began
        later = []
        for _ in range(repeat):
            began = time.perf_counter()
            step()
            later.append(time.perf_counter() - began)
        found.append((name, first, statistics.median(later)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--models", default="ssm,lstm,transformer", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--out", type=Path, default=None, help="folder for the data and results.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: train one model
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scans", action="store_true", help="time the scan variants alone and stop")
    args = parser.parse_args()
    if args.scans:
        load = os.getloadavg()[0]
        print(f"one scan, forward + gradient, batch 32 × {args.steps} steps × 64 channels × state 16")
        print("| scan | first call, with tracing (s) | later calls, median (s) |\n|---|---|---|")
        for name, first, later in time_scans(args.steps):
            print(f"| {name} | {first:.2f} | {later:.3f} |")
        print(f"load 1-min before/after: {load:.1f} / {os.getloadavg()[0]:.1f}")
        return
    if args.one:
        print(json.dumps(train_one(args.one, args.data, args.epochs)))
        return
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    folder = args.out or Path(tempfile.mkdtemp(prefix="dlpipe-seq-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"order_{args.steps}.npz"
    write_data(data, args.rows, args.steps)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = []
    for model in chosen:
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--one", model, "--data", str(data), "--epochs",
                               str(args.epochs)], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"{model} failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result.update(wall_seconds=time.perf_counter() - began, load=[load_before, os.getloadavg()[0]])
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    print(f"order_pairs, {args.steps} steps, {results[0]['train_rows']} training rows, {args.epochs} epochs, "
          f"backend {results[0]['backend']}")
    print("| model | parameters | test accuracy | first epoch (s) | later epochs, median (s) | load 1-min before/after |")
    print("|---|---|---|---|---|---|")
    for r in results:
        later = statistics.median(r["epoch_seconds"][1:]) if len(r["epoch_seconds"]) > 1 else float("nan")
        print(f"| {r['model']} | {r['parameters']:,} | {r['accuracy']:.3f} | {r['epoch_seconds'][0]:.1f} | "
              f"{later:.1f} | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")


if __name__ == "__main__":
    main()
