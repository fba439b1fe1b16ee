"""Several processes released together on one run directory: exactly one may own it.

Not a test module: tests/test_rundir.py runs it with a few dozen trials per case; for the
long check run it alone, e.g. `python tests/lock_stress.py --trials 500`, which prints the
owners-per-trial histogram of each case and exits 1 on any trial without exactly one owner
or with any traceback.

Cases, each trial in a folder of its own prepared before the workers start:
    fresh         RunDir.create on a folder that does not exist yet
    fresh-jitter  the same, each worker waiting 0-3 ms after the release and an owner
                  letting go at once: a late process locks after the owner is done and must
                  see the run the owner began (not begin another)
    stale         RunDir.create on a folder whose only file is a `.lock` left by a process
                  that is gone: half the trials with its pid, half empty (killed before
                  writing it)
    stale-reopen  RunDir.reopen (a resume) of an interrupted run whose `.lock` a killed
                  process left
In every case but fresh-jitter an owner holds the lock until every worker has tried, so
two owners at once would be seen.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import random
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

CASES = ("fresh", "fresh-jitter", "stale", "stale-reopen")
HELD = re.compile(r"^(?P<dir>.+): another dlpipe process(?: \(pid (?P<pid>\d+)\))? is using this run directory$")
TAKEN = re.compile(r"^(?P<dir>.+): already holds a run; choose another --out or remove it$")


def dead_pid() -> int:
    """The pid of a process that has exited (a killed run's, as far as its lock can tell)."""
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def prepare(base: Path, case: str, trials: int) -> list[Path]:
    gone = dead_pid()
    folders = []
    for trial in range(trials):
        folder = base / case / f"t{trial:04d}"
        if case.startswith("stale"):
            folder.mkdir(parents=True)
            (folder / ".lock").write_text(f"{gone}\n" if trial % 2 == 0 else "")
            if case == "stale-reopen":
                (folder / "run.json").write_text(json.dumps({"status": "interrupted", "stages": {}}))
        folders.append(folder)
    return folders


def worker(case: str, folders: list[Path], barrier, results) -> None:
    from dlpipe.errors import DlpipeError
    from dlpipe.rundir import RunDir

    rng = random.Random(os.getpid())
    for trial, folder in enumerate(folders):
        run_dir = None
        try:
            barrier.wait()
            if case == "fresh-jitter":
                time.sleep(rng.random() * 0.003)
            try:
                if case == "stale-reopen":
                    run_dir = RunDir.reopen(folder)
                else:
                    run_dir = RunDir.create(folder)
                    run_dir.start(seed=0, command=["lock_stress"], spec_file="spec.yaml")
                outcome = ("owner", "")
            except DlpipeError as err:
                outcome = ("refused", str(err))
            except Exception:
                outcome = ("traceback", traceback.format_exc())
            if case == "fresh-jitter" and run_dir is not None:
                run_dir.unlock()
            results.put((trial, os.getpid(), *outcome))
            barrier.wait()  # every worker has tried: an owner may let go
            if run_dir is not None:
                run_dir.unlock()
            barrier.wait()
        except Exception:  # a broken barrier: report and stop
            results.put((trial, os.getpid(), "traceback", traceback.format_exc()))
            return


def stress(base: Path, case: str, trials: int, processes: int = 4, timeout: float = 60.0) -> dict:
    """Run `trials` trials of `case`; returns {"owners": Counter(owners per trial),
    "refusals": Counter(kind of refusal line), "problems": [one line per trial that went wrong]}."""
    folders = prepare(base, case, trials)
    context = multiprocessing.get_context("spawn")  # no inherited state (TensorFlow's threads)
    barrier = context.Barrier(processes, timeout=timeout)
    results = context.Queue()
    workers = [context.Process(target=worker, args=(case, folders, barrier, results)) for _ in range(processes)]
    for process in workers:
        process.start()
    outcomes = collections.defaultdict(list)
    problems = []
    try:
        for _ in range(trials * processes):
            trial, pid, kind, text = results.get(timeout=timeout)
            outcomes[trial].append((pid, kind, text))
            if kind == "traceback":
                problems.append(f"trial {trial}: process {pid}: {text.strip().splitlines()[-1]}")
                if "BrokenBarrierError" in text or "Timeout" in text:
                    break
    finally:
        for process in workers:
            process.join(timeout=timeout)
            if process.is_alive():
                process.kill()
    owners, refusals = collections.Counter(), collections.Counter()
    for trial in range(trials):
        entries = outcomes.get(trial, [])
        owner_pids = [pid for pid, kind, _ in entries if kind == "owner"]
        owners[len(owner_pids)] += 1
        if len(owner_pids) != 1:
            problems.append(f"trial {trial}: {len(owner_pids)} owners")
        for pid, kind, text in entries:
            if kind != "refused":
                continue
            held, taken = HELD.match(text), TAKEN.match(text)
            refusals["held, pid named" if held and held["pid"] else "held" if held else
                     "already holds a run" if taken else "other"] += 1
            if not (held or taken) or (held or taken)["dir"] != str(folders[trial]):
                problems.append(f"trial {trial}: unexpected message: {text}")
            elif held and held["pid"] and owner_pids and int(held["pid"]) != owner_pids[0]:
                problems.append(f"trial {trial}: message names pid {held['pid']}, the owner is {owner_pids[0]}")
    return {"owners": owners, "refusals": refusals, "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="dlpipe-lock-stress-") as base:
        for case in args.cases:
            begun = time.perf_counter()
            result = stress(Path(base), case, args.trials, args.processes)
            histogram = ", ".join(f"{n} owner{'s' if n != 1 else ''}: {count}"
                                  for n, count in sorted(result["owners"].items()))
            refusals = ", ".join(f"{kind}: {count}" for kind, count in sorted(result["refusals"].items()))
            print(f"{case}: {args.trials} trials × {args.processes} processes in "
                  f"{time.perf_counter() - begun:.1f} s; owners per trial: {histogram}; refusals: {refusals}; "
                  f"problems: {len(result['problems'])}")
            for line in result["problems"][:10]:
                print(f"  {line}")
            failed |= bool(result["problems"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
