"""End to end: `dlpipe run` on the breast_cancer MLP against a hand-written Keras script
doing the same work (benchmarks/handwritten_breast_cancer.py), measured in the same run.

    python benchmarks/e2e.py [--runs 5] [--backend tensorflow|jax|torch] [--ludwig PATH/TO/ludwig]

Runs the two as whole processes in turn (A B, B A, A B, ...), after one warm-up each, and prints
median wall and CPU seconds, peak RSS and the median of the per-pair ratios (dlpipe / hand-written).
Target (docs/benchmarks.md): ratio ≤ 1.05.

`--backend jax`: dlpipe trains on Keras' JAX backend (`--set backend=jax`); both sides write
only model.keras (dlpipe: `export.formats: [keras]`; the hand-written script, always on
TensorFlow: `--keras-only`, no SavedModel), and each side's test accuracy is printed, with
dlpipe's on TensorFlow from one more run (untimed) for the accuracy band. Target: ratio ≤ 0.5.
`--backend torch`: the same on Keras' PyTorch backend (no target: its steps run eagerly).

`--ludwig PATH`: Ludwig's `ludwig` executable (in a venv of its own) runs the same MLP as a
third side in each round (`ludwig experiment`, config and CSV written by this script: 30
`number` inputs with z-score, a `binary` output, the `concat` combiner with 2 FC layers of
64 and dropout 0.1, 50 epochs of batch 32 at learning rate 0.001 without early stopping, a
random 0.7/0.1/0.2 split, `--random_seed 42 --skip_save_processed_input`); the order of the
sides is reversed every other round, and the dlpipe/Ludwig ratio is printed too. Target
(issue #24): ≤ 1/3.
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
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""Every side runs with bytecode writing allowed, as benchmarks/startup.py: the warm-up leaves
the compiled `.pyc` files an installed package has (a checkout run with
PYTHONDONTWRITEBYTECODE=1 would compile dlpipe's own modules from source in every run; the
libraries' are compiled at install time either way, and each script's `__main__` never is)."""


def timed(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB) of one child process.
    CPU time is less sensitive than wall time to other processes sharing the machine."""
    begun = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
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


def ludwig_inputs(folder: Path) -> tuple[Path, Path]:
    """The breast-cancer CSV and the Ludwig config of the same MLP (see the module's text)."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [name.replace(" ", "_") for name in data.feature_names]
    csv = folder / "breast_cancer.csv"
    rows = [",".join([*names, "target"])]
    rows += [",".join([*(repr(float(v)) for v in x), str(int(y))]) for x, y in zip(data.data, data.target)]
    csv.write_text("\n".join(rows) + "\n")
    features = "\n".join(f"  - {{name: {name}, type: number, preprocessing: {{normalization: zscore}}}}" for name in names)
    config = folder / "ludwig.yaml"
    config.write_text(f"""input_features:
{features}
output_features:
  - {{name: target, type: binary}}
combiner: {{type: concat, num_fc_layers: 2, output_size: 64, dropout: 0.1}}
trainer: {{epochs: 50, batch_size: 32, learning_rate: 0.001, early_stop: -1}}
preprocessing:
  split: {{type: random, probabilities: [0.7, 0.1, 0.2]}}
""")
    assert np.isfinite(data.data).all()
    return csv, config


def _ludwig_accuracy(out: Path) -> float | None:
    import json

    found = sorted(out.glob("*/test_statistics.json"))
    if not found:
        return None
    return json.loads(found[-1].read_text())["target"]["accuracy"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default="tensorflow",
                        help="dlpipe's backend; jax, torch: both sides write only model.keras")
    parser.add_argument("--dlpipe", default=str(BIN / "dlpipe"),
                        help="the dlpipe executable (default: beside this Python); another checkout's for a before/after")
    parser.add_argument("--ludwig", default=None, metavar="PATH",
                        help="Ludwig's `ludwig` executable: Ludwig runs the same MLP as a third side")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-e2e-"))
    if args.ludwig:
        ludwig_csv, ludwig_config = ludwig_inputs(scratch)

    jax = args.backend != "tensorflow"  # jax or torch: keras only on both sides, TensorFlow's accuracy beside
    keras_only = ["--set", f"backend={args.backend}", "--set", "export.formats=[keras]"] if jax else []

    def dlpipe(i: int, sets: list[str] = keras_only) -> list[str]:
        return [args.dlpipe, "run", str(HERE / "specs/breast-cancer-e2e.yaml"), *sets, "--out", str(scratch / f"d{i}")]

    def handwritten(i: int) -> list[str]:
        return [sys.executable, str(HERE / "handwritten_breast_cancer.py"), str(scratch / f"h{i}"),
                *(["--keras-only"] if jax else [])]

    def ludwig(i: int) -> list[str]:
        return [args.ludwig, "experiment", "--config", str(ludwig_config), "--dataset", str(ludwig_csv),
                "--random_seed", "42", "--skip_save_processed_input", "--output_directory", str(scratch / f"l{i}")]

    timed(dlpipe(-1)), timed(handwritten(-1))  # warm-up: file caches, compiled bytecode
    accuracy = {"dlpipe": _accuracy(scratch / "d-1"), "handwritten": _accuracy(scratch / "h-1")}
    if args.ludwig:
        timed(ludwig(-1))
        accuracy["ludwig"] = _ludwig_accuracy(scratch / "l-1")
    if jax:  # the band: dlpipe's own run of the same spec on TensorFlow (untimed)
        timed(dlpipe(-2, ["--set", "export.formats=[keras]"]))
        accuracy["dlpipe on tensorflow"] = _accuracy(scratch / "d-2")
    rows, ludwig_rows = [], []
    for i in range(args.runs):
        sides = [("dlpipe", dlpipe), ("handwritten", handwritten), *([("ludwig", ludwig)] if args.ludwig else [])]
        if i % 2 == 1:  # alternate which goes first, so a trend in the load favours neither
            sides.reverse()
        measured = {name: timed(command(i)) for name, command in sides}
        a, b = measured["dlpipe"], measured["handwritten"]
        rows.append((a, b))
        line = (f"pair {i + 1}: dlpipe {a[0]:.2f} s ({a[1]:.2f} s CPU), hand-written {b[0]:.2f} s ({b[1]:.2f} s CPU), "
                f"ratio {a[0] / b[0]:.3f} (CPU {a[1] / b[1]:.3f})")
        if args.ludwig:
            c = measured["ludwig"]
            ludwig_rows.append((a, c))
            line += f"; Ludwig {c[0]:.2f} s ({c[1]:.2f} s CPU), dlpipe/Ludwig {a[0] / c[0]:.3f} (CPU {a[1] / c[1]:.3f})"
        print(line + f", load {os.getloadavg()[0]:.1f}", flush=True)
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
    if args.ludwig:
        result.update(ludwig=median(c[0] for _, c in ludwig_rows), ludwig_cpu=median(c[1] for _, c in ludwig_rows),
                      ludwig_rss=median(c[2] for _, c in ludwig_rows),
                      ludwig_ratio=median(a[0] / c[0] for a, c in ludwig_rows),
                      ludwig_cpu_ratio=median(a[1] / c[1] for a, c in ludwig_rows))
        print(f"| Ludwig 0.11 (PyTorch) | {result['ludwig']:.2f} | {result['ludwig_cpu']:.2f} | {result['ludwig_rss']:.0f} |"
              f"\n| dlpipe / Ludwig (median of rounds) | {result['ludwig_ratio']:.3f} | {result['ludwig_cpu_ratio']:.3f} | |")
    print("\ntest accuracy: " + ", ".join(f"{name} {value:.4f}" if value is not None else f"{name} ?"
                                          for name, value in accuracy.items()))
    print(f"\ncpu count {os.cpu_count()}, runs {args.runs}, load average {os.getloadavg()[0]:.2f} at the end")
    return result

if __name__ == "__main__":
    main(sys.argv[1:])
