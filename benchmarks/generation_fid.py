"""The diffusion template against the GAN template, each FID with the same data, the same
feature extractor and the same sample count.

    python benchmarks/generation_fid.py [--out DIR] [--parallel]

Both templates draw scikit-learn's 1,797 8×8 digits with the same `data` and `evaluation`
sections (checked here before anything runs): the extractor is a classifier trained inside
each run with the same seed on the same split (hence the same network), and each FID reads
as many generated images as the test split holds (359) against those test images. Each runs
as it is, in its own process.

Prints one row per template: FID first → last evaluation and their ratio, fid_reference
(real against real at the same counts: the floor), Inception Score, wall and CPU seconds of
the process; whether the diffusion model's final FID is at most the GAN's; the load average.
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
TEMPLATES = {"gan": ROOT / "specs" / "image-generation-gan.yaml",
             "diffusion": ROOT / "specs" / "image-generation-diffusion.yaml"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def check_comparable(specs: dict[str, dict]) -> None:
    """FIDs compare only with the same data, extractor and sample count: refuse otherwise."""
    gan, diffusion = specs["gan"], specs["diffusion"]
    for section in ("data", "evaluation", "seed"):
        if gan.get(section) != diffusion.get(section):
            raise SystemExit(f"the templates' {section!r} sections differ: their FIDs would not compare")


def start(spec: Path, out: Path) -> tuple[subprocess.Popen, Path, float]:
    out.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(out.with_suffix(".log"), "w", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "dlpipe.cli", "run", str(spec), "--out", str(out),
                                "--set", "training.progress=none"], stdout=log, stderr=subprocess.STDOUT,
                               env=environment)
    return process, out, time.perf_counter()


def finish(started: tuple[subprocess.Popen, Path, float]) -> dict:
    process, out, began = started
    _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU time (user + system)
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{out}: dlpipe run failed; see {out.with_suffix('.log')}")
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    run = json.loads((out / "run.json").read_text())
    training = run.get("stages", {}).get("train", {}).get("seconds")
    return {**metrics, "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "train_seconds": training}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build") / "generation-fid")
    parser.add_argument("--parallel", action="store_true",
                        help="start both runs at once (wall times then include each other's load)")
    args = parser.parse_args(argv)
    check_comparable({name: _load(path) for name, path in TEMPLATES.items()})
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    running, results = {}, {}
    for name, path in TEMPLATES.items():
        running[name] = start(path, args.out / name)
        if not args.parallel:
            results[name] = finish(running[name])
    for name, started in running.items():
        if name not in results:
            results[name] = finish(started)
    print("| template | FID first → last | ratio | fid_reference | samples (generated / real) | IS (real) "
          "| training | wall | CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in results.items():
        print(f"| {name} | {m['fid_first']:.2f} → {m['fid']:.2f} | {m['fid_first'] / m['fid']:.1f}× | "
              f"{m['fid_reference']:.2f} | {m['fid_samples']} / {m['fid_real_samples']} | "
              f"{m.get('inception_score', float('nan')):.2f} ({m.get('inception_score_real', float('nan')):.2f}) | "
              f"{m['train_seconds']:.0f} s | {m['seconds']:.0f} s | {m['cpu_seconds']:.0f} s |")
    fids = {name: m["fid"] for name, m in results.items()}
    verdict = "at most" if fids["diffusion"] <= fids["gan"] else "ABOVE"
    print(f"diffusion FID {fids['diffusion']:.2f} is {verdict} the GAN's {fids['gan']:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return results


if __name__ == "__main__":
    main()
