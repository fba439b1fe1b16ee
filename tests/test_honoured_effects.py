"""Every key a task honours changes its run (issue #17), so that "honoured" cannot drift.

A task declares the spec keys its pipeline reads (`honours`, dlpipe/tasks/); `dlpipe validate`
refuses any other key set to a non-default value (tests/test_tasks.py). This module checks
the other direction. Each task has a tiny base spec: its template with a few dozen examples,
2 epochs and a tiny model (BASES). Every key the task honours, walked down to the leaves of
the sections the base uses (`honoured_keys`), is set to a sample value (SAMPLES), the run is
made, and the observable the sample names must differ from the base run's. A key without a
sample, and without a reason in UNOBSERVABLE, fails `test_every_honoured_key_has_a_sample`.

Observables, cheapest first (OBSERVABLES: each is read at the first level that has it):

    deep   the model the pipeline's `deep_build` hook builds (what `dlpipe validate --deep`
           shows): its config, parameter count and (seeded) initial weights
    start  the run, stopped as training begins: the compiled model, its optimizers, fit's
           parameters, run.json, data.json, labels.json, what was printed so far
    step   the run, stopped after its first training step: that step's logs (the loss)
    train  the run, stopped as training ends: each epoch's logs, the trained weights,
           checkpoints/, logs/, what was printed
    full   the whole run: metrics.json, export/, the model card, plots/, evaluation/

TensorFlow is imported once; each base run is made once and shared. A difference means
something only if the base run, made again, observes the same: `test_base_run_repeats`.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import re
import shutil
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import pydantic
import pytest

from dlpipe import tasks
from dlpipe.errors import DlpipeError
from dlpipe.spec import load_document

ROOT = Path(__file__).resolve().parents[1]
# In memory where there is a tmpfs: a run directory fsyncs each file it writes.
_TMP = Path(tempfile.mkdtemp(prefix="dlpipe-honoured-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
DATA = _TMP / "data"
"""The tiny data sets (written on first use by `_write_data`)."""

# Tiny bases --------------------------------------------------------------------------------

_TABLE_FEATURES = "[{name: f1, type: numerical}, {name: f2, type: numerical}, {name: f3, type: numerical}]"
BASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "classification": ("tabular-classification", (
        f"data.source={{type: csv, path: {DATA}/table.csv}}", f"data.features={_TABLE_FEATURES}",
        "data.target={name: label}", "model.units=[4]", "training.epochs=2", "training.batch_size=16",
        "export.formats=[keras]", "export.latency_calls=5", "tuning=null")),
    "regression": ("tabular-regression", (
        f"data.source={{type: csv, path: {DATA}/table.csv}}", f"data.features={_TABLE_FEATURES}",
        "data.target={name: value}", "model.units=[4]", "training.epochs=2", "training.batch_size=16",
        "export.formats=[keras]", "export.latency_calls=5")),
    "forecasting": ("time-series-forecasting", (
        f"data.source={{type: csv, path: {DATA}/series.csv}}",
        "data.windows={lookback: 6, horizon: 2, stride: 1, order_by: week}", "model.units=[4]",
        "model.head.units=[4]", "training.epochs=2", "training.batch_size=16", "export.formats=[keras]", "export.latency_calls=5")),
    "detection": ("object-detection", (
        "data.source.images=40", "data.source.image_size=32", "data.source.min_size=6", "data.source.max_size=12",
        "data.source.max_objects=2", "model.filters=[4, 8]", "model.stride=2", "model.head_filters=4",
        "model.decode.max_detections=5", "training.epochs=2", "training.batch_size=16", "export.formats=[keras]", "export.latency_calls=5")),
    "embedding": ("autoencoder-embeddings", (
        f"data.source={{type: npz, path: {DATA}/digits.npz}}", "model.units=[8]", "model.latent=4",
        "training.epochs=2", "training.batch_size=16", "evaluation.knn_neighbors=3", "export.formats=[keras]", "export.latency_calls=5")),
    "generation": ("image-generation-gan", (
        f"data.source={{type: npz, path: {DATA}/digits.npz}}", "model.latent_size=4",
        "model.generator.filters=[4]", "model.discriminator.filters=[4, 4]", "training.epochs=2",
        "training.batch_size=16", "evaluation.generation.every=1", "evaluation.generation.grid=4",
        "evaluation.generation.feature_extractor.epochs=1", "evaluation.generation.feature_extractor.units=8",
        "export.formats=[keras]", "export.latency_calls=5")),
    "multi_output": ("multi-output", (
        f"data.source={{type: csv, path: {DATA}/table.csv}}", f"data.features={_TABLE_FEATURES}",
        "data.targets=[{name: label, column: label, kind: classification}, {name: value, column: value, "
        "kind: regression}]", "model.units=[4]", "model.head.units=[2]", "training.epochs=2",
        "training.batch_size=16", "export.formats=[keras]", "export.latency_calls=5")),
}
"""task → (template in specs/, the overrides that make it tiny)."""


def _write_data() -> None:
    """A table of 60 rows (breast-cancer measurements, a class, a number, weights, times,
    labels of several kinds), 20-row validation and test files of the same columns, a
    weekly series of 90 rows, and 80 digit images with their labels."""
    if (DATA / "done").exists():
        return
    import numpy as np
    from sklearn.datasets import load_breast_cancer, load_digits

    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cancer = load_breast_cancer()
    rows = rng.permutation(len(cancer.target))[:100]
    x, y = cancer.data[rows][:, :4], cancer.target[rows]

    def table(part: slice, name: str, delimiter: str = ",") -> None:
        n = len(y[part])
        columns = {"f1": x[part, 0], "f2": x[part, 1], "f3": x[part, 2], "f4": x[part, 3], "label": y[part],
                   "label2": rng.integers(0, 2, n), "value": x[part, 0] / 10 + rng.normal(0, 0.3, n),
                   "w": rng.uniform(0.2, 3.0, n).round(3), "day": rng.permutation(n),
                   "grade": rng.choice(["low", "mid", "high"], n), "tags": rng.choice(["a", "b", "a|b"], n),
                   "gappy": np.where(np.arange(n) % 13 == 5, "", y[part].astype(str)),
                   "note": np.array([" ".join(rng.choice(["good", "bad", "fine", "odd", "new"], 3)) for _ in range(n)])}
        lines = [delimiter.join(columns)]
        for i in range(n):
            lines.append(delimiter.join(f"{v[i]:.4f}" if isinstance(v[i], float) else str(v[i])
                                        for v in columns.values()))
        (DATA / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        if name == "table.csv":  # the same rows as JSON lines, in reverse order
            (DATA / "table.jsonl").write_text("".join(
                json.dumps({k: v[i].item() for k, v in columns.items()}) + "\n" for i in reversed(range(n))))

    table(slice(0, 60), "table.csv")
    table(slice(60, 80), "validation.csv")
    table(slice(80, 100), "test.csv")
    table(slice(20, 80), "other.csv")
    for name in ("series.csv", "series_other.csv"):
        t = np.arange(90)
        co2 = 350 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 0.2, 90)
        shuffled = rng.permutation(90)  # rows out of time order: order_by sorts them
        weeks = np.datetime64("2000-01-02") + 7 * t
        lines = ["week,co2,temp,rain"] + [f"{weeks[i]},{co2[i]:.3f},{rng.normal(10, 1):.3f},{rng.uniform(0, 5):.3f}"
                                          for i in shuffled]
        (DATA / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        if name == "series.csv":  # the same rows as JSON lines
            header, *rows = lines
            (DATA / "series.jsonl").write_text("".join(json.dumps(dict(zip(header.split(","), (
                row.split(",")[0], *map(float, row.split(",")[1:]))))) + "\n" for row in rows), encoding="utf-8")
    digits = load_digits()
    for name, picked in (("digits.npz", rng.permutation(len(digits.target))[:80]),
                         ("digits_other.npz", rng.permutation(len(digits.target))[:80])):
        labels, images = digits.target[picked].astype(np.int64), digits.images[picked].astype(np.float32)[..., None]
        columns = dict(image=images, flipped=images[:, :, ::-1], label=labels, parity=labels % 2,
                       ink=images.sum(axis=(1, 2, 3)),
                       w=rng.uniform(0.2, 3.0, 80).astype(np.float32), day=rng.permutation(80))
        np.savez(DATA / name, **columns)
        if name == "digits.npz":  # other files: one .npy per column (reversed), validation and test rows
            for column in ("image", "label"):
                np.save(DATA / f"digits_{column}.npy", columns[column][::-1])
            for part, rows in (("validation", slice(0, 20)), ("test", slice(20, 40))):
                np.savez(DATA / f"digits_{part}.npz", **{k: v[rows] for k, v in columns.items()})
    _write_coco(rng)
    import keras  # an earlier run's classifier, as a generation feature extractor reads one

    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(8, activation="relu", name="features"),
                                   keras.layers.Dense(10, activation="softmax")])
    classifier.save(DATA / "classifier.keras")
    # Distillation teachers on the table's f1..f3: a label's probability (sigmoid), and values.
    for name, activation in (("teacher_classes.keras", "sigmoid"), ("teacher_values.keras", None)):
        inputs = [keras.Input((1,), name=f"f{i}") for i in (1, 2, 3)]
        output = keras.layers.Dense(1, activation=activation)(keras.layers.Concatenate()(inputs))
        keras.Model(inputs, output).save(DATA / name)
    (DATA / "done").write_text("")


def _write_coco(rng) -> None:
    """24 grey 32×32 images, each with one bright square or dark bar, as a COCO-style set."""
    import numpy as np
    from PIL import Image

    folder = DATA / "coco"
    folder.mkdir()
    images, annotations = [], []
    for i in range(24):
        pixels = rng.integers(90, 130, (32, 32, 3)).astype(np.uint8)
        x, y, size, category = int(rng.integers(2, 18)), int(rng.integers(2, 18)), int(rng.integers(8, 12)), i % 2
        pixels[y:y + size, x:x + size] = 250 if category == 0 else 10
        Image.fromarray(pixels).save(folder / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 32, "height": 32})
        annotations.append({"id": i, "image_id": i, "category_id": category + 1, "bbox": [x, y, size, size]})
    (DATA / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 1, "name": "square"}, {"id": 2, "name": "hole"}]}), encoding="utf-8")


def base_document(task: str, context: tuple[str, ...] = (), sample: tuple[str, ...] = ()):
    template, overrides = BASES[task]
    return load_document(ROOT / "specs" / f"{template}.yaml", [*overrides, *context, *sample])


# Honoured keys -------------------------------------------------------------------------------


def honoured_keys(task: tasks.Task, spec) -> list[str]:
    """The keys `task` honours, at the leaves of what its base spec holds: a section the spec
    holds (a model) is walked into, the fields of the variant it uses; a mapping of sections
    (prepare.normalization) is one key and each of its sections is walked into too; anything
    else (a value, a list, a section left out) is one key. A refused key is left out."""
    found: list[str] = []

    def walk(model: pydantic.BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            key = f"{prefix}{name}"
            below = any(h.startswith(key + ".") for h in task.honours)
            if task.refused(key) or not (task.honoured(key) or below):
                continue
            value = getattr(model, name)
            if isinstance(value, pydantic.BaseModel):
                walk(value, key + ".")
            elif isinstance(value, dict) and value and all(isinstance(v, pydantic.BaseModel) for v in value.values()):
                found.append(key)
                for item, section in value.items():
                    walk(section, f"{key}.{item}.")
            else:
                found.append(key)

    walk(spec, "")
    return found


def _all_keys() -> list[tuple[str, str]]:
    keys = []
    for name in BASES:
        spec, _ = base_document(name)
        keys += [(name, key) for key in honoured_keys(tasks.get(name), spec)]
    return keys


# Samples ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A value for one key and where its effect shows."""

    sets: str | tuple[str, ...]
    """The value (YAML), or whole `KEY=VALUE` overrides where the key cannot change alone (a
    split's fractions must add up to 1; a union's `type` picks other fields)."""
    observe: str
    """The observable (OBSERVABLES) that must differ from the base run's."""
    context: tuple[str, ...] = ()
    """Overrides applied to the base run and the sampled run alike (a key that acts only
    beside another: a head's activation needs head units)."""
    level: str | None = None
    """Where to observe, if not at the first level that has the observable: `outcome`
    (whether the run fails, and how), `stdout` and `stderr` have every level."""

    def overrides(self, key: str) -> tuple[str, ...]:
        return (f"{key}={self.sets}",) if isinstance(self.sets, str) else self.sets


_TFLITE = ("export.formats=[keras, tflite]", "export.tflite.quantization=[int8]",
           "export.tolerance={tflite/int8: {max_abs_diff: 100.0}}")
SAMPLES: dict[str, Sample] = {
    # The spec itself
    "name": Sample("tiny-renamed", "model"),  # the Keras model's name
    "description": Sample("'a sampled description'", "card"),
    "seed": Sample("7", "weights"),
    # data
    "data.source.type": Sample((f"data.source={{type: jsonl, path: {DATA}/table.jsonl}}",), "data.json"),
    "data.source.path": Sample(f"{DATA}/other.csv", "fingerprint"),
    "data.source.delimiter": Sample("';'", "outcome", level="start"),
    "data.source.name": Sample("wine", "fingerprint"),
    "data.features": Sample("[{name: f1, type: numerical}, {name: f2, type: numerical}]", "model"),
    "data.target.name": Sample("label2", "fingerprint"),
    # Text labels: one class per distinct string; as multi-label ones they need a delimiter.
    "data.target.multi_label": Sample("true", "outcome", context=("data.target.name=tags", "data.split.stratify=false"),
                                      level="start"),
    "data.target.class_names": Sample("[malignant, benign]", "labels.json"),
    "data.target.label_map": Sample("{'0': bad, '1': good}", "labels.json"),
    "data.target.order": Sample("['1', '0']", "labels.json"),
    "data.target.threshold": Sample("0.5", "labels.json"),
    "data.target.delimiter": Sample("'|'", "outcome", context=(
        "data.target.name=tags", "data.target.multi_label=true", "data.split.stratify=false"), level="start"),
    "data.target.on_unknown": Sample("drop", "outcome", context=("data.target.name=gappy",), level="start"),
    # The normalization's statistics come from the training split.
    "data.split.stratify": Sample("false", "model"),
    "data.split.files": Sample(f"{{validation: {DATA}/validation.csv, test: {DATA}/test.csv}}", "data.json"),
    "data.split.time_column": Sample("day", "model"),
    "data.split.folds": Sample("3", "model"),
    "data.split.fold": Sample("1", "model", context=("data.split.folds=3",)),
    "data.shuffle_buffer": Sample("2", "first_step"),
    "data.streaming": Sample("{chunk_rows: 20}", "data.json"),
    "data.windows.lookback": Sample("4", "model"),
    "data.windows.horizon": Sample("3", "model"),
    "data.windows.stride": Sample("2", "data.json"),
    "data.windows.order_by": Sample("null", "fingerprint"),
    # prepare
    "prepare.imputation": Sample("{numerical: {type: median}}", "model"),
    "prepare.normalization": Sample("{numerical: {type: minmax}}", "model"),
    "prepare.normalization.numerical.type": Sample("minmax", "model"),
    "prepare.augmentation": Sample("[{type: gaussian_noise, stddev: 0.5}]", "first_step"),
    # model (mlp and the head of any model)
    "model.units": Sample("[3]", "parameters"),
    "model.activation": Sample("tanh", "model"),
    "model.dropout": Sample("0.3", "model"),
    "model.batch_norm": Sample("true", "model"),
    "model.l1": Sample("0.01", "model"),
    "model.l2": Sample("0.01", "model"),
    "model.kernel_initializer": Sample("he_normal", "model"),
    "model.head.units": Sample("[3]", "parameters"),
    "model.head.activation": Sample("tanh", "model", context=("model.head.units=[3]",)),
    "model.head.dropout": Sample("0.3", "model", context=("model.head.units=[3]",)),
    # training
    "training.epochs": Sample("3", "fit"),
    "training.batch_size": Sample("8", "fit"),
    "training.optimizer.type": Sample(("training.optimizer={type: sgd, learning_rate: 0.01}",), "optimizer"),
    "training.optimizer.learning_rate": Sample("0.05", "optimizer"),
    "training.optimizer.weight_decay": Sample("0.01", "optimizer"),
    "training.optimizer.clipnorm": Sample("1.0", "optimizer"),
    "training.optimizer.clipvalue": Sample("0.5", "optimizer"),
    "training.optimizer.global_clipnorm": Sample("1.0", "optimizer"),
    "training.optimizer.beta_1": Sample("0.8", "optimizer"),
    "training.optimizer.beta_2": Sample("0.99", "optimizer"),
    "training.optimizer.epsilon": Sample("1.0e-5", "optimizer"),
    "training.optimizer.amsgrad": Sample("true", "optimizer"),
    "training.schedule": Sample("{type: step, every: 1, factor: 0.5}", "optimizer"),
    "training.loss": Sample("binary_focal_crossentropy", "compiled"),
    "training.class_weight": Sample("balanced", "first_step"),
    "training.sample_weight": Sample("w", "first_step"),
    # Stopped after epoch 2, which did not improve by min_delta: epoch 1's weights are restored.
    "compression": Sample("{pruning: {sparsity: 0.5, schedule: {end_epoch: 1}}}", "trained"),
    "training.early_stopping": Sample("{monitor: loss, patience: 1, min_delta: 100}", "trained"),
    "training.early_stopping.monitor": Sample("loss", "checkpoints"),
    # Keras restores the best weights when training ends, stopped early or not: what patience
    # and min_delta decide is when it stops (3 epochs; no epoch improves by 100).
    "training.early_stopping.patience": Sample("1", "history", context=(
        "training.early_stopping.min_delta=100", "training.epochs=3")),
    "training.early_stopping.min_delta": Sample("100", "history", context=(
        "training.early_stopping.patience=1", "training.epochs=3")),
    "training.early_stopping.mode": Sample("max", "trained"),
    "training.early_stopping.restore_best_weights": Sample(
        "false", "trained", context=("training.early_stopping.patience=1", "training.early_stopping.mode=max")),
    "training.checkpoints.monitor": Sample("loss", "checkpoints"),
    "training.checkpoints.mode": Sample("max", "checkpoints"),
    "training.progress": Sample("none", "stdout"),
    "training.tensorboard": Sample("false", "logs"),
    "training.precision": Sample("mixed_bfloat16", "run.json"),
    "training.jit_compile": Sample("true", "run.json"),
    "training.deterministic": Sample("false", "run.json"),
    "training.strategy": Sample("mirrored", "run.json"),
    # evaluation
    "evaluation.metrics": Sample("[accuracy]", "metrics"),
    "evaluation.splits": Sample("[test]", "metrics"),
    "evaluation.baselines": Sample("false", "metrics"),
    "evaluation.explain": Sample("{methods: [integrated_gradients], rows: 1, examples: 5, steps: 4}", "files"),
    # export
    "export.formats": Sample("[keras, saved_model]", "export"),
    "export.verify": Sample("'off'", "export"),
    "export.tolerance": Sample("{keras: {max_abs_diff: 0.001}}", "export"),
    "export.samples": Sample("3", "export"),
    "export.latency_calls": Sample("3", "export"),
    "export.tflite.quantization": Sample("[float16]", "export", context=_TFLITE),
    "export.tflite.representative_samples": Sample("1", "export", context=_TFLITE),
    "export.intended_use": Sample("'Sampled: for this test only.'", "card"),
}
"""key → its sample, for every task that honours it (TASK_SAMPLES where a task needs another)."""

_TEXT_FEATURES = _TABLE_FEATURES[:-1] + ", {name: note, type: text, sequence_length: 4, vocabulary_size: 12}]"
_CONDITIONAL = ("data.target={name: label}",)

TASK_SAMPLES: dict[tuple[str, str], Sample] = {
    # distillation: a teacher of the task's kind (written by _write_data); the soft loss shows in the first step
    ("classification", "distillation"): Sample(f"{{teacher: {DATA}/teacher_classes.keras, temperature: 2.0, "
                                               "soft_loss_weight: 0.9}", "first_step"),
    ("regression", "distillation"): Sample(f"{{teacher: {DATA}/teacher_values.keras, soft_loss_weight: 0.9}}",
                                           "first_step"),
    # classification, regression: an mlp (model.type: a layer graph)
    **{(task, key): sample for task in ("classification", "regression", "multi_output") for key, sample in {
        "model.type": Sample(("model={type: graph, nodes: [{name: h, layer: Dense, args: {units: 3}, "
                              "inputs: [f1]}]}",), "model"),
        # The width of a text feature's bag of embeddings: it needs a text feature.
        "model.embedding_dim": Sample("3", "parameters", context=(f"data.features={_TEXT_FEATURES}",)),
    }.items()},
    # forecasting: a GRU over the windows
    ("forecasting", "model.type"): Sample(("model={type: transformer, blocks: 1, heads: 1, key_dim: 4, "
                                           "model_dim: 4, feed_forward: 4, head: {units: [4]}}",), "model"),
    ("forecasting", "model.cell"): Sample("lstm", "model"),
    ("forecasting", "model.bidirectional"): Sample("true", "model"),
    # multi_output: the regression output becomes a second classification output (label2)
    ("multi_output", "data.targets"): Sample("[{name: label, column: label, kind: classification}, "
                                             "{name: value, column: label2, kind: classification}]", "model"),
    ("regression", "training.loss"): Sample("huber", "compiled"),
    ("forecasting", "training.loss"): Sample("huber", "compiled"),
    ("regression", "evaluation.metrics"): Sample("[mae]", "metrics"),
    ("forecasting", "evaluation.metrics"): Sample("[mae]", "metrics"),
    ("embedding", "evaluation.metrics"): Sample("[reconstruction_mse]", "metrics"),
    ("detection", "evaluation.metrics"): Sample("[map]", "metrics"),
    ("generation", "evaluation.metrics"): Sample("[fid]", "metrics"),
    ("forecasting", "data.features"): Sample("[{name: temp, type: numerical}]", "model"),  # not rain
    ("forecasting", "data.source.type"): Sample((f"data.source={{type: jsonl, path: {DATA}/series.jsonl}}",),
                                                "data.json"),
    # The GRU's loop does not convert to TFLite builtins: the window's TFLite export is an mlp's.
    **{("forecasting", key): Sample(value, "export", context=(*_TFLITE, "model={type: mlp, units: [4]}"))
       for key, value in (("export.tflite.quantization", "[float16]"), ("export.tflite.representative_samples", "1"))},
    ("forecasting", "data.target.name"): Sample("temp", "fingerprint"),
    ("forecasting", "prepare.augmentation"): Sample("[{type: jitter, stddev: 0.5}]", "first_step"),
    ("forecasting", "data.source.path"): Sample(f"{DATA}/series_other.csv", "fingerprint"),
    # detection: generated shapes, a CenterNet
    **{("detection", key): sample for key, sample in {
        # The detector is not named after the run; the report states name and description.
        "name": Sample("tiny-renamed", "report"),
        "description": Sample("'a sampled description'", "report"),
        "data.source.type": Sample((f"data.source={{type: coco, annotations: {DATA}/coco.json, "
                                    f"images: {DATA}/coco, image_size: 32}}",), "data.json"),
        "data.source.images": Sample("30", "data.json"),
        "data.source.image_size": Sample("48", "model"),
        "data.source.classes": Sample("[rectangle, circle]", "parameters"),
        "data.source.min_objects": Sample("2", "fingerprint"),
        "data.source.max_objects": Sample("3", "fingerprint"),
        "data.source.min_size": Sample("8", "fingerprint"),
        "data.source.max_size": Sample("10", "fingerprint"),
        "data.source.max_overlap": Sample("0.3", "fingerprint"),
        "data.source.noise": Sample("5.0", "fingerprint"),
        "model.filters": Sample("[4, 6]", "parameters"),
        "model.stride": Sample("1", "model"),
        "model.head_filters": Sample("3", "parameters"),
        "model.batch_norm": Sample("false", "parameters"),
        "model.heatmap_weight": Sample("2.0", "first_step"),
        "model.size_weight": Sample("1.0", "first_step"),
        "model.offset_weight": Sample("0.5", "first_step"),
        "model.decode.peak_window": Sample("5", "model"),
        "model.decode.max_detections": Sample("4", "model"),
        "model.decode.score_threshold": Sample("0.2", "model"),
        "model.decode.box_format": Sample("xywh", "model"),
        "model.decode.box_units": Sample("relative", "model"),
        "training.schedule.type": Sample(("training.schedule={type: step, every: 1}",), "optimizer"),
        "training.schedule.warmup_epochs": Sample("0.5", "optimizer"),
        "training.schedule.warmup_start": Sample("0.1", "optimizer"),
        "training.schedule.decay_epochs": Sample("3", "optimizer"),  # default: the epochs after warmup
        "training.schedule.min_factor": Sample("0.5", "optimizer"),
        "training.schedule.restarts": Sample("{period_multiplier: 1.0}", "optimizer",
                                             context=("training.schedule.decay_epochs=1",)),
        "evaluation.metrics": Sample("[map]", "metrics"),
    }.items()},
    # embedding: a dense autoencoder of digit images
    **{("embedding", key): sample for key, sample in {
        "prepare.normalization": Sample("{image: {type: minmax}}", "model"),
        "prepare.normalization.image.type": Sample(("prepare.normalization.image={type: minmax}",), "model"),
        "prepare.normalization.image.scale": Sample("0.5", "model"),
        "prepare.normalization.image.offset": Sample("0.1", "model"),
        "prepare.augmentation": Sample("[{type: flip}]", "first_step"),
        "data.features": Sample("[{name: image, type: image, size: [4, 4]}]", "model"),
        "data.target.name": Sample("parity", "data.json"),
        "data.source.path": Sample(f"{DATA}/digits_other.npz", "fingerprint"),
        "data.source.type": Sample((f"data.source={{type: npy, columns: {{image: {DATA}/digits_image.npy, "
                                    f"label: {DATA}/digits_label.npy}}}}",), "data.json"),
        "data.split.files": Sample(f"{{validation: {DATA}/digits_validation.npz, test: {DATA}/digits_test.npz}}",
                                   "data.json"),
        # An image has no statistics to normalize by: the training rows show in the first step.
        **{f"data.split.{key}": Sample(value, "first_step", context=context) for key, value, context in (
            ("time_column", "day", ()), ("folds", "3", ()), ("fold", "1", ("data.split.folds=3",)))},
        "prepare.imputation": Sample("{numerical: {type: median}}", "model", context=(
            "data.features=[{name: image, type: image}, {name: ink, type: numerical}]",)),
        "data.target.class_names": Sample("[a, b, c, d, e, f, g, h, i, j]", "data.json"),
        "data.target.on_unknown": Sample("drop", "outcome", context=("data.target.class_names=[a, b, c, d, e]",),
                                         level="start"),
        "data.split.stratify": Sample("true", "first_step"),
        "model.encoder": Sample("conv", "model"),
        "model.filters": Sample("[4]", "parameters", context=("model.encoder=conv",)),
        "model.latent": Sample("3", "parameters"),
        "evaluation.knn_neighbors": Sample("1", "metrics"),
        "evaluation.metrics": Sample("[reconstruction_mse]", "metrics"),
    }.items()},
    # generation: a DCGAN of digit images
    **{("generation", key): sample for key, sample in {
        "name": Sample("tiny-renamed", "report"),
        "description": Sample("'a sampled description'", "report"),
        "data.features": Sample("[{name: flipped, type: image}]", "fingerprint"),
        "data.source.type": Sample((f"data.source={{type: npy, columns: {{image: {DATA}/digits_image.npy, "
                                    f"label: {DATA}/digits_label.npy}}}}",), "data.json"),
        "data.target": Sample("{name: label}", "model"),
        "data.split.stratify": Sample("true", "first_step", context=_CONDITIONAL),
        "data.source.path": Sample(f"{DATA}/digits_other.npz", "fingerprint"),
        "model.latent_size": Sample("3", "parameters"),
        "model.generator.type": Sample(("model.generator={type: graph, nodes: [{name: d, layer: Dense, "
                                        "args: {units: 64, activation: tanh}, inputs: [latent]}, {name: r, "
                                        "layer: Reshape, args: {target_shape: [8, 8, 1]}, inputs: [d]}]}",),
                                       "model"),
        "prepare.augmentation": Sample("[{type: flip}]", "first_step"),
        "training.tensorboard": Sample("true", "logs"),
        "model.generator.filters": Sample("[3]", "parameters"),
        "model.generator.kernel_size": Sample("3", "parameters"),
        "model.generator.batch_norm": Sample("false", "parameters"),
        "model.generator.activation": Sample("tanh", "model"),
        "model.discriminator.type": Sample(("model.discriminator={type: graph, nodes: [{name: f, layer: "
                                            "Flatten, inputs: [image]}]}",), "networks"),
        "model.discriminator.filters": Sample("[4, 3]", "networks"),
        "model.discriminator.kernel_size": Sample("3", "networks"),
        "model.discriminator.dropout": Sample("0.1", "networks"),
        "model.discriminator.batch_norm": Sample("true", "networks"),
        "model.class_embedding": Sample("3", "parameters", context=_CONDITIONAL),
        "training.adversarial.discriminator_steps": Sample("2", "fit"),
        "training.adversarial.label_smoothing": Sample("0.2", "first_step"),
        "evaluation.generation.every": Sample("2", "history"),
        "evaluation.generation.samples": Sample("10", "history"),
        "evaluation.generation.feature_extractor.type": Sample(
            (f"evaluation.generation.feature_extractor={{type: run, path: {DATA}/classifier.keras}}",), "history"),
        "evaluation.generation.feature_extractor.labels": Sample("parity", "history"),
        "evaluation.generation.feature_extractor.epochs": Sample("2", "history"),
        "evaluation.generation.feature_extractor.units": Sample("4", "history"),
        "evaluation.generation.grid": Sample("9", "plots"),
        "evaluation.metrics": Sample("[fid]", "metrics"),
    }.items()},
    **{("generation", f"training.adversarial.discriminator_optimizer.{key}"): sample for key, sample in {
        **{k.removeprefix("training.optimizer."): v for k, v in SAMPLES.items() if k.startswith("training.optimizer.")},
        "type": Sample(("training.adversarial.discriminator_optimizer={type: sgd, learning_rate: 0.01}",),
                       "optimizer"),
    }.items()},
}

UNOBSERVABLE: dict[str, str] = {
    "version": "1 is its only value: there is no other to set",
    "task": "picks the pipeline itself: every other key's test is its effect",
    "tuning": "read by `dlpipe tune`, not `dlpipe run` (tests/test_tuning.py changes its keys)",
    **{f"{task}:data.split.stratify": "its one other value, true, is refused: the task has no classes "
                                      "(spec/checks.py check_split); false is the value the task fills in"
       for task in ("regression", "forecasting", "detection", "multi_output")},
    "detection:model.type": "centernet is task detection's one model",
    "embedding:model.type": "autoencoder is task embedding's one model",
    "generation:model.type": "gan is task generation's one model",
    "allow_unsafe_deserialization": "acts only when a .keras file holding Python code (a Lambda layer) is "
                                    "loaded, and dlpipe writes none (tests/test_reliability.py loads one)",
    "tracking": "logs the run to an MLflow server, outside the run: the runner does it around every "
                "pipeline, and tests/test_tracking.py reads a run back from a real server",
    "backend": "Keras picks its backend once per process, and this module runs every sample in one "
               "TensorFlow process; tests/test_backend.py runs classification and regression on jax in "
               "fresh processes (run.json backend jax, no TensorFlow imported)",
    "embedding:backend": "Keras picks its backend once per process; tests/test_embedding.py runs the "
                         "autoencoder-embeddings template on jax in a fresh process without TensorFlow",
    "forecasting:backend": "Keras picks its backend once per process; tests/test_backend_forecasting.py "
                           "trains a tiny series on jax in a fresh process without TensorFlow and compares it "
                           "with the same spec on TensorFlow",
}
"""Keys (and every key below them) whose effect a tiny run cannot show, and why."""


def sample_for(task: str, key: str) -> Sample | None:
    return TASK_SAMPLES.get((task, key)) or SAMPLES.get(key)


def unobservable(task: str, key: str) -> str | None:
    for scope in (f"{task}:{key}", key):
        for known, reason in UNOBSERVABLE.items():
            if reason and (scope == known or scope.startswith(known + ".")):
                return reason
    return None


def _split_samples() -> dict[tuple[str, str], Sample]:
    """A tenth of the examples moved between train and another split (the three add up to 1):
    from train to test (key train), from train to the key's split (validation, test)."""
    found = {}
    for task in BASES:
        split = base_document(task)[0].data.split
        for key, other in (("train", "test"), ("validation", "train"), ("test", "train")):
            moved = {"train": round(split.train - 0.1, 6),
                     **{k: round(getattr(split, k) + 0.1, 6) for k in {key, other} - {"train"}}}
            found[(task, f"data.split.{key}")] = Sample(tuple(f"data.split.{k}={v}" for k, v in moved.items()),
                                                        "data.json")
    return found


TASK_SAMPLES.update(_split_samples())
KEYS = _all_keys()
TESTED = [(task, key) for task, key in KEYS if unobservable(task, key) is None]
RUN = tuple(BASES)
"""The tasks whose runs are compared so far (the others' samples are being checked)."""
RUN_TESTED = [(task, key) for task, key in TESTED if task in RUN]


def test_every_honoured_key_has_a_sample():
    missing = [f"{task}: {key}" for task, key in TESTED if sample_for(task, key) is None]
    assert not missing, "give these keys a Sample (or a reason in UNOBSERVABLE):\n" + "\n".join(missing)


def test_every_task_has_its_keys_enumerated():
    for name in tasks.names():
        keys = [key for task, key in KEYS if task == name]
        assert len(keys) >= 30, (name, keys)  # the walk reaches the leaves


@pytest.mark.parametrize("task,key", TESTED, ids=[f"{t}-{k}" for t, k in TESTED])
def test_sample_validates_and_changes_the_spec(task, key):
    sample = sample_for(task, key)
    if sample is None:
        pytest.fail(f"no sample for {key}")
    base, _ = base_document(task, sample.context)
    changed, _ = base_document(task, sample.context, sample.overrides(key))
    assert changed != base
    assert _value(changed, key) != _value(base, key), f"{key} is {_value(base, key)!r} either way"


def _value(spec, key: str):
    value = spec
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part)
    return value


# Observing a run ---------------------------------------------------------------------------

LEVELS = ("deep", "start", "step", "train", "full")
OBSERVABLES = {
    "model": "deep", "parameters": "deep", "weights": "deep",
    "compiled": "start", "optimizer": "start", "fit": "start", "run.json": "start", "fingerprint": "start",
    "data.json": "start", "labels.json": "start",
    "first_step": "step",
    "history": "train", "trained": "train", "checkpoints": "train", "logs": "train", "stdout": "train",
    "stderr": "train",
    "networks": "start",
    "plots": "train",
    "metrics": "full", "history.csv": "full", "export": "full", "card": "full", "report": "full",
    "evaluation": "full", "files": "full",
}
"""observable → the first level that shows it (every later level shows it too)."""
RUN_RECORD = ("deterministic", "device", "training", "parameters", "encoder_parameters", "seed")


class _Stop(Exception):
    """Raised by the probe to end a run where its level has seen enough."""


_RUNS = iter(range(10**6))


def observe(task: str, overrides: tuple[str, ...], level: str, rerun: Path | None = None, keep: bool = False) -> dict:
    """What a run of the task's base with `overrides` shows at `level` (`outcome`: 'completed'
    or its error's message). With `rerun`, a copy of that finished run's folder is run into:
    the stages whose inputs did not change are reused (dlpipe/stagecache.py). With `keep`,
    the run's folder stays (as `_folder`)."""
    import keras

    _write_data()
    keras.utils.clear_session(free_memory=False)  # a garbage collection would cost ~1 s a run
    template, base = BASES[task]
    spec_file = ROOT / "specs" / f"{template}.yaml"
    if level == "deep":
        return _observe_deep(spec_file, (*base, *overrides))
    out = _TMP / "runs" / f"{task}-{next(_RUNS)}"
    if rerun is not None:
        shutil.copytree(rerun, out)
    probe = _probe(level)
    stdout, stderr = io.StringIO(), io.StringIO()
    outcome = "completed"
    from dlpipe.runner import run_spec

    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            run_spec(spec_file, overrides=[*base, *overrides], out=out, command=["pytest"], callbacks=[probe])
    except _Stop:
        pass
    except DlpipeError as err:
        outcome = str(err)
    seen = {**probe.seen, "outcome": _plain_text(outcome, out),
            "stdout": _plain_text(stdout.getvalue(), out), "stderr": _plain_text(stderr.getvalue(), out)}
    seen.update(_files(out, level))
    if keep:
        seen["_folder"] = out
    else:
        shutil.rmtree(out, ignore_errors=True)
    return seen


def _observe_deep(spec_file: Path, overrides: tuple[str, ...]) -> dict:
    import keras

    from dlpipe.errors import SpecError
    from dlpipe.spec import locate

    try:
        spec, document = load_document(spec_file, list(overrides))
        keras.mixed_precision.set_global_policy("float32")
        keras.utils.set_random_seed(spec.seed)
        model = tasks.get(spec.task).hook("deep_build")(
            spec, spec_file.parent, lambda path, message: SpecError([locate(document, path, message)]))
    except DlpipeError as err:
        return {"outcome": str(err)}
    return {"outcome": "completed", "model": json.loads(model.to_json()), "parameters": int(model.count_params()),
            "weights": _digest(model.weights)}


def _probe(level: str):
    import keras

    from dlpipe.training.optimizers import optimizers

    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen: dict = {"history": []}

        def on_train_begin(self, logs=None):
            model = self.model
            compiled = None
            with contextlib.suppress(Exception):
                compiled = model.get_compile_config()
            self.seen.update(compiled=_plain(compiled), optimizer=[_plain(o.get_config()) for o, _ in optimizers(model)],
                             fit=dict(self.params), networks=_networks(model))
            if level == "start":
                raise _Stop

        def on_train_batch_end(self, batch, logs=None):
            if "first_step" not in self.seen:
                self.seen["first_step"] = {k: float(v) for k, v in (logs or {}).items()}
                if level == "step":
                    raise _Stop

        def on_epoch_end(self, epoch, logs=None):
            self.seen["history"].append({k: float(v) for k, v in (logs or {}).items()})

        def on_train_end(self, logs=None):
            self.seen["trained"] = _digest(self.model.weights)
            if level == "train":
                raise _Stop

    return Probe()


def _networks(model) -> dict:
    """The config of each network a model trains (a GAN's generator and discriminator)."""
    import keras

    parts = {name: getattr(model, name) for name in ("generator", "discriminator")
             if isinstance(getattr(model, name, None), keras.Model)}
    return {name: json.loads(part.to_json()) for name, part in (parts or {"model": model}).items()}


def _files(out: Path, level: str) -> dict:
    """The observables the run directory holds."""
    seen: dict = {}
    record = _json(out / "run.json") or {}
    seen["run.json"] = {k: record.get(k) for k in RUN_RECORD}
    seen["fingerprint"] = record.get("data_fingerprint")
    seen["data.json"] = _plain(_json(out / "data.json"), out)
    seen["labels.json"] = _json(out / "labels.json")
    if level in ("train", "full"):
        seen["checkpoints"] = _tree(out / "checkpoints", read=(".json", ".npz"))
        # TensorBoard's event files are named by time and host: their number per folder is what a run decides.
        seen["logs"] = sorted(str(p.parent.relative_to(out)) for p in (out / "logs").rglob("*") if p.is_file())
        seen["plots"] = _tree(out / "plots", read=(".png",))
    if level == "full":
        seen["metrics"] = _json(out / "metrics.json")
        seen["history.csv"] = _read(out / "history.csv")
        seen["export"] = _tree(out / "export", read=(".json", ".md"))
        seen["card"] = _read(out / "export" / "model_card.md")
        # Its heading and description (the rest holds times: the other observables cover it).
        seen["report"] = re.findall(r"<title>[^<]*</title>|<p>[^<]*</p>", _read(out / "report.html") or "")[:2]
        seen["evaluation"] = _tree(out / "evaluation", read=(".json",))
        seen["files"] = _tree(out)
    return {k: _plain(v, out) for k, v in seen.items()}


def _tree(folder: Path, read: tuple[str, ...] = ()) -> dict:
    """Relative path → for the suffixes in `read`, the file's text (json, md), digest (png) or
    checkpoint record (npz: epochs, history, the best epoch, early stopping's state); else None."""
    found = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_dir() or "cache" in path.relative_to(folder).parts[:1]:
            continue
        name = str(path.relative_to(folder))
        if "tfevents" in path.name:  # TensorBoard names its event files by time and host
            name = str(path.parent.relative_to(folder) / "<events>")
        if path.suffix not in read:
            found[name] = None
        elif path.suffix == ".png":
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.suffix == ".npz":
            from dlpipe.training import checkpoints

            found[name] = checkpoints.read(path).record
        elif path.suffix == ".json":
            found[name] = _plain(_json(path))
        else:
            found[name] = _read(path)
    return found


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


_DURATION = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?\s?(ms|us|µs|s)\b(/step)?")
_SIZE = re.compile(r"\d[\d,]*\sB\b")
"""An export's size in the model card: a SavedModel's and an ONNX file's differ by a few bytes
between two exports of one model in one process (TensorFlow numbers its traced functions)."""


_SLOW_STEP = re.compile(r"^\[dlpipe\] [^\n]*(\(<t>\)|, <t>|, ETA <t>)\n?", re.M)
"""A progress step's lines (dlpipe/progress.py), printed only when the step takes over 2 s (its
final line ends with the elapsed time in parentheses, a line while it runs with the elapsed
time): whether they are there at all depends on the machine's load."""


def _plain_text(text: str, out: Path) -> str:
    """`text` without what differs between two runs of one spec: durations, the run's folder,
    the lines of steps that happened to be slow."""
    return _SLOW_STEP.sub("", _SIZE.sub("<size>", _DURATION.sub("<t>", text.replace(str(out), "<run>"))))


def _plain(value, out: Path | None = None):
    if isinstance(value, dict):
        return {str(k): _plain(v, out) for k, v in value.items()
                if k not in ("seconds", "started", "finished", "created", "date_saved",
                             "bytes", "gzip_bytes", "median_ms", "p90_ms")}  # measured, not decided
    if isinstance(value, (list, tuple)):
        return [_plain(v, out) for v in value]
    if isinstance(value, str) and out is not None:
        return _plain_text(value, out)
    if hasattr(value, "item") and callable(value.item):  # a NumPy scalar
        return value.item()
    return value


def _digest(weights) -> str:
    import numpy as np

    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()


_BASE_RUNS: dict[tuple, dict] = {}


def base_run(task: str, context: tuple[str, ...], level: str) -> dict:
    """The base run's observation at `level`, made once per (task, context, level); a whole
    run's folder is kept for the variants to rerun into (`rerun_level`)."""
    key = (task, context, level)
    if key not in _BASE_RUNS:
        _BASE_RUNS[key] = observe(task, context, level, keep=level == "full")
    return _BASE_RUNS[key]


def variant_run(task: str, overrides: tuple[str, ...], level: str, base: dict) -> dict:
    """A sampled run. A whole run of a task that reruns into a finished run's folder is made
    that way: only the stages the sample changes run again (evaluation and export keys:
    seconds instead of a retraining), which also checks that the stage cache sees the key."""
    if level == "full" and tasks.get(task).supports("rerun") and base.get("_folder"):
        return observe(task, overrides, level, rerun=base["_folder"])
    return observe(task, overrides, level)


def _level(sample: Sample) -> str:
    if sample.level is not None:
        assert sample.level in LEVELS and sample.observe in ("outcome", "stdout", "stderr") or (
            LEVELS.index(sample.level) >= LEVELS.index(OBSERVABLES[sample.observe])), sample
        return sample.level
    assert sample.observe != "outcome", "an outcome sample names its level"
    return OBSERVABLES[sample.observe]


@pytest.mark.slow
@pytest.mark.parametrize("task,key", RUN_TESTED, ids=[f"{t}-{k}" for t, k in RUN_TESTED])
def test_honoured_key_changes_the_run(task, key):
    sample = sample_for(task, key)
    assert sample is not None, f"no sample for {key} (test_every_honoured_key_has_a_sample)"
    level = _level(sample)
    before = base_run(task, sample.context, level)
    after = variant_run(task, (*sample.context, *sample.overrides(key)), level, before)
    if sample.observe != "outcome":
        assert after["outcome"] == "completed", after["outcome"]
        assert before["outcome"] == "completed", before["outcome"]
    assert after[sample.observe] != before[sample.observe], (
        f"task {task}: {key} set to {sample.sets!r} did not change {sample.observe}")


@pytest.mark.slow
@pytest.mark.parametrize("task", RUN)
@pytest.mark.parametrize("level", LEVELS)
def test_base_run_repeats(task, level):
    """The oracle: the base run made again observes the same (no time, path or random
    number leaks into what the tests above compare)."""
    first, again = base_run(task, (), level), observe(task, (), level)
    assert first["outcome"] == "completed", first["outcome"]
    differing = [name for name in first if not name.startswith("_") and first[name] != again.get(name)]
    assert not differing, differing
