"""Distillation (`distillation`) on `backend: jax`, in a fresh process where TensorFlow cannot
be imported (tests/test_backend.py's hook): a small digits student learns from a teacher
.keras file written here on TensorFlow, with augmentation (numpy batches; the teacher runs on
each augmented batch: dlpipe/distillation.py `numpy_augment`, unit-tested in
tests/test_distillation.py). The teacher's cached outputs are the teacher's own, computed
here on TensorFlow from the same prepared data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_backend import dlpipe_without_tensorflow

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ("backend=jax", "training.epochs=5", "training.optimizer={type: adam, learning_rate: 5.0e-3}",
           "model.blocks=[{filters: 8, convs: 1}]", "model.head={units: [32]}", "export.formats=[keras]",
           "training.early_stopping=null", "evaluation.baselines=false", "training.progress=none",
           "prepare.augmentation=[{type: translation, factor: 0.1}]")


@pytest.mark.slow
def test_a_student_learns_from_a_teacher_on_jax_without_tensorflow(tmp_path):
    import keras

    from dlpipe.data.prepare import prepare
    from dlpipe.spec import load_spec

    spec_path = ROOT / "specs" / "image-classification.yaml"
    sets = [*STUDENT, f"distillation={{teacher: {tmp_path / 'teacher.keras'}, temperature: 2.0, "
                      "soft_loss_weight: 0.7}"]
    data = prepare(load_spec(spec_path, sets), ROOT, located=None)
    train = data.splits["train"]
    image = keras.Input(shape=train.x["image"].shape[1:], name="image")
    teacher = keras.Model(image, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(image)))
    teacher.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    keras.utils.set_random_seed(0)
    teacher.fit(train.x["image"], train.y, epochs=15, batch_size=64, verbose=0)
    teacher.save(tmp_path / "teacher.keras")

    out = tmp_path / "student"
    result = dlpipe_without_tensorflow("run", str(spec_path), *[a for s in sets for a in ("--set", s)],
                                       "--out", str(out), env={"DLPIPE_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["backend"] == "jax" and "tensorflow" not in record["versions"]
    assert record["stages"]["teacher"]["status"] == "completed"
    with np.load(out / "cache" / "teacher.npz") as cached:
        for split in ("train", "validation"):
            expected = teacher.predict({"image": data.splits[split].x["image"]}, verbose=0)
            np.testing.assert_allclose(cached[split], expected, atol=1e-5)
    accuracy = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    assert accuracy >= 0.8, accuracy  # 10 classes; seen: 0.9x
    assert json.loads((out / "export/verification.json").read_text())["keras"]["passed"]
