"""Compression on the digits CNN: dense, magnitude-pruned and quantization-aware, same spec and seed.

    python benchmarks/compression.py [--spec specs/image-classification.yaml] [--sparsity 0.8]
                                     [--only dense,pruned,qat] [--out DIR] [--set KEY=VALUE ...]

Runs `dlpipe run` three times in child processes, one after the other, on the same spec:

    dense   as written; exports TFLite float32 and int8 (post-training quantization,
            calibrated on training examples)
    pruned  with `compression.pruning` (the given sparsity, global magnitude, reached by the
            polynomial schedule from epoch 3 to epoch 20, then fine-tuned while early stopping
            watches); exports TFLite float32
    qat     with `compression.quantization_aware` from epoch 10 (float before: QAT fine-tunes
            a converged model, as early stopping then watches); exports TFLite int8

Each exported TFLite file is scored on the run's test split with the LiteRT interpreter (the
file's own runtime, not the Keras model), and its bytes and gzip bytes (level 9: what a
download or an app bundle pays; the float32 file itself keeps every weight, zero or not) are
taken. Targets:

    pruning  the pruned model loses ≤ 1 point of test accuracy against the dense one, and its
             gzip-compressed float32 TFLite file is ≤ 0.4× the dense one's
    QAT      the QAT int8 file's test accuracy ≥ the dense model's post-training int8 file's,
             and within 1 point of the dense float32 model's
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(spec: str, out: Path, overrides: list[str]) -> float:
    command = [sys.executable, "-m", "dlpipe.cli", "--quiet", "run", spec, "--out", str(out)]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def tflite_accuracy(path: Path, test) -> float:
    """Test accuracy of a TFLite file run by LiteRT, the whole split in one call."""
    from dlpipe.exporters.tflite import load

    predict = load(path)
    return float(np.mean(np.argmax(predict(test.x), axis=-1) == test.y))


def measure(out: Path) -> dict:
    from dlpipe.rundir import RunDir
    from dlpipe.stagecache import load_data

    test = load_data(RunDir(out)).splits["test"]
    metrics = json.loads((out / "metrics.json").read_text())
    record = json.loads((out / "run.json").read_text())
    found = {"keras": metrics["test"]["accuracy"], "epochs": len((out / "history.csv").read_text().splitlines()) - 1,
             "sparsity": record.get("pruning", {}).get("sparsity", 0.0), "test_examples": len(test.y)}
    for file in sorted((out / "export" / "tflite").glob("model_*.tflite")):
        mode = file.stem.removeprefix("model_")
        content = file.read_bytes()
        found[mode] = {"accuracy": tflite_accuracy(file, test), "bytes": len(content),
                       "gzip": len(gzip.compress(content, compresslevel=9, mtime=0))}
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs/image-classification.yaml"))
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--only", default="dense,pruned,qat")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    common = [*args.overrides, "export.formats=[tflite]", "evaluation.baselines=false"]
    pruning = (f"compression.pruning={{sparsity: {args.sparsity}, schedule: {{begin_epoch: 3, end_epoch: 20}}, "
               "frequency: 5, scope: global}")
    sides = {"dense": [*common, "export.tflite={quantization: [float32, int8]}"],
             "pruned": [*common, "export.tflite={quantization: [float32]}", pruning],
             "qat": [*common, "export.tflite={quantization: [int8]}", "compression.quantization_aware={start_epoch: 10}"]}
    wanted = args.only.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out) if args.out else Path(scratch)
        for name in wanted:
            seconds = run(args.spec, folder / name, sides[name])
            results[name] = {**measure(folder / name), "seconds": seconds}

    print(f"{'run':7} {'epochs':>6} {'sparsity':>8} {'keras acc':>9} {'tflite':>8} {'acc':>7} {'bytes':>9} "
          f"{'gzip bytes':>10} {'seconds':>7}")
    for name, r in results.items():
        for mode in ("float32", "int8"):
            if mode in r:
                print(f"{name:7} {r['epochs']:6d} {r['sparsity']:8.4f} {r['keras']:9.4f} {mode:>8} "
                      f"{r[mode]['accuracy']:7.4f} {r[mode]['bytes']:9,d} {r[mode]['gzip']:10,d} {r['seconds']:7.1f}")
    summary = {"runs": results}
    if {"dense", "pruned"} <= results.keys():
        dense, pruned = results["dense"], results["pruned"]
        lost = 100 * (dense["keras"] - pruned["keras"])
        ratio = pruned["float32"]["gzip"] / dense["float32"]["gzip"]
        print(f"pruning: {lost:.2f} points of test accuracy lost (target ≤ 1: {'met' if lost <= 1 else 'NOT met'}); "
              f"gzip float32 TFLite pruned/dense {ratio:.3f} (target ≤ 0.4: {'met' if ratio <= 0.4 else 'NOT met'})")
        summary.update(points_lost=lost, gzip_ratio=ratio)
    if {"dense", "qat"} <= results.keys():
        ptq, qat, float32 = results["dense"]["int8"]["accuracy"], results["qat"]["int8"]["accuracy"], results["dense"]["keras"]
        below = 100 * (float32 - qat)
        print(f"QAT: int8 TFLite {qat:.4f} vs post-training int8 {ptq:.4f} (target ≥: {'met' if qat >= ptq else 'NOT met'}); "
              f"{below:.2f} points below float32 {float32:.4f} (target ≤ 1: {'met' if below <= 1 else 'NOT met'})")
        summary.update(qat_int8=qat, ptq_int8=ptq, float32=float32)
    return summary


if __name__ == "__main__":
    main()
