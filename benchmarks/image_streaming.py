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

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from folder_streaming import arguments, run_sizes, run_spec, summarize, write_folders  # noqa: E402

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
"""


def spec_text(factor: int, folder: Path, epochs: int, streaming: str = "true") -> str:
    """The spec of one size (`streaming: false`: the folder read whole)."""
    return run_spec(SPEC, factor, folder, epochs, streaming, learning_rate="1.0e-3")


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


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__.splitlines()[0], "dlpipe-image-streaming").parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    specs = write_folders(args, factors, "digits", "images", generate, spec_text)
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-image-streaming-runs-"))
    try:
        results, _ = run_sizes(args, factors, specs, scratch, lambda factor: f"{DIGITS * factor:,} images")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = summarize(args, results, f"{os.getloadavg()[0]:.2f}", "images", lambda factor: DIGITS * factor)
    return {"table": table}


if __name__ == "__main__":
    main(sys.argv[1:])
