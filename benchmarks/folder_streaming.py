"""What the folder-streaming benchmarks share (image_streaming.py, text_streaming.py).

Not run by itself: each script writes its generated folders and specs, then measures `dlpipe
run` on each size here — one warm-up run of the smallest, then `--rounds` rounds over the
sizes, each run a whole child process whose wall time and peak RSS come from `os.wait4` —
and prints the table of medians with each size's growth over the previous one.
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
from typing import Callable

BIN = Path(sys.executable).parent

RUN = """\
training:
  epochs: {epochs}
  batch_size: 256
  optimizer: {{type: adam, learning_rate: {learning_rate}}}
  progress: none
evaluation:
  metrics: [accuracy]
export:
  formats: [keras]
"""
"""The sections after the model, the same in both benchmarks but for the learning rate."""


def run_spec(head: str, factor: int, folder: Path, epochs: int, streaming: str, learning_rate: str) -> str:
    """A benchmark's spec: its own `head` (name, data, prepare, model; a format string of
    `factor`, `path` and `streaming`) and RUN."""
    return (head + RUN).format(factor=factor, path=folder, epochs=epochs, streaming=streaming,
                               learning_rate=learning_rate)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    begun = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    error = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - begun
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return wall, usage.ru_maxrss / 1024


def arguments(description: str, root: str) -> argparse.ArgumentParser:
    """The options both scripts take (`root`: the default folder's name in the temporary folder)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--factors", default="10,100")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / root)
    parser.add_argument("--no-warm-up", action="store_true")
    return parser


def write_folders(args, factors: list[int], stem: str, unit: str, generate: Callable[[Path, int], int],
                  spec_text: Callable[[int, Path, int], str]) -> dict[int, Path]:
    """Each factor's folder `<root>/<stem>-<factor>x` (generated) and its spec: {factor: spec file}."""
    specs = {}
    for factor in factors:
        folder = args.root / f"{stem}-{factor}x"
        begun = time.perf_counter()
        count = generate(folder, factor)
        print(f"{folder}: {count:,} {unit} ({time.perf_counter() - begun:.0f} s)", flush=True)
        spec = args.root / f"{stem}-{factor}x.yaml"
        spec.write_text(spec_text(factor, folder, args.epochs))
        specs[factor] = spec
    return specs


def run_sizes(args, factors: list[int], specs: dict[int, Path], scratch: Path,
              count: Callable[[int], str]) -> tuple[dict[int, list[tuple[float, float]]], list[float]]:
    """({factor: [(wall, RSS) a round]}, the load averages before and after each run), after a
    warm-up run of the first factor unless `--no-warm-up`; `count(factor)` names its size."""
    results: dict[int, list[tuple[float, float]]] = {f: [] for f in factors}
    loads: list[float] = []
    if not args.no_warm_up:
        timed([str(BIN / "dlpipe"), "run", str(specs[factors[0]]), "--out", str(scratch / "warm-up")])
    for r in range(args.rounds):
        for factor in factors:
            out = scratch / f"run-{factor}-{r}"
            load = os.getloadavg()[0]
            results[factor].append(timed([str(BIN / "dlpipe"), "run", str(specs[factor]), "--out", str(out)]))
            wall, rss = results[factor][-1]
            loads += [load, os.getloadavg()[0]]
            print(f"round {r + 1}: {factor}× ({count(factor)}): {wall:.1f} s, {rss:.0f} MB "
                  f"(load {load:.1f} → {loads[-1]:.1f})", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    return results, loads


def summarize(args, results: dict[int, list[tuple[float, float]]], load: str, unit: str,
              size: Callable[[int], int]) -> dict[int, tuple[float, float]]:
    """{factor: (median wall, median RSS)} over the rounds, printed after a line of the
    conditions (`load`: the load average as the script reports it) as a markdown table: one
    row a factor (`size(factor)` examples), with its growth over the previous."""
    median = statistics.median
    table = {f: (median(w for w, _ in v), median(m for _, m in v)) for f, v in results.items()}
    print(f"\n{args.epochs} epoch(s), {args.rounds} round(s), load average {load}, cpu count {os.cpu_count()}")
    print(f"\n| {unit} | wall (s) | × time of previous | peak RSS (MB) | × RSS of previous |\n|---:|---:|---:|---:|---:|")
    previous = None
    for factor, (wall, rss) in table.items():
        shown = ("—", "—") if previous is None else (f"{wall / previous[0]:.2f}", f"{rss / previous[1]:.2f}")
        print(f"| {size(factor):,} | {wall:.1f} | {shown[0]} | {rss:.0f} | {shown[1]} |")
        previous = (wall, rss)
    return table
