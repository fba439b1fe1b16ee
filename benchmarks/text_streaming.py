"""Streaming a text folder: `dlpipe run` at 10× and 100× a base of 1,000 generated texts.

    python benchmarks/text_streaming.py [--factors 10,100] [--epochs 1] [--root DIR] [--rounds 1]

Writes, once per factor and seed, a folder of 1,000 × factor UTF-8 text files (4 topics, one
subfolder each; every text 20–60 words drawn from its topic's 150 words and a shared pool
of 1,500 with Zipf-like frequencies, capitals and punctuation that the standardization
folds) under `--root` (default: a folder in the system's temporary folder, kept for the next
run: 100× is 100,000 files). Then runs `dlpipe run` on each with `data.streaming: true` (a
bag-of-embeddings MLP over 64 word ids of a 5,000-entry vocabulary, batch 256, keras export)
as a whole process after one warm-up run of the smallest, and reads wall time and peak RSS
from `os.wait4`. Targets (issue 24, the image line applied to text): peak RSS from 10× to
100× grows ≤ 1.2×, and time ≤ 10.5× per 10× data.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from folder_streaming import (BIN, arguments, run_sizes, run_spec, summarize,  # noqa: E402
                              timed, write_folders)

BASE = 1000
TOPICS = ("arts", "science", "sport", "trade")

SPEC = """\
name: text-streaming-{factor}x
task: classification
seed: 42
data:
  source: {{type: text_folder, path: {path}}}
  features:
    - {{name: text, type: text, sequence_length: 64, vocabulary_size: 5000, embedding_dim: 16}}
  target: {{name: label}}
  split: {{train: 0.8, validation: 0.1, test: 0.1}}
  streaming: {streaming}
model:
  type: mlp
  units: [32]
"""


def spec_text(factor: int, folder: Path, epochs: int, streaming: str = "true") -> str:
    """The spec of one size (`streaming: false`: the folder read whole)."""
    return run_spec(SPEC, factor, folder, epochs, streaming, learning_rate="3.0e-3")


def words(seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """A shared pool of made-up words and each topic's own."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def word() -> str:
        return "".join(rng.choice(letters, int(rng.integers(3, 9))))

    shared = sorted({word() for _ in range(1500)})
    return shared, {topic: [f"{topic[:2]}{word()}" for _ in range(150)] for topic in TOPICS}


def generate(folder: Path, factor: int, seed: int = 0) -> int:
    """The text folder of `BASE × factor` files (see the module); skipped when a complete one
    is there already (its marker file names the count and seed)."""
    import numpy as np

    marker = folder / ".complete"
    count = BASE * factor
    if marker.is_file() and marker.read_text() == f"{count} {seed}\n":
        return count
    shutil.rmtree(folder, ignore_errors=True)
    shared, own = words(seed)
    rng = np.random.default_rng(seed + 1)
    zipf = 1.0 / np.arange(1, len(shared) + 1)
    zipf /= zipf.sum()
    marks = np.array(["", "", "", ",", ".", "!", "?"])
    for topic in TOPICS:
        (folder / topic).mkdir(parents=True, exist_ok=True)
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        length = int(rng.integers(20, 61))
        from_topic = rng.random(length) < 0.3
        picked = np.where(from_topic, rng.choice(own[topic], length), rng.choice(shared, length, p=zipf))
        text = " ".join(w.capitalize() if rng.random() < 0.1 else w for w in picked)
        text = " ".join(w + m for w, m in zip(text.split(), rng.choice(marks, length)))
        (folder / topic / f"{number:07d}.txt").write_text(text + "\n", encoding="utf-8")
    marker.write_text(f"{count} {seed}\n")
    return count


def main(argv: list[str] | None = None) -> dict:
    parser = arguments(__doc__.splitlines()[0], "dlpipe-text-streaming")
    parser.add_argument("--whole", action="store_true",
                        help="also one run of each folder read whole (streaming: false), for comparison")
    args = parser.parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    specs = write_folders(args, factors, "texts", "texts", generate, spec_text)
    for factor in factors if args.whole else ():
        (args.root / f"texts-{factor}x-whole.yaml").write_text(spec_text(factor, args.root / f"texts-{factor}x",
                                                                         args.epochs, "false"))
    scratch = Path(tempfile.mkdtemp(prefix="dlpipe-text-streaming-runs-"))
    whole: dict[int, tuple[float, float]] = {}
    try:
        results, loads = run_sizes(args, factors, specs, scratch, lambda factor: f"{BASE * factor:,} texts")
        for factor in factors if args.whole else ():
            load = os.getloadavg()[0]
            wall, rss = timed([str(BIN / "dlpipe"), "run", str(args.root / f"texts-{factor}x-whole.yaml"), "--out",
                               str(scratch / f"whole-{factor}")])
            whole[factor] = (wall, rss)
            print(f"read whole: {factor}× ({BASE * factor:,} texts): {wall:.1f} s, {rss:.0f} MB "
                  f"(load {load:.1f} → {os.getloadavg()[0]:.1f})", flush=True)
            shutil.rmtree(scratch / f"whole-{factor}", ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = summarize(args, results, f"{min(loads):.1f}–{max(loads):.1f}", "texts", lambda factor: BASE * factor)
    walls, peaks = [table[f][0] for f in factors], [table[f][1] for f in factors]
    per_10x = max((b / a) ** (1 / math.log10(y / x)) for a, b, x, y  # time growth per 10× data
                  in zip(walls, walls[1:], factors, factors[1:])) if len(factors) > 1 else None
    growth = peaks[-1] / peaks[0] if len(factors) > 1 else None
    return {"table": table, "rss_growth": growth, "time_per_10x": per_10x, "loads": loads, "whole": whole}


if __name__ == "__main__":
    main(sys.argv[1:])
