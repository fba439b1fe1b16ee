"""How long `dlpipe validate` takes, and how much memory it needs, as a user runs it.

Each command runs N times as a fresh process (what an editor hook or a pre-commit check
does), after one untimed warm-up run. The table gives the median wall time, the median CPU
time (user + system: steadier than wall time on a busy machine) and the peak resident
memory of each run, all read from os.wait4 for that child alone (RUSAGE_CHILDREN would
give the largest child so far, not this one's). Standard library only.

The children run with Python's bytecode cache on, as after `pip install` (which compiles
it) or a first run, even where PYTHONDONTWRITEBYTECODE is set in this environment.

    python benchmarks/validate_speed.py [--repeat 7] [--dlpipe PATH]

Three cases:
- a spec checked for the first time, as on a fresh machine: each timed run gets its own
  empty cache folder (Pydantic is imported, the spec models this spec uses are built, the
  data files are looked at), for every template and for three bad specs whose problems
  only the look at the data finds (a missing file, a misspelled target with a
  did-you-mean, a feature that names no column);
- the same with `--no-cache` (nothing is written either);
- an unchanged spec checked again, whose remembered result is replayed
  (dlpipe/validation_cache.py; the cache is filled by the untimed warm-up run).
`python -c pass` (the interpreter alone) and the floor (importing click, PyYAML and
Pydantic, as any spec layer on them must) are measured in the same run for comparison.

Targets: a first check of one spec (a template or a bad spec), and
`dlpipe validate specs/*.yaml`: median wall ≤ 0.3 s on a quiet machine, peak RSS ≤ 80 MB.
On a busy machine wall time waits for a core; the CPU column is what the command costs.
Results are kept in docs/benchmarks.md ("dlpipe validate").
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

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.3
TARGET_MB = 80.0
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CHILD_ENV["DLPIPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlpipe-validate-bench-")
FRESH = "fresh"  # a `cache` value: an empty cache folder for each run
BAD = ROOT / "tests" / "fixtures" / "bad" / "data"
BAD_CASES = ["data-missing-file.yaml", "data-unknown-target.yaml", "data-unknown-feature.yaml"]
FLOOR = "import click, yaml, pydantic.plugin._loader; from pydantic import BaseModel, Field"


def measure(command: list[str], cwd: Path = ROOT, cache: str | None = None) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MB, exit code) of one run of `command`;
    `cache=FRESH` gives it an empty cache folder of its own."""
    env = CHILD_ENV
    if cache == FRESH:
        env = {**CHILD_ENV, "DLPIPE_CACHE_DIR": tempfile.mkdtemp(prefix="dlpipe-validate-bench-fresh-")}
    begun = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - begun
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen.wait
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss is in KiB on Linux


def bench(command: list[str], repeat: int, cwd: Path = ROOT, cache: str | None = None, code: int = 0) -> dict:
    measure(command, cwd, cache)  # warms the file and bytecode caches; not counted
    runs = [measure(command, cwd, cache) for _ in range(repeat)]
    walls, cpus, rss, codes = zip(*runs)
    if set(codes) != {code}:
        sys.exit(f"{' '.join(command)}: exit code(s) {sorted(set(codes))}; expected {code}")
    return {"median": statistics.median(walls), "min": min(walls), "max": max(walls),
            "cpu": statistics.median(cpus), "rss": statistics.median(rss), "rss_max": max(rss)}


def find_dlpipe(given: str | None) -> str:
    beside = Path(sys.executable).parent / "dlpipe"
    found = given or (str(beside) if beside.exists() else shutil.which("dlpipe"))
    if not found:
        sys.exit("no dlpipe executable beside this Python or on PATH; pass --dlpipe")
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--dlpipe", help="the dlpipe executable (default: beside this Python)")
    args = parser.parse_args(argv)

    dlpipe = find_dlpipe(args.dlpipe)
    templates = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    # (label, command, folder it runs in, cache, expected exit code)
    commands: list[tuple[str, list[str], Path, str | None, int]] = [
        ("`dlpipe validate specs/*.yaml`, unchanged files (replayed)", [dlpipe, "validate", *templates], ROOT, None, 0),
        ("`dlpipe validate --no-cache specs/*.yaml` (checked afresh)",
         [dlpipe, "validate", "--no-cache", *templates], ROOT, None, 0),
        *((f"first check: `dlpipe validate {t}`", [dlpipe, "validate", t], ROOT, FRESH, 0) for t in templates),
        *((f"first check: `dlpipe validate {b}` (bad data)", [dlpipe, "validate", b], BAD, FRESH, 1)
          for b in BAD_CASES),
        *((f"`dlpipe validate --no-cache {b}` (bad data)", [dlpipe, "validate", "--no-cache", b], BAD, None, 1)
          for b in BAD_CASES),
        ("`dlpipe --help`", [dlpipe, "--help"], ROOT, None, 0),
        # What any spec layer on these libraries pays before its first line: importing them,
        # and pydantic's plugin loader (importlib.metadata), which the first model imports.
        ("floor: import click, yaml, pydantic", [sys.executable, "-c", FLOOR], ROOT, None, 0),
        ("`python -c pass` (interpreter alone)", [sys.executable, "-c", "pass"], ROOT, None, 0),
    ]

    print(f"{args.repeat} runs each, after one warm-up run; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start\n")
    print("| command | median wall (s) | min–max (s) | median CPU (s) | peak RSS (MB), median / max |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for label, command, cwd, cache, code in commands:
        r = results[label] = bench(command, args.repeat, cwd, cache, code)
        print(f"| {label} | {r['median']:.3f} | {r['min']:.3f}–{r['max']:.3f} | {r['cpu']:.3f} "
              f"| {r['rss']:.1f} / {r['rss_max']:.1f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")

    first = [label for label in results if label.startswith("first check")]
    slowest = max(first, key=lambda label: results[label]["median"])
    for label in [*[c[0] for c in commands[:2]], slowest]:
        r = results[label]
        met = r["median"] <= TARGET_SECONDS and r["rss_max"] <= TARGET_MB
        print(f"target for {label}{' (slowest first check)' if label == slowest else ''}: median ≤ "
              f"{TARGET_SECONDS} s and peak RSS ≤ {TARGET_MB:.0f} MB: {'met' if met else 'NOT met'}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
