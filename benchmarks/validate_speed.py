"""How long `dlpipe validate` takes, and how much memory it needs, as a user runs it.

Each command runs N times as a fresh process (what an editor hook or a pre-commit check
does), after one untimed warm-up run. The table gives the median wall time, the median CPU
time (user + system: steadier than wall time on a busy machine) and the peak resident
memory of each run, all read from os.wait4 for that child alone (RUSAGE_CHILDREN would
give the largest child so far, not this one's). Standard library only.

The children run with Python's bytecode cache on, as after `pip install` (which compiles
it) or a first run, even where PYTHONDONTWRITEBYTECODE is set in this environment.

    python benchmarks/validate_speed.py [--repeat 7] [--dlpipe PATH]

Two cases: a spec checked for the first time (`--no-cache`: Pydantic is imported and the
spec models are built), and an unchanged spec checked again, whose remembered result is
replayed (dlpipe/validation_cache.py; the cache is a fresh temporary folder, filled by the
untimed warm-up run).

Targets for `dlpipe validate specs/*.yaml`: median wall ≤ 0.3 s, peak RSS ≤ 80 MB.
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
FLOOR = "import click, yaml, pydantic.plugin._loader; from pydantic import BaseModel, Field"


def measure(command: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MB, exit code) of one run of `command`."""
    begun = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=CHILD_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - begun
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen.wait
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss is in KiB on Linux


def bench(command: list[str], repeat: int) -> dict:
    measure(command)  # warms the file and bytecode caches; not counted
    runs = [measure(command) for _ in range(repeat)]
    walls, cpus, rss, codes = zip(*runs)
    if set(codes) != {0}:
        sys.exit(f"{' '.join(command)}: exit code(s) {sorted(set(codes))}; expected 0")
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
    commands: list[tuple[str, list[str]]] = [
        ("`dlpipe validate specs/*.yaml`, unchanged files (replayed)", [dlpipe, "validate", *templates]),
        ("`dlpipe validate --no-cache specs/*.yaml` (checked afresh)",
         [dlpipe, "validate", "--no-cache", *templates]),
        *((f"`dlpipe validate --no-cache {t}`", [dlpipe, "validate", "--no-cache", t]) for t in templates),
        ("`dlpipe --help`", [dlpipe, "--help"]),
        # What any spec layer on these libraries pays before its first line: importing them,
        # and pydantic's plugin loader (importlib.metadata), which the first model imports.
        ("floor: import click, yaml, pydantic", [sys.executable, "-c", FLOOR]),
        ("`python -c pass` (interpreter alone)", [sys.executable, "-c", "pass"]),
    ]

    print(f"{args.repeat} runs each, after one warm-up run; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start\n")
    print("| command | median wall (s) | min–max (s) | median CPU (s) | peak RSS (MB), median / max |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for label, command in commands:
        r = results[label] = bench(command, args.repeat)
        print(f"| {label} | {r['median']:.3f} | {r['min']:.3f}–{r['max']:.3f} | {r['cpu']:.3f} "
              f"| {r['rss']:.1f} / {r['rss_max']:.1f} |", flush=True)

    for label, _ in commands[:2]:
        r = results[label]
        met = r["median"] <= TARGET_SECONDS and r["rss_max"] <= TARGET_MB
        print(f"target for {label}: median ≤ {TARGET_SECONDS} s and peak RSS ≤ "
              f"{TARGET_MB:.0f} MB: {'met' if met else 'NOT met'}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
