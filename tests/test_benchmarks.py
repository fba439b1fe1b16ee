"""The benchmarks' inputs stay valid as the spec grows (no timing here: timings live in
benchmarks/ and docs/benchmarks.md)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from dlpipe.spec import check_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import scaling  # noqa: E402
import sequence_models  # noqa: E402


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_benchmark_specs_are_valid(path):
    assert check_text(str(path), path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("streaming", [False, True])
def test_scaling_spec_is_valid_with_and_without_streaming(tmp_path, streaming):
    assert scaling.has_streaming()
    text = scaling.spec_text(100, tmp_path / "rows.csv", 2, streaming)
    assert check_text("scaling.yaml", text) == []


def test_scaling_csv_has_the_rows_and_columns_the_spec_names(tmp_path):
    path = tmp_path / "rows.csv"
    scaling.write_csv(path, 58)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 58
    assert list(rows[0]) == [f"x{i}" for i in range(8)] + ["colour", "label"]
    assert {row["label"] for row in rows} == {"0", "1"}
    assert {row["colour"] for row in rows} <= {"red", "green", "blue", "grey", "black"}
    scaling.write_csv(tmp_path / "again.csv", 58)
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()  # seeded


@pytest.mark.parametrize("model", sorted(sequence_models.MODELS))
def test_sequence_model_specs_are_valid(model, tmp_path):
    assert check_text(f"{model}.yaml", sequence_models.spec_text(model, tmp_path / "order.npz", 8)) == []


@pytest.mark.slow
def test_gpu_benchmark_runs_tiny_on_this_cpu(tmp_path):
    """benchmarks/gpu.py at its tiny size: a ViT trained by `dlpipe run` on backend jax with
    precision and jit_compile auto, its throughput and XLA's FLOP count (no peak on a CPU)."""
    import json
    import os
    import subprocess

    out = tmp_path / "gpu.json"
    env = {**os.environ, "DLPIPE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "run", "--size", "tiny",
                           "--models", "vit", "--json", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads(out.read_text())
    assert (row["model"], row["backend"], row["precision"], row["jit_compile"]) == ("vit", "jax", "float32", True)
    assert row["samples_per_s"] > 0 and row["forward_gflops_per_example"] > 0 and row["parameters"] > 0
    assert row["mfu"] is None and "samples/s" in done.stdout


def test_text_streaming_spec_is_valid_and_its_folder_is_seeded(tmp_path):
    import text_streaming

    text = text_streaming.spec_text(10, tmp_path / "texts", 1)
    assert check_text(str(tmp_path / "s.yaml"), text) == []
    assert text_streaming.generate(tmp_path / "a", 1) == text_streaming.generate(tmp_path / "b", 1) == 1000
    first = sorted((tmp_path / "a").rglob("*.txt"))
    assert [p.read_text() for p in first] == [p.read_text() for p in sorted((tmp_path / "b").rglob("*.txt"))]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".complete", "arts", "science", "sport", "trade"]


def test_image_streaming_spec_is_valid(tmp_path):
    import image_streaming

    (tmp_path / "digits" / "0").mkdir(parents=True)
    text = image_streaming.spec_text(10, tmp_path / "digits", 1)
    assert check_text(str(tmp_path / "s.yaml"), text) == []


@pytest.mark.parametrize("argv", [[], ["--per-class", "20"], ["--dataset", "mnist"], ["--source", "mnist"],
                                  ["--source-augment", "", "--augment", "[{type: zoom, factor: 0.1}]"]],
                         ids=["animals", "animals-20", "mnist", "mnist-to-animals", "augment-both-sides"])
def test_few_shot_transfer_specs_are_valid(tmp_path, argv):
    """benchmarks/transfer_few_shot.py's source and scratch specs validate; the animals data is
    an .npz like the one it writes (a few images per class)."""
    import numpy as np

    import transfer_few_shot

    plan = transfer_few_shot.Plan(transfer_few_shot.arguments().parse_args(argv), tmp_path)
    labels = np.repeat(np.arange(10), 3)
    np.savez(tmp_path / "animals.npz", image=np.zeros((30, 28, 28, 1), np.uint8), label=labels)
    assert check_text("source.yaml", plan.source_spec()) == []
    for seed in (1, 2):
        assert check_text("scratch.yaml", plan.few_shot_spec("scratch", seed)) == []
    transfer = plan.few_shot_spec("transfer", 1, tmp_path / "no-run")
    assert check_text("transfer.yaml", transfer) == []  # the folder is read when the run builds
    assert f"from_run: {tmp_path / 'no-run'}" in transfer
