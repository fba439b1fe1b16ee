"""End to end: `dlpipe run` on the breast_cancer MLP against a hand-written Keras script
doing the same work (benchmarks/handwritten_breast_cancer.py), measured in the same run.

    python benchmarks/e2e.py [--runs 5]

Runs the two as whole processes in turn (A B, B A, A B, ...), after one warm-up each, and prints
median wall seconds, peak RSS and the median of the per-pair ratios (dlpipe / hand-written).
Target (docs/benchmarks.md): ratio ≤ 1.05.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS of the child in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    begun = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - begun
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-e2e-"))

    def dlpipe(i: int) -> list[str]:
        return [str(BIN / "dlpipe"), "run", str(HERE / "specs/breast-cancer-e2e.yaml"), "--out", str(scratch / f"d{i}")]

    def handwritten(i: int) -> list[str]:
        return [sys.executable, str(HERE / "handwritten_breast_cancer.py"), str(scratch / f"h{i}")]

    timed(dlpipe(-1)), timed(handwritten(-1))  # warm-up: file caches, compiled bytecode
    rows = []
    for i in range(args.runs):
        if i % 2 == 0:  # alternate which goes first, so a trend in the load favours neither
            a, b = timed(dlpipe(i)), timed(handwritten(i))
        else:
            b, a = timed(handwritten(i)), timed(dlpipe(i))
        rows.append((a[0], b[0], a[0] / b[0]))
        print(f"pair {i + 1}: dlpipe {a[0]:.2f} s, hand-written {b[0]:.2f} s, ratio {a[0] / b[0]:.3f}", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median
    print(f"\n| | median wall (s) |\n|---|---|\n| dlpipe | {median(r[0] for r in rows):.2f} |"
          f"\n| hand-written Keras | {median(r[1] for r in rows):.2f} |"
          f"\n| ratio (median of pairs) | {median(r[2] for r in rows):.3f} |")
    print(f"\ncpu count {os.cpu_count()}, runs {args.runs}, load average {os.getloadavg()[0]:.2f} at the end")
    return {"dlpipe": median(r[0] for r in rows), "handwritten": median(r[1] for r in rows),
            "ratio": median(r[2] for r in rows), "runs": args.runs}


if __name__ == "__main__":
    main(sys.argv[1:])
