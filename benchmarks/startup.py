"""Start-up: from launching `dlpipe run` to the end of its first training step, against
`python -c "import tensorflow"` (and `import keras`) as the floor.

    python benchmarks/startup.py [--rounds 3] [--spec benchmarks/specs/breast-cancer-e2e.yaml] [--backend jax]

The dlpipe process is `dlpipe run SPEC --set training.epochs=1` started through a small
wrapper (this file with --child) that only adds one callback to the run: at the end of the
first training batch it writes the wall-clock time to a file. Start-up is that time minus
the moment the parent launched the process; the whole run's wall time is printed too. The
floors are whole processes. dlpipe and the floors alternate, round after round, so that load
from other processes hits all alike; medians are printed.

`--backend jax` runs the spec with `--set backend=jax --set export.formats=[keras]` and also
prints the median of the per-round ratios (first step) / (import tensorflow): target ≤ 0.4.

CPU seconds are printed beside wall seconds (on a shared machine wall time mostly measures
waiting): the dlpipe process's own CPU time up to the end of its first step
(`time.process_time()`, stamped with the wall clock), and each floor's whole CPU time
(`os.wait4`). The children run with bytecode writing allowed (`PYTHONDONTWRITEBYTECODE`
removed), so the warm-up leaves compiled `.pyc` files as an installed package has them.
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


def child(stamp_file: str, argv: list[str]) -> None:
    """`dlpipe` with argv, plus a callback that stamps the end of the first training step."""
    from dlpipe import cli, runner

    original = runner.run_spec

    class FirstStep:
        """A duck-typed Keras callback: every hook a no-op except the first batch's end.
        (Subclassing keras.callbacks.Callback would import Keras before dlpipe does.)"""

        def __init__(self):
            self.done = False

        def on_train_batch_end(self, batch, logs=None):
            if not self.done:
                self.done = True
                Path(stamp_file).write_text(f"{time.time()!r} {time.process_time()!r}")

        def __getattr__(self, name):
            if name.startswith(("on_", "set_")):
                return lambda *args, **kwargs: None
            raise AttributeError(name)

    def run_spec(*args, callbacks=(), **kwargs):
        return original(*args, callbacks=[*callbacks, FirstStep()], **kwargs)

    runner.run_spec = run_spec
    sys.argv = ["dlpipe", *argv]
    cli.main()


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], stamp: Path | None = None) -> tuple[float, float, float | None, float | None]:
    """(wall seconds of the process, its CPU seconds, and if stamped: seconds from launch to
    the stamp, CPU seconds up to it)."""
    begun_wall, begun = time.time(), time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - begun
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed")
    cpu = usage.ru_utime + usage.ru_stime
    if stamp is None:
        return wall, cpu, None, None
    at, cpu_at = (float(part) for part in stamp.read_text().split())
    return wall, cpu, at - begun_wall, cpu_at


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spec", default=str(HERE / "specs/breast-cancer-e2e.yaml"))
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-startup-"))
    stamp = scratch / "first_step"
    python = sys.executable

    def dlpipe(i: int) -> tuple[float, float, float | None, float | None]:
        stamp.unlink(missing_ok=True)
        sets = ["--set", "backend=jax", "--set", "export.formats=[keras]"] if args.backend == "jax" else []
        return timed([python, __file__, "--child", str(stamp), "run", args.spec, "--set", "training.epochs=1",
                      *sets, "--out", str(scratch / f"run{i}")], stamp)

    floors = {"import tensorflow": [python, "-c", "import tensorflow"],
              "import keras": [python, "-c", "import keras"]}
    env_note = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    dlpipe(-1)
    for command in floors.values():
        timed(command)  # warm-up: file caches, compiled bytecode
    rows: list[dict[str, float]] = []
    try:
        for i in range(args.rounds):
            row = {}
            wall, _, first, first_cpu = dlpipe(i)
            row["dlpipe run: wall"], row["dlpipe run: first step"], row["dlpipe run: first step CPU"] = wall, first, first_cpu
            for name, command in floors.items():
                row[name], row[f"{name} CPU"] = timed(command)[:2]
            rows.append(row)
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in row.items()), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {name: statistics.median(r[name] for r in rows) for name in rows[0]}
    result["first step - import tensorflow"] = statistics.median(
        r["dlpipe run: first step"] - r["import tensorflow"] for r in rows)
    result["first step / import tensorflow"] = statistics.median(
        r["dlpipe run: first step"] / r["import tensorflow"] for r in rows)
    result["first step / import tensorflow, CPU"] = statistics.median(
        r["dlpipe run: first step CPU"] / r["import tensorflow CPU"] for r in rows)
    print(f"\nspec {Path(args.spec).name} (1 epoch, backend {args.backend}), {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}, "
          f"cpu count {os.cpu_count()}, TF_CPP_MIN_LOG_LEVEL={env_note}")
    print("\n| | median (s, or ratio) |\n|---|---:|")
    for name, value in result.items():
        print(f"| {name} | {value:.2f} |")
    return result


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main(sys.argv[1:])
