"""Scaling: `dlpipe run` on one tabular task at 1×, 10× and 100× rows, from CSV files.

    python benchmarks/scaling.py [--rows 10000] [--factors 1,10,100] [--rounds 1] [--epochs 2]

Writes seeded CSV files (8 numeric columns, one categorical, a binary target that depends
on them; with streaming, which reads numerical features only, the categorical is left out) to a temporary folder, runs `dlpipe run` on each as a whole process and reads wall
time and peak RSS from `os.wait4`. With --rounds above 1 the sizes are run in turn, round
after round, and medians are printed (after one warm-up run of the smallest). When the spec layer has `data.streaming` (read the
CSV in chunks instead of whole), the runs use it. Targets: 10× rows → ≤ 10.5× time; peak
RSS from 10× to 100× grows ≤ 1.2×.
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

BIN = Path(sys.executable).parent

SPEC = """\
name: scaling-{rows}
task: classification
seed: 42
data:
  source: {{type: csv, path: {path}}}
  features:
{features}
  target: {{name: label}}
  split: {{train: 0.8, validation: 0.1, test: 0.1}}{streaming}
prepare:
  normalization: {{numerical: {{type: zscore}}}}
model: {{type: mlp, units: [32, 32], activation: relu}}
training:
  epochs: {epochs}
  batch_size: 256
  optimizer: {{type: adam, learning_rate: 1.0e-3}}
  progress: none
evaluation:
  metrics: [accuracy, roc_auc]
export:
  formats: [keras]
"""


def spec_text(rows: int, csv: Path, epochs: int, streaming: bool) -> str:
    # Streaming reads numerical features only; without it the text column is a feature too.
    features = [f"    - {{name: x{i}, type: numerical}}" for i in range(8)]
    if not streaming:
        features.append("    - {name: colour, type: categorical}")
    features = "\n".join(features)
    return SPEC.format(rows=rows, path=csv, epochs=epochs, features=features,
                       streaming="\n  streaming: true" if streaming else "")


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Seeded rows, written in blocks so that writing 100× stays within a little memory."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=8)
    colours = np.array(["red", "green", "blue", "grey", "black"])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(",".join([f"x{i}" for i in range(8)] + ["colour", "label"]) + "\n")
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            x = rng.normal(size=(n, 8))
            colour = rng.integers(0, len(colours), size=n)
            logit = x @ weights + (colour - 2) * 0.5 + rng.normal(scale=0.5, size=n)
            label = (logit > 0).astype(int)
            lines = [",".join(f"{v:.5f}" for v in x[i]) + f",{colours[colour[i]]},{label[i]}" for i in range(n)]
            handle.write("\n".join(lines) + "\n")


def has_streaming() -> bool:
    from dlpipe.spec import data

    return any("streaming" in getattr(cls, "model_fields", {}) for cls in vars(data).values() if isinstance(cls, type))


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    begun = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - begun
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows at 1×")
    parser.add_argument("--factors", default="1,10,100")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-scaling-"))
    streaming = has_streaming()
    try:
        specs = {}
        for factor in factors:
            rows = args.rows * factor
            csv = scratch / f"rows{rows}.csv"
            write_csv(csv, rows)
            spec = scratch / f"rows{rows}.yaml"
            spec.write_text(spec_text(rows, csv, args.epochs, streaming))
            specs[factor] = spec
        results: dict[int, list[tuple[float, float]]] = {f: [] for f in factors}
        timed([str(BIN / "dlpipe"), "run", str(specs[factors[0]]), "--out", str(scratch / "warm-up")])
        for r in range(args.rounds):
            for factor in factors:
                out = scratch / f"run-{factor}-{r}"
                results[factor].append(timed([str(BIN / "dlpipe"), "run", str(specs[factor]), "--out", str(out)]))
                shutil.rmtree(out, ignore_errors=True)
                wall, rss = results[factor][-1]
                print(f"round {r + 1}: {factor}× ({args.rows * factor:,} rows): {wall:.2f} s, {rss:.0f} MB", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median
    table = {f: (median(w for w, _ in v), median(m for _, m in v)) for f, v in results.items()}
    base_wall, _ = table[factors[0]]
    print(f"\n{args.rows:,} rows at 1×, {args.epochs} epochs, {args.rounds} round(s), streaming "
          f"{'on' if streaming else 'not available'}, load average {os.getloadavg()[0]:.2f}, cpu count {os.cpu_count()}")
    print("\n| rows | wall (s) | × time of 1× | peak RSS (MB) | × RSS of previous |\n|---:|---:|---:|---:|---:|")
    previous = None
    for factor, (wall, rss) in table.items():
        growth = f"{rss / previous:.2f}" if previous else "—"
        print(f"| {args.rows * factor:,} | {wall:.2f} | {wall / base_wall:.2f} | {rss:.0f} | {growth} |")
        previous = rss
    return {"rows": args.rows, "streaming": streaming, "table": table}


if __name__ == "__main__":
    main(sys.argv[1:])
