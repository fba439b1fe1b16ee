"""Knowledge distillation: a small student trained on few labelled digits, with and without a
teacher that learned from more of them, on the same data and seeds.

    python benchmarks/distillation.py [--seeds 1,2,3] [--examples 50] [--out DIR]

Why this task: distillation pays where the labels alone say little, so the student sees
`--examples` training digits (scikit-learn's 8×8 scans as 64 pixel columns, stratified:
5 per class by default) while the teacher, a wide MLP, learned from 1,097 others' labels
too (no test or validation digit is in either training file). The teacher's class
probabilities on the student's examples carry what the 50 labels do not: how much each
digit looks like every other. Both students are the same MLP (≤ 1/10 of the teacher's
parameters), the same files, epochs and seeds; the only difference is the `distillation`
section. The teacher is trained once (seed 42); each student side is the mean of the seeds.
Prints one markdown table (docs/benchmarks.md, "Distillation").
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLIT_SEED = 0
TEST, VALIDATION = 500, 200

COMMON = """\
version: 1
task: classification
data:
  source: {{type: csv, path: {train}}}
  target: {{name: digit}}
  split: {{files: {{validation: {validation}, test: {test}}}}}
prepare:
  normalization: {{numerical: {{type: minmax}}}}
evaluation:
  metrics: [accuracy, f1_macro, log_loss]
  baselines: false
export:
  formats: [keras]
"""

TEACHER = COMMON + """\
name: digits-teacher
seed: 42
model: {{type: mlp, units: [256, 256], activation: relu, dropout: 0.2}}
training:
  epochs: 60
  batch_size: 64
  optimizer: {{type: adam, learning_rate: 1.0e-3}}
  early_stopping: {{monitor: val_loss, patience: 8, restore_best_weights: true}}
"""

STUDENT = COMMON + """\
name: digits-student
seed: {seed}
model: {{type: mlp, units: [32], activation: relu}}
training:
  epochs: {epochs}
  batch_size: 16
  optimizer: {{type: adam, learning_rate: 3.0e-3}}
"""

DISTILLATION = """\
distillation:
  teacher: {teacher}
  temperature: {temperature}
  soft_loss_weight: {weight}
"""


def write_files(folder: Path, examples: int) -> dict[str, Path]:
    """teacher.csv (every digit not held out), student.csv (`examples` of those, stratified),
    validation.csv and test.csv: 64 pixel columns p0..p63 and the digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits.target))
    test, validation, train = order[:TEST], order[TEST:TEST + VALIDATION], order[TEST + VALIDATION:]
    per_class = examples // 10
    student = np.sort(np.concatenate([train[digits.target[train] == c][:per_class] for c in range(10)]))
    files = {}
    for name, rows in (("teacher", train), ("student", student), ("validation", validation), ("test", test)):
        files[name] = folder / f"{name}.csv"
        with open(files[name], "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*(f"p{i}" for i in range(64)), "digit"])
            for row in rows:
                writer.writerow([*(int(v) for v in digits.data[row]), int(digits.target[row])])
    return files


def run(spec_text: str, folder: Path, name: str) -> tuple[dict, dict]:
    from dlpipe.runner import run_spec

    spec = folder / f"{name}.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    out = run_spec(spec, out=folder / name, command=["benchmarks/distillation.py", name])
    return (json.loads((out / "metrics.json").read_text())["test"], json.loads((out / "run.json").read_text()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--examples", type=int, default=50, help="labelled training digits the student sees")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--weight", type=float, default=0.7, help="soft_loss_weight")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = args.out or Path(tempfile.mkdtemp(prefix="dlpipe-distillation-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = write_files(folder, args.examples)
    paths = {"validation": files["validation"], "test": files["test"]}

    began = time.perf_counter()
    teacher, teacher_run = run(TEACHER.format(train=files["teacher"], **paths), folder, "teacher")
    seeds = [int(s) for s in args.seeds.split(",")]
    sides: dict[str, list[dict]] = {"without": [], "with": []}
    parameters = {}
    for seed in seeds:
        student = STUDENT.format(train=files["student"], seed=seed, epochs=args.epochs, **paths)
        plain, record = run(student, folder, f"student-{seed}")
        distilled, _ = run(student + DISTILLATION.format(teacher=folder / "teacher", temperature=args.temperature,
                                                         weight=args.weight), folder, f"distilled-{seed}")
        sides["without"].append(plain)
        sides["with"].append(distilled)
        parameters["student"] = record["parameters"]
        print(f"seed {seed}: accuracy without {plain['accuracy']:.4f}, with {distilled['accuracy']:.4f}",
              file=sys.stderr, flush=True)
    parameters["teacher"] = teacher_run["parameters"]

    def mean(side: str, metric: str) -> float:
        return statistics.mean(values[metric] for values in sides[side])

    print(f"\nDigits, {args.examples} labelled training examples for the student (teacher: "
          f"{files['teacher'].read_text().count(chr(10)) - 1}); test {TEST} digits; seeds {args.seeds}; "
          f"T = {args.temperature}, soft_loss_weight = {args.weight}; {time.perf_counter() - began:.0f} s in all\n")
    print("| model | parameters | test accuracy (mean) | per seed | test f1_macro | test log_loss |")
    print("|---|---|---|---|---|---|")
    print(f"| teacher (MLP 256-256, 1,097 examples) | {parameters['teacher']:,} | {teacher['accuracy']:.4f} | – | "
          f"{teacher['f1_macro']:.4f} | {teacher['log_loss']:.4f} |")
    for side, label in (("without", "student, labels only"), ("with", "student, distilled")):
        per_seed = ", ".join(f"{values['accuracy']:.4f}" for values in sides[side])
        print(f"| {label} (MLP 32) | {parameters['student']:,} | {mean(side, 'accuracy'):.4f} | {per_seed} | "
              f"{mean(side, 'f1_macro'):.4f} | {mean(side, 'log_loss'):.4f} |")
    gain = mean("with", "accuracy") - mean("without", "accuracy")
    print(f"\nDistillation {'beats' if gain > 0 else 'does NOT beat'} the labels alone by {gain * 100:+.2f} points "
          f"of mean test accuracy; student/teacher parameters = {parameters['student'] / parameters['teacher']:.4f}")
    return {"teacher": teacher, "sides": sides, "parameters": parameters, "gain": gain}


if __name__ == "__main__":
    main()
