"""Throughput on a GPU with `backend: jax`: samples/s and model FLOPs utilization (MFU) of
dlpipe's transformer, ViT and CNN specs, trained by `dlpipe run` with `precision: auto` and
`jit_compile: auto`.

GPU machines here hold JAX (with CUDA) but no TensorFlow, Keras or Pydantic, and nothing can be
downloaded there. So, where pip works:

    python benchmarks/gpu.py wheels [--dir .whl]    # dlpipe's wheel + keras, pydantic, … for Python 3.12

and on the GPU machine, with that folder beside the checkout:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site python3 benchmarks/gpu.py run --size gpu [--models vit,transformer,cnn] [--json OUT]

`run` writes synthetic data (an .npz of seeded random images or token sequences whose label
is a simple function of the input, so that the model has something to learn), writes one spec
per model with `backend: jax`, `precision: auto`, `jit_compile: auto`, and runs each with
`dlpipe run` in this process, timing every training epoch. Samples/s is over epochs 2…E (epoch
1 holds XLA's compilation), validation excluded. MFU = 3 × (forward FLOPs per example, from
XLA's cost analysis of the model's compiled forward pass) × samples/s ÷ the device's peak
(dense bf16 under mixed_bfloat16, TF32 under float32; `--peak-tflops` overrides, and a CPU has
none unless given). `--size tiny` runs the same code in seconds on a CPU (how it is tested).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Wheels the GPU machines lack (their image has jax, numpy, scikit-learn, pandas, matplotlib,
# PyYAML, click, h5py, rich, absl-py, ml-dtypes, packaging): keras and its small needs, pydantic.
WHEELS = ["keras==3.15.1", "namex", "optree", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "typing-extensions"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]

# Dense peak TFLOP/s by device name (vendor sheets; SXM parts): (bf16, tf32).
PEAKS = {"H200": (989.0, 494.0), "H100": (989.0, 494.0), "A100": (312.0, 156.0), "L4": (121.0, 60.0)}

SIZES = {
    # examples, image side, sequence length, batch size, epochs, model scale
    "tiny": dict(examples=256, side=16, length=16, batch=32, epochs=2, dim=32, blocks=1, heads=2, filters=8),
    "gpu": dict(examples=65536, side=64, length=256, batch=256, epochs=3, dim=512, blocks=8, heads=8, filters=128),
}


def wheels(folder: Path) -> None:
    """dlpipe's wheel and the WHEELS for CPython 3.12 on x86-64 Linux, into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(ROOT)], check=True)
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *WHEELS],
                   check=True)
    print("\n".join(sorted(p.name for p in folder.glob("*.whl"))))


def write_data(model: str, size: dict, folder: Path) -> Path:
    """Seeded synthetic examples: images whose label is the brightest quadrant, or token
    sequences whose label says which of two tokens comes first."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = size["examples"]
    if model == "transformer":
        tokens = rng.integers(2, 1000, (n, size["length"]), dtype=np.int64)
        label = rng.integers(0, 2, n)
        a, b = rng.integers(0, size["length"] // 2, n), rng.integers(size["length"] // 2, size["length"], n)
        tokens[np.arange(n), np.where(label == 1, a, b)] = 0
        tokens[np.arange(n), np.where(label == 1, b, a)] = 1
        arrays = {"tokens": tokens, "label": label}
    else:
        side = size["side"]
        images = rng.uniform(0, 1, (n, side, side, 3)).astype(np.float32)
        label = rng.integers(0, 4, n)
        half = side // 2
        for q in range(4):
            rows, cols = divmod(q, 2)
            chosen = label == q
            images[chosen, rows * half:(rows + 1) * half, cols * half:(cols + 1) * half] += 0.5
        arrays = {"image": images, "label": label}
    path = folder / f"{model}.npz"
    np.savez(path, **arrays)
    return path


def spec_text(model: str, size: dict, data: Path) -> str:
    d = size
    encoder = (f"blocks: {d['blocks']}, heads: {d['heads']}, key_dim: {d['dim'] // d['heads']}, "
               f"model_dim: {d['dim']}, feed_forward: {4 * d['dim']}, dropout: 0.0")
    models = {
        "transformer": f"{{type: transformer, {encoder}}}",
        "vit": f"{{type: vit, patch_size: {max(2, d['side'] // 8)}, {encoder}}}",
        "cnn": (f"{{type: cnn, blocks: [{{filters: {d['filters']}}}, {{filters: {2 * d['filters']}}}], "
                f"global_pool: avg}}"),
    }
    feature = "{name: tokens, type: tokens, vocabulary_size: 1000}" if model == "transformer" else \
        "{name: image, type: image}"
    return f"""name: gpu-{model}
task: classification
backend: jax
seed: 0
data:
  source: {{type: npz, path: {data}}}
  features: [{feature}]
  target: {{name: label}}
  split: {{train: 0.98, validation: 0.01, test: 0.01}}
model: {models[model]}
training:
  epochs: {d['epochs']}
  batch_size: {d['batch']}
  optimizer: {{type: adam, learning_rate: 1.0e-4}}
  precision: auto
  jit_compile: auto
  progress: none
  checkpoints: {{monitor: loss}}
evaluation: {{metrics: [accuracy], baselines: false}}
export: {{formats: [keras]}}
"""


class EpochTimer:
    """A duck-typed Keras callback: the wall time of each epoch's training steps (from its
    begin to its validation's begin, or its end without validation)."""

    def __init__(self):
        self.epochs: list[float] = []
        self.steps: list[int] = []
        self._begun = None
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._begun, self._step = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._step = batch + 1

    def on_test_begin(self, logs=None):
        self._close()

    def on_epoch_end(self, epoch, logs=None):
        self._close()

    def _close(self):
        if self._begun is not None:
            self.epochs.append(time.perf_counter() - self._begun)
            self.steps.append(self._step)
            self._begun = None

    def __getattr__(self, name):
        if name.startswith(("on_", "set_")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def forward_flops(model_file: Path, data: Path, batch: int) -> float:
    """FLOPs of one example's forward pass, from XLA's cost analysis of the compiled model."""
    import jax
    import numpy as np

    from dlpipe.modelfile import load_keras_model

    model = load_keras_model(model_file)
    arrays = np.load(data)
    name = "tokens" if "tokens" in arrays.files else "image"
    x = arrays[name][:batch]
    if name == "image":
        x = x.astype(np.float32)
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]

    def forward(trainable, fixed, x):
        return model.stateless_call(trainable, fixed, x, training=False)[0]

    cost = jax.jit(forward).lower(trainable, fixed, {name: x}).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0)) / len(x)


def peak_flops(precision: str, override: float | None) -> tuple[float | None, str]:
    import jax

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform)
    if override:
        return override * 1e12, kind
    for name, (bf16, tf32) in PEAKS.items():
        if name in kind:
            return (bf16 if "bfloat16" in precision or "float16" in precision else tf32) * 1e12, kind
    return None, kind


def run(size_name: str, models: list[str], peak_override: float | None, json_out: str | None) -> list[dict]:
    os.environ["KERAS_BACKEND"] = "jax"
    from dlpipe import runner

    size = SIZES[size_name]
    folder = Path(tempfile.mkdtemp(prefix="dlpipe-gpu-"))
    results = []
    for model in models:
        data = write_data(model, size, folder)
        spec = folder / f"{model}.yaml"
        spec.write_text(spec_text(model, size, data))
        timer = EpochTimer()
        begun = time.perf_counter()
        out = runner.run_spec(spec, out=folder / f"run-{model}", callbacks=[timer])
        wall = time.perf_counter() - begun
        record = json.loads((out / "run.json").read_text())
        train = round(size["examples"] * 0.98)
        later = list(zip(timer.epochs, timer.steps))[1:] or list(zip(timer.epochs, timer.steps))
        samples = sum(min(steps * size["batch"], train) for _, steps in later)
        throughput = samples / sum(t for t, _ in later)
        flops = forward_flops(out / "model.keras", data, min(size["batch"], 64))
        precision = record["training"]["precision"]
        peak, device = peak_flops(precision, peak_override)
        achieved = 3 * flops * throughput
        results.append({
            "model": model, "size": size_name, "device": device, "backend": record["backend"],
            "precision": precision, "jit_compile": record["training"]["jit_compile"],
            "parameters": record["parameters"], "batch_size": size["batch"], "epochs": size["epochs"],
            "first_epoch_s": timer.epochs[0] if timer.epochs else None, "samples_per_s": throughput,
            "forward_gflops_per_example": flops / 1e9, "achieved_tflops": achieved / 1e12,
            "mfu": achieved / peak if peak else None, "peak_tflops": peak / 1e12 if peak else None,
            "run_wall_s": wall, "test_accuracy": json.loads((out / "metrics.json").read_text())["test"]["accuracy"],
        })
        row = results[-1]
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a (no peak known)"
        print(f"{model}: {device}, {precision}, jit {row['jit_compile']}, {row['parameters']:,} parameters, "
              f"{throughput:,.0f} samples/s, {row['achieved_tflops']:.2f} TFLOP/s, MFU {mfu}, "
              f"first epoch {row['first_epoch_s']:.1f} s, run {wall:.1f} s", flush=True)
    if json_out:
        Path(json_out).write_text(json.dumps(results, indent=2))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("wheels", help="build dlpipe's wheel and fetch the others (where pip works)")
    make.add_argument("--dir", default=str(ROOT / ".whl"))
    go = commands.add_parser("run", help="train each model on backend jax and report samples/s and MFU")
    go.add_argument("--size", choices=sorted(SIZES), default="gpu")
    go.add_argument("--models", default="vit,transformer,cnn")
    go.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, if not in the table")
    go.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.command == "wheels":
        wheels(Path(args.dir))
    else:
        run(args.size, args.models.split(","), args.peak_tflops, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
