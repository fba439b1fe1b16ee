"""SHAP against permutation importance on the tabular template (issue #26's acceptance line).

    python benchmarks/explain_agreement.py [--spec SPEC | --run RUN_DIR] [--repeats 50]
                                           [--examples 100] [--background 50] [--shap-seeds 2]

Trains specs/tabular-classification.yaml (breast cancer, 30 measurements; `--spec` another
tabular spec, e.g. specs/tabular-regression.yaml; or reuses a trained run with `--run`), explains it with the explain stage itself (methods permutation and
shap, the given settings), and prints the Spearman rank correlation of the two methods'
global importances:

    top 10    the 10 features permutation importance ranks highest (the reference the
              acceptance line names), each method's importance of those 10
    SHAP's 10 the same on the 10 SHAP ranks highest
    union     both methods' top 10 together
    all       every feature

Beside it, how far each method agrees with itself, the ceiling of any agreement between
them: permutation importance on two disjoint halves of the validation split (same repeats),
and SHAP with another seed (another background sample and other coalitions) on the same
rows. Exits 1 when the top-10 correlation is under 0.8 (the acceptance target).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "specs" / "tabular-classification.yaml"
TARGET = 0.8


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def agreement(reference: dict[str, float], other: dict[str, float], count: int = 10) -> dict[str, float]:
    """Spearman of two importance tables (feature → importance) on the reference's top
    `count`, the other's top `count`, their union, and all features."""
    names = sorted(reference)
    a, b = np.array([reference[n] for n in names]), np.array([other[n] for n in names])
    top_a, top_b = np.argsort(-a, kind="stable")[:count], np.argsort(-b, kind="stable")[:count]
    union = np.union1d(top_a, top_b)
    return {"top": spearman(a[top_a], b[top_a]), "other_top": spearman(a[top_b], b[top_b]),
            "union": spearman(a[union], b[union]), "union_size": int(len(union)),
            "overlap": int(len(np.intersect1d(top_a, top_b))), "all": spearman(a, b)}


def importance(document: dict) -> dict[str, float]:
    return {f["feature"]: f["importance"] for f in document["global"]["features"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=TEMPLATE, help="the spec to train (default: the tabular template)")
    parser.add_argument("--run", type=Path, help="a trained run to explain instead (nothing is trained)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--background", type=int, default=50)
    parser.add_argument("--shap-seeds", type=int, default=2, help="1: skip SHAP's agreement with itself")
    args = parser.parse_args(argv)

    from dlpipe.runner import run_spec

    scratch = tempfile.TemporaryDirectory(prefix="dlpipe-explain-agreement-")
    run = args.run or run_spec(args.spec, out=Path(scratch.name) / "run", command=["benchmark"])

    from dlpipe.data.prepare import prepare
    from dlpipe.explain.methods import permutation_importance
    from dlpipe.explain.stage import Examples, Subject, explain_model
    from dlpipe.explanation import settings_of
    from dlpipe.finished import open_run

    settings = (f"evaluation.explain={{methods: [permutation, shap], examples: {args.examples}, "
                f"repeats: {args.repeats}, background: {args.background}, rows: 1}}")
    finished = open_run(run, "explain", [settings])
    data = prepare(finished.spec, finished.base_dir, finished.located)
    model = finished.load_model()
    features = [f.describe() for f in data.features]
    test, validation = data.splits["test"], data.splits["validation"]
    examples = Examples(test.x, test.y, [f"test row {i}" for i in range(len(test))], "the test split")

    def explain(seed: int, folder: Path) -> dict:
        subject = Subject(model, features, data.class_names, seed)
        explain_model(subject, settings_of(finished.spec), examples, validation, data.splits["train"], folder,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
        return {m: json.loads((folder / f"{m}.json").read_text()) for m in ("permutation", "shap")}

    seed = finished.spec.seed
    first = explain(seed, Path(scratch.name) / "explanations")
    permutation, shap = importance(first["permutation"]), importance(first["shap"])
    rows = {"SHAP vs permutation importance": agreement(permutation, shap)}

    # Permutation importance on two disjoint halves of the validation split.
    subject = Subject(model, features, data.class_names, seed)
    kind = "classes" if subject.classes else "values"
    half = len(validation) // 2
    halves = []
    for part in (slice(0, half), slice(half, None)):
        x = {k: v[part] for k, v in validation.x.items()}
        found = permutation_importance(subject.predict, x, validation.y[part],
                                       [(f["name"], f["input"]) for f in features], kind, args.repeats, seed)
        halves.append(dict(zip([f["name"] for f in features], found["importance"])))
    rows[f"permutation: validation rows 0–{half - 1} vs {half}–{len(validation) - 1}"] = agreement(*halves)
    if args.shap_seeds > 1:
        again = explain(seed + 1, Path(scratch.name) / "again")
        rows["SHAP: seed vs seed + 1"] = agreement(shap, importance(again["shap"]))

    print(f"\nexplain agreement: {run} (validation {len(validation)} rows, test {len(test)}; "
          f"{args.repeats} repeats, {args.examples} SHAP rows, background {args.background}; "
          f"permutation: {first['permutation']['loss']})")
    print("| Spearman | top 10 (first's) | top 10 (second's) | union | all features |")
    print("|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['top']:.2f} | {r['other_top']:.2f} | {r['union']:.2f} ({r['union_size']}) | "
              f"{r['all']:.2f} |")
    halves = first["permutation"]["halves"]["spearman"]
    print(f"permutation.json's own check, its top 10 on the even vs the odd validation rows (same shuffles): "
          f"{'n/a' if halves is None else f'{halves:.2f}'}")
    ranked = sorted(permutation, key=lambda n: -permutation[n])[:10]
    print("\npermutation's top 10 (importance, spread; SHAP mean |value| and its rank):")
    by_shap = sorted(shap, key=lambda n: -shap[n])
    spread = {f["feature"]: f["spread"] for f in first["permutation"]["global"]["features"]}
    for name in ranked:
        print(f"  {name:24s} {permutation[name]:.4f} ± {spread[name]:.4f}   {shap[name]:.4f}  #{by_shap.index(name) + 1}")
    met = rows["SHAP vs permutation importance"]["top"] >= TARGET
    print(f"\ntarget: Spearman ≥ {TARGET} on the top 10: {'met' if met else 'NOT met'}")
    return {"rows": rows, "met": met}


if __name__ == "__main__":
    sys.exit(0 if main()["met"] else 1)
