"""End to end: `dlpipe run` on the breast_cancer MLP against a hand-written Keras script
doing the same work (benchmarks/handwritten_breast_cancer.py), measured in the same run.

    python benchmarks/e2e.py [--runs 5] [--backend tensorflow|jax]

Runs the two as whole processes in turn (A B, B A, A B, ...), after one warm-up each, and prints
median wall and CPU seconds, peak RSS and the median of the per-pair ratios (dlpipe / hand-written).
Target (docs/benchmarks.md): ratio ≤ 1.05.

`--backend jax`: dlpipe trains on Keras' JAX backend (`--set backend=jax`); both sides write
only model.keras (dlpipe: `export.formats: [keras]`; the hand-written script, always on
TensorFlow: `--keras-only`, no SavedModel), and each side's test accuracy is printed, with
dlpipe's on TensorFlow from one more run (untimed) for the accuracy band. Target: ratio ≤ 0.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def timed(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB) of one child process.
    CPU time is less sensitive than wall time to other processes sharing the machine."""
    begun = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - begun
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)}: exit code {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _accuracy(out: Path) -> float | None:
    """The test accuracy a side wrote: dlpipe's metrics.json, the script's accuracy.txt."""
    import json

    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    if (out / "accuracy.txt").is_file():
        return float((out / "accuracy.txt").read_text())
    return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow",
                        help="dlpipe's backend; jax: both sides write only model.keras")
    parser.add_argument("--dlpipe", default=str(BIN / "dlpipe"),
                        help="the dlpipe executable (default: beside this Python); another checkout's for a before/after")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-e2e-"))

    jax = args.backend == "jax"
    keras_only = ["--set", "backend=jax", "--set", "export.formats=[keras]"] if jax else []

    def dlpipe(i: int, sets: list[str] = keras_only) -> list[str]:
        return [args.dlpipe, "run", str(HERE / "specs/breast-cancer-e2e.yaml"), *sets, "--out", str(scratch / f"d{i}")]

    def handwritten(i: int) -> list[str]:
        return [sys.executable, str(HERE / "handwritten_breast_cancer.py"), str(scratch / f"h{i}"),
                *(["--keras-only"] if jax else [])]

    timed(dlpipe(-1)), timed(handwritten(-1))  # warm-up: file caches, compiled bytecode
    accuracy = {"dlpipe": _accuracy(scratch / "d-1"), "handwritten": _accuracy(scratch / "h-1")}
    if jax:  # the band: dlpipe's own run of the same spec on TensorFlow (untimed)
        timed(dlpipe(-2, ["--set", "export.formats=[keras]"]))
        accuracy["dlpipe on tensorflow"] = _accuracy(scratch / "d-2")
    rows = []
    for i in range(args.runs):
        if i % 2 == 0:  # alternate which goes first, so a trend in the load favours neither
            a, b = timed(dlpipe(i)), timed(handwritten(i))
        else:
            b, a = timed(handwritten(i)), timed(dlpipe(i))
        rows.append((a, b))
        print(f"pair {i + 1}: dlpipe {a[0]:.2f} s ({a[1]:.2f} s CPU), hand-written {b[0]:.2f} s ({b[1]:.2f} s CPU), "
              f"ratio {a[0] / b[0]:.3f} (CPU {a[1] / b[1]:.3f})", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median
    dlpipe_name = f"dlpipe ({args.backend})"
    result = {"dlpipe": median(a[0] for a, _ in rows), "handwritten": median(b[0] for _, b in rows),
              "ratio": median(a[0] / b[0] for a, b in rows), "dlpipe_cpu": median(a[1] for a, _ in rows),
              "handwritten_cpu": median(b[1] for _, b in rows), "cpu_ratio": median(a[1] / b[1] for a, b in rows),
              "dlpipe_rss": median(a[2] for a, _ in rows), "handwritten_rss": median(b[2] for _, b in rows),
              "runs": args.runs, "backend": args.backend, "accuracy": accuracy}
    print("\n| | median wall (s) | median CPU (s) | peak RSS (MB) |\n|---|---:|---:|---:|"
          f"\n| {dlpipe_name} | {result['dlpipe']:.2f} | {result['dlpipe_cpu']:.2f} | {result['dlpipe_rss']:.0f} |"
          f"\n| hand-written Keras | {result['handwritten']:.2f} | {result['handwritten_cpu']:.2f} "
          f"| {result['handwritten_rss']:.0f} |"
          f"\n| ratio (median of pairs) | {result['ratio']:.3f} | {result['cpu_ratio']:.3f} | |")
    print("\ntest accuracy: " + ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items()))
    print(f"\ncpu count {os.cpu_count()}, runs {args.runs}, load average {os.getloadavg()[0]:.2f} at the end")
    return result

if __name__ == "__main__":
    main(sys.argv[1:])
