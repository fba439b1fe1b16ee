"""Streaming an image folder: `dlpipe run` at 10× and 100× the size of scikit-learn's digits.

    python benchmarks/image_streaming.py [--factors 10,100] [--epochs 1] [--root DIR] [--rounds 1]

Writes, once per factor and seed, an image folder of 1,797 × factor 8×8 grayscale PNGs (one
subfolder per digit; the first copy is the digits as they are, scaled to 0..240, every other
copy the same digits with seeded noise) under `--root` (default: a folder in the system's
temporary folder, kept for the next run: 100× is ~180,000 files). Then runs `dlpipe run` on
each with `data.streaming: true` (a small CNN, batch 256, keras export) as a whole process
after one warm-up run of the smallest, and reads wall time and peak RSS from `os.wait4`.
Targets (issue 24): peak RSS from 10× to 100× grows ≤ 1.2×, and time ≤ 10.5× per 10× data.
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
DIGITS = 1797

SPEC = """\
name: image-streaming-{factor}x
task: classification
seed: 42
data:
  source: {{type: image_folder, path: {path}, color_mode: grayscale}}
  features: [{{name: image, type: image}}]
  target: {{name: label}}
  split: {{train: 0.8, validation: 0.1, test: 0.1}}
  streaming: {streaming}
prepare:
  normalization: {{image: {{type: zscore}}}}
model:
  type: cnn
  blocks: [{{filters: 16, convs: 1}}]
  global_pool: flatten
  head: {{units: [32]}}
training:
  epochs: {epochs}
  batch_size: 256
  optimizer: {{type: adam, learning_rate: 1.0e-3}}
  progress: none
evaluation:
  metrics: [accuracy]
export:
  formats: [keras]
"""


def spec_text(factor: int, folder: Path, epochs: int, streaming: str = "true") -> str:
    return SPEC.format(factor=factor, path=folder, epochs=epochs, streaming=streaming)


def generate(folder: Path, factor: int, seed: int = 0) -> int:
    """The image folder of `factor` copies of the digits (see the module); skipped when a
    complete one is there already (its marker file names the count and seed)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    marker = folder / ".complete"
    count = DIGITS * factor
    if marker.is_file() and marker.read_text() == f"{count} {seed}\n":
        return count
    shutil.rmtree(folder, ignore_errors=True)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    number = 0
    for copy in range(factor):
        images = digits.images * 15.0
        if copy:
            images = images + rng.normal(0.0, 12.0, size=images.shape)
        pixels = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        for image, label in zip(pixels, digits.target):
            Image.fromarray(image, "L").save(folder / str(label) / f"{number:07d}.png")
            number += 1
    marker.write_text(f"{count} {seed}\n")
    return count


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", default="10,100")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "dlpipe-image-streaming")
    parser.add_argument("--no-warm-up", action="store_true")
    args = parser.parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    specs = {}
    for factor in factors:
        folder = args.root / f"digits-{factor}x"
        begun = time.perf_counter()
        count = generate(folder, factor)
        print(f"{folder}: {count:,} images ({time.perf_counter() - begun:.0f} s)", flush=True)
        spec = args.root / f"digits-{factor}x.yaml"
        spec.write_text(spec_text(factor, folder, args.epochs))
        specs[factor] = spec
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-image-streaming-runs-"))
    results: dict[int, list[tuple[float, float]]] = {f: [] for f in factors}
    try:
        if not args.no_warm_up:
            timed([str(BIN / "dlpipe"), "run", str(specs[factors[0]]), "--out", str(scratch / "warm-up")])
        for r in range(args.rounds):
            for factor in factors:
                out = scratch / f"run-{factor}-{r}"
                load = os.getloadavg()[0]
                results[factor].append(timed([str(BIN / "dlpipe"), "run", str(specs[factor]), "--out", str(out)]))
                wall, rss = results[factor][-1]
                print(f"round {r + 1}: {factor}× ({DIGITS * factor:,} images): {wall:.1f} s, {rss:.0f} MB "
                      f"(load {load:.1f} → {os.getloadavg()[0]:.1f})", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median
    table = {f: (median(w for w, _ in v), median(m for _, m in v)) for f, v in results.items()}
    print(f"\n{args.epochs} epoch(s), {args.rounds} round(s), load average {os.getloadavg()[0]:.2f}, "
          f"cpu count {os.cpu_count()}")
    print("\n| images | wall (s) | × time of previous | peak RSS (MB) | × RSS of previous |\n|---:|---:|---:|---:|---:|")
    previous = None
    for factor, (wall, rss) in table.items():
        shown = ("—", "—") if previous is None else (f"{wall / previous[0]:.2f}", f"{rss / previous[1]:.2f}")
        print(f"| {DIGITS * factor:,} | {wall:.1f} | {shown[0]} | {rss:.0f} | {shown[1]} |")
        previous = (wall, rss)
    return {"table": table}


if __name__ == "__main__":
    main(sys.argv[1:])
