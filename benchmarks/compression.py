"""Compression on the digits CNN: dense against magnitude-pruned, same spec and seed.

    python benchmarks/compression.py [--spec specs/image-classification.yaml] [--sparsity 0.8]
                                     [--out DIR] [--set KEY=VALUE ...]

Runs `dlpipe run` twice in child processes, one after the other, on the same spec: as
written (dense) and with `compression.pruning` (the given sparsity, reached by the
polynomial schedule at epoch 15, then fine-tuned while early stopping watches). Both export
a float32 TFLite file. Prints each side's test accuracy (metrics.json), its TFLite file's
bytes and gzip bytes (level 9: the size a download or an app bundle pays), and the ratios.
Targets: the pruned model loses at most 1 point of test accuracy, and its gzip-compressed
TFLite file is at most 0.4× the dense one's (zeros compress; the float32 file itself keeps
every weight, zero or not).
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

ROOT = Path(__file__).resolve().parents[1]


def run(spec: str, out: Path, overrides: list[str]) -> float:
    command = [sys.executable, "-m", "dlpipe.cli", "--quiet", "run", spec, "--out", str(out)]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    tflite = (out / "export" / "tflite" / "model_float32.tflite").read_bytes()
    record = json.loads((out / "run.json").read_text())
    return {"accuracy": metrics["test"]["accuracy"], "bytes": len(tflite),
            "gzip": len(gzip.compress(tflite, compresslevel=9, mtime=0)),
            "sparsity": record.get("pruning", {}).get("sparsity", 0.0),
            "epochs": len((out / "history.csv").read_text().splitlines()) - 1}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs/image-classification.yaml"))
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--out", default=None, help="keep both runs here (default: a temporary folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    export = ["export.formats=[tflite]", "export.tflite={quantization: [float32]}", "evaluation.baselines=false"]
    pruning = (f"compression.pruning={{sparsity: {args.sparsity}, schedule: {{begin_epoch: 2, end_epoch: 15}}, "
               "frequency: 5}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out) if args.out else Path(scratch)
        sides = {"dense": [*args.overrides, *export], "pruned": [*args.overrides, *export, pruning]}
        results = {}
        for name, overrides in sides.items():
            seconds = run(args.spec, folder / name, overrides)
            results[name] = {**measure(folder / name), "seconds": seconds}
    dense, pruned = results["dense"], results["pruned"]
    print(f"{'':8} {'test accuracy':>13} {'epochs':>6} {'sparsity':>8} {'tflite bytes':>12} {'gzip bytes':>10} "
          f"{'seconds':>7}")
    for name, r in results.items():
        print(f"{name:8} {r['accuracy']:13.4f} {r['epochs']:6d} {r['sparsity']:8.4f} {r['bytes']:12,d} "
              f"{r['gzip']:10,d} {r['seconds']:7.1f}")
    loss = 100 * (dense["accuracy"] - pruned["accuracy"])
    ratio = pruned["gzip"] / dense["gzip"]
    print(f"accuracy lost: {loss:.2f} points (target ≤ 1: {'met' if loss <= 1 else 'NOT met'}); "
          f"gzip TFLite ratio pruned/dense: {ratio:.3f} (target ≤ 0.4: {'met' if ratio <= 0.4 else 'NOT met'})")
    return {**results, "points_lost": loss, "gzip_ratio": ratio}


if __name__ == "__main__":
    main()
