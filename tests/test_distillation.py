"""Knowledge distillation (`distillation`): the spec's refusals, the loss against a NumPy
reference, the teacher on augmented batches, and real students trained from a real teacher
run (the digits CNN of tests/_runs.py). The benchmark (student with and without a teacher,
3 seeds) is benchmarks/distillation.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "specs" / "image-classification.yaml"
REGRESSION = ROOT / "specs" / "tabular-regression.yaml"


def with_teacher(template: Path, folder: Path, section: str, replace: tuple[str, str] | None = None) -> tuple[Path, int]:
    """A copy of `template` with a `distillation` section (`section`: its YAML lines); returns
    the copy and the line of `teacher:`."""
    text = template.read_text(encoding="utf-8")
    if replace:
        text = text.replace(*replace)
    text = text.rstrip("\n") + "\n\ndistillation:\n" + section
    path = folder / template.name
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index(next(s for s in text.splitlines() if s.strip().startswith("teacher:"))) + 1
    return path, line


def validate(*args: str):
    return CliRunner().invoke(main, ["validate", "--no-cache", *args])


# The spec, without TensorFlow ----------------------------------------------------------------


def test_a_missing_teacher_is_refused_at_its_line(tmp_path):
    spec, line = with_teacher(IMAGE, tmp_path, "  teacher: runs/no-such-run\n  temperature: 3.0\n")
    result = validate(str(spec))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{spec}:{line}:12: distillation.teacher: no such file or folder: {tmp_path / 'runs/no-such-run'}"]


def test_a_run_directory_without_a_model_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    spec, line = with_teacher(IMAGE, tmp_path, "  teacher: run\n")
    result = validate(str(spec))
    assert result.stderr.splitlines() == [f"{spec}:{line}:12: distillation.teacher: {tmp_path / 'run'} holds no "
                                          "model.keras: name an earlier run directory or a .keras file"]


def test_what_distillation_cannot_be_combined_with_is_refused(tmp_path):
    (tmp_path / "teacher.keras").write_bytes(b"")
    spec, _ = with_teacher(REGRESSION, tmp_path, "  teacher: teacher.keras\n  temperature: 2.0\n")
    result = validate(str(spec))
    assert result.exit_code == 1
    assert "distillation.temperature: temperature softens class probabilities; a teacher's values are matched " \
           "as they are: leave it out" in result.stderr
    spec, _ = with_teacher(IMAGE, tmp_path, "  teacher: teacher.keras\n", ("  batch_size: 64", "  batch_size: 64\n"
                                                                            "  strategy: multi_worker"))
    assert "training.strategy: distillation trains with Keras fit" in validate(str(spec)).stderr
    # Not a Keras archive: said at the line, before anything is loaded.
    spec, line = with_teacher(IMAGE, tmp_path, "  teacher: teacher.keras\n")
    assert validate(str(spec)).stderr.splitlines() == [
        f"{spec}:{line}:12: distillation.teacher: {tmp_path / 'teacher.keras'}: not a Keras model file "
        "(a .keras archive with config.json)"]


# The loss and the teacher on augmented batches (Keras) ----------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.slow
def test_the_loss_is_hinton_s_on_packed_targets():
    import keras

    from dlpipe.training.distillation import Distillation, HardTargets, pack

    rng = np.random.default_rng(0)
    labels = np.array([0, 2, 1, 2])
    teacher, student = _softmax(rng.normal(size=(4, 3)) * 2), _softmax(rng.normal(size=(4, 3)))
    y = pack(labels, teacher)
    assert y.shape == (4, 4) and y.dtype == np.float32 and np.array_equal(y[:, 0], labels)
    hard = -np.log(student[np.arange(4), labels])
    for t, w in ((1.0, 0.5), (4.0, 0.7), (2.0, 0.0), (3.0, 1.0)):
        p, q = _softmax(np.log(teacher) / t), _softmax(np.log(student) / t)  # softmax(logits / T)
        soft = (p * (np.log(p) - np.log(q))).sum(axis=1) * t * t
        loss = Distillation(keras.losses.SparseCategoricalCrossentropy(), "softmax", t, w)
        got = float(loss(y, student.astype(np.float32)))
        assert got == pytest.approx(((1 - w) * hard + w * soft).mean(), rel=1e-4), (t, w)
    # Binary (one sigmoid unit): each unit's two-class distribution, tempered through its logit.
    pt, ps = np.array([[0.9], [0.2]]), np.array([[0.6], [0.4]])
    a, b = 1 / (1 + np.exp(-np.log(pt / (1 - pt)) / 2)), 1 / (1 + np.exp(-np.log(ps / (1 - ps)) / 2))
    soft = (a * np.log(a / b) + (1 - a) * np.log((1 - a) / (1 - b))).ravel() * 4
    hard = -np.log(np.array([0.6, 1 - 0.4]))  # labels 1, 0
    loss = Distillation(keras.losses.BinaryCrossentropy(), "sigmoid", 2.0, 0.5)
    assert float(loss(pack(np.array([1, 0]), pt), ps.astype(np.float32))) == pytest.approx(
        (0.5 * hard + 0.5 * soft).mean(), rel=1e-4)
    # Regression: the teacher's values by squared difference.
    loss = Distillation(keras.losses.MeanSquaredError(), "values", 4.0, 0.25)
    yv, tv, sv = np.array([1.0, 3.0]), np.array([[2.0], [2.0]]), np.array([[1.5], [2.5]], np.float32)
    assert float(loss(pack(yv, tv), sv)) == pytest.approx((0.75 * (yv - sv.ravel()) ** 2 + 0.25 * 0.25).mean())
    # The training metric reads the labels alone.
    metric = HardTargets("accuracy")
    metric.update_state(y, student.astype(np.float32))
    assert float(metric.result()) == pytest.approx(np.mean(student.argmax(axis=1) == labels))
    assert metric.name == "accuracy"
    again = HardTargets.from_config(metric.get_config())
    assert (again.metric, again.binary, again.name) == ("accuracy", False, "accuracy")


@pytest.mark.slow
def test_the_teacher_runs_on_each_augmented_batch_in_the_student_s_class_order():
    import keras
    import tensorflow as tf

    from dlpipe.distillation import Teacher
    from dlpipe.training.distillation import pack

    x_in = keras.Input(shape=(2,), name="x")
    model = keras.Model(x_in, keras.layers.Dense(3, activation="softmax")(x_in))
    model.set_weights([np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]], np.float32), np.zeros(3, np.float32)])
    teacher = Teacher(model=model, path=Path("t.keras"), inputs=["x"], order=[2, 0, 1], kind="softmax", width=3)
    x = np.array([[0.1, 0.2], [1.0, -1.0]], np.float32)
    stored = teacher.outputs({"x": x})
    expected = model.predict(x, verbose=0)[:, [2, 0, 1]]
    np.testing.assert_allclose(stored, expected, atol=1e-6)

    def shift(x, y, weight, seed):  # an "augmentation" whose effect is known
        return {"x": x["x"] + 1.0}, y, weight

    y = pack(np.array([2, 0]), stored)
    apply = teacher.augment(shift)
    new_x, new_y, _ = apply({"x": tf.constant(x)}, tf.constant(y), tf.ones(2), tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(new_x["x"].numpy(), x + 1.0)
    np.testing.assert_array_equal(new_y.numpy()[:, 0], [2, 0])
    np.testing.assert_allclose(new_y.numpy()[:, 1:], model.predict(x + 1.0, verbose=0)[:, [2, 0, 1]], atol=1e-6)
    assert not np.allclose(new_y.numpy()[:, 1:], stored, atol=1e-3)  # not the stored outputs


def test_on_numpy_batches_the_teacher_runs_on_each_augmented_batch_in_the_student_s_class_order():
    """The batch function training uses off TensorFlow (numpy augmentation, training/fit.py)."""
    import keras

    from dlpipe.distillation import Teacher
    from dlpipe.training.distillation import pack

    x_in = keras.Input(shape=(2,), name="x")
    model = keras.Model(x_in, keras.layers.Dense(3, activation="softmax")(x_in))
    model.set_weights([np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]], np.float32), np.zeros(3, np.float32)])
    teacher = Teacher(model=model, path=Path("t.keras"), inputs=["x"], order=[2, 0, 1], kind="softmax", width=3)
    x = np.array([[0.1, 0.2], [1.0, -1.0], [0.5, 0.5]], np.float32)
    stored = teacher.outputs({"x": x})
    seen = []

    def shift(x, y, weight, seed):  # an "augmentation" whose effect is known
        seen.append(seed)
        return {"x": x["x"] + 1.0}, y, weight

    new_x, new_y, weight = teacher.numpy_augment(shift)({"x": x}, pack(np.array([2, 0, 1]), stored),
                                                        np.ones(3, np.float32), (1, 0, 4))
    assert seen == [(1, 0, 4)] and weight.tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(new_x["x"], x + 1.0)
    np.testing.assert_array_equal(new_y[:, 0], [2, 0, 1])
    np.testing.assert_allclose(new_y[:, 1:], model.predict(x + 1.0, verbose=0)[:, [2, 0, 1]], atol=1e-6)
    assert not np.allclose(new_y[:, 1:], stored, atol=1e-3)  # not the stored outputs


# Real students from a real teacher -----------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_run() -> Path:
    import _runs

    return _runs.quick_digits()  # the digits CNN, 3 epochs: ~80k parameters, 10 classes


@pytest.fixture(scope="module")
def small_teachers(tmp_path_factory) -> dict[str, Path]:
    """.keras files taking the digits' `image`: 3 classes (softmax), and values (linear)."""
    import keras

    folder = tmp_path_factory.mktemp("teachers")
    found = {}
    for name, units, activation in (("three", 3, "softmax"), ("values", 1, None)):
        image = keras.Input(shape=(8, 8, 1), name="image")
        output = keras.layers.Dense(units, activation=activation)(keras.layers.Flatten()(image))
        found[name] = folder / f"{name}.keras"
        keras.Model(image, output).save(found[name])
    return found


@pytest.mark.slow
def test_validate_refuses_a_teacher_whose_outputs_do_not_fit_the_task(teacher_run, small_teachers, tmp_path):
    # A regression student cannot learn from class probabilities: plain validate reads the file's head.
    spec, line = with_teacher(REGRESSION, tmp_path, f"  teacher: {teacher_run}\n")
    assert validate(str(spec)).stderr.splitlines() == [
        f"{spec}:{line}:12: distillation.teacher: {teacher_run / 'model.keras'} gives class probabilities (a softmax "
        "over 10 units); task regression needs a teacher that gives values"]
    spec, line = with_teacher(IMAGE, tmp_path, f"  teacher: {small_teachers['values']}\n")
    assert validate(str(spec)).stderr.splitlines() == [
        f"{spec}:{line}:12: distillation.teacher: {small_teachers['values']} gives values (no softmax or sigmoid); "
        "task classification needs a teacher that gives class probabilities"]
    # Ten classes named in the spec, three in the teacher: plain validate.
    names = "  target: {name: label, class_names: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']}"
    spec, line = with_teacher(IMAGE, tmp_path, f"  teacher: {small_teachers['three']}\n",
                              ("  target: {name: label}", names))
    assert validate(str(spec)).stderr.splitlines() == [
        f"{spec}:{line}:12: distillation.teacher: {small_teachers['three']} gives class probabilities (a softmax "
        "over 3 units); data.target.class_names lists 10 classes, so the teacher must end in a softmax over 10 units"]
    # Classes known only from the data: validate --deep (and the run's teacher stage) refuse at the line.
    spec, line = with_teacher(IMAGE, tmp_path, f"  teacher: {small_teachers['three']}\n")
    assert validate(str(spec)).exit_code == 0
    result = validate("--deep", str(spec))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"{spec}:{line}:12: distillation.teacher: {small_teachers['three']} gives class probabilities (a softmax over "
        "3 classes); task classification with 10 classes needs a teacher that gives class probabilities (a softmax "
        "over 10 classes)")


STUDENT = ("training.epochs=2", "model.blocks=[{filters: 4, convs: 1}]", "model.head={units: [8]}",
           "export.formats=[keras]", "training.early_stopping=null", "evaluation.baselines=false")


def _student(folder: Path, *overrides: str) -> Path:
    from dlpipe.runner import run_spec

    return run_spec(IMAGE, overrides=[*STUDENT, *overrides], out=folder, command=["pytest"])


@pytest.mark.slow
def test_a_student_learns_from_the_teacher_s_cached_outputs(teacher_run, tmp_path):
    import keras

    from dlpipe.data.prepare import prepare
    from dlpipe.modelfile import load_keras_model
    from dlpipe.spec import load_spec

    plain = _student(tmp_path / "plain")
    # Soft weight 0: the labels alone, through the packed targets: the plain run, number for number.
    unweighted = _student(tmp_path / "w0", f"distillation={{teacher: {teacher_run}, soft_loss_weight: 0.0}}")
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (plain, unweighted))
    for split in a:
        for metric, value in a[split].items():
            assert b[split][metric] == pytest.approx(value, abs=1e-5), (split, metric)
    assert (plain / "history.csv").read_text().splitlines()[0] == (unweighted / "history.csv").read_text().splitlines()[0]

    distilled = _student(tmp_path / "w9", f"distillation={{teacher: {teacher_run}, temperature: 2.0, "
                                          "soft_loss_weight: 0.9}")
    record = json.loads((distilled / "run.json").read_text())
    assert record["stages"]["teacher"]["status"] == "completed" and record["stages"]["teacher"]["reused"] is False
    assert record["parameters"] * 10 <= json.loads((teacher_run / "run.json").read_text())["parameters"]
    # The teacher's outputs, once per training and validation example, in cache/teacher.npz.
    spec = load_spec(distilled / "spec.yaml")
    data = prepare(spec, ROOT, located=None)
    teacher = load_keras_model(teacher_run / "model.keras")
    with np.load(distilled / "cache" / "teacher.npz") as cached:
        assert sorted(cached) == ["train", "validation"]
        for split in ("train", "validation"):
            expected = teacher.predict({"image": data.splits[split].x["image"]}, verbose=0)
            np.testing.assert_allclose(cached[split], expected, atol=1e-5)
    cache_record = json.loads((distilled / "cache" / "teacher.json").read_text())
    assert cache_record["data_fingerprint"] == data.fingerprint and cache_record["order"] is None
    # The soft loss changed training; the student is saved, evaluated and exported as any model.
    history = [line.split(",") for line in (distilled / "history.csv").read_text().splitlines()]
    plain_history = [line.split(",") for line in (plain / "history.csv").read_text().splitlines()]
    assert history[0] == plain_history[0] and history[1] != plain_history[1]
    student = load_keras_model(distilled / "model.keras")
    assert isinstance(student, keras.Model) and student.output.shape[-1] == 10
    assert json.loads((distilled / "export/verification.json").read_text())["keras"]["passed"]


@pytest.mark.slow
def test_with_augmentation_the_teacher_runs_inside_the_training_input(teacher_run, tmp_path):
    """The teacher's call on each augmented batch runs in tf.data's graph (Teacher.augment;
    its numbers are checked against the teacher in the test above it): a real run trains."""
    augmented = ("prepare.augmentation=[{type: rotation, factor: 0.05}, {type: mixup, alpha: 0.2}]",)
    run = _student(tmp_path / "augmented", *augmented, f"distillation={{teacher: {teacher_run}, soft_loss_weight: 0.5}}")
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    losses = [float(row[history[0].index("loss")]) for row in history[1:]]
    assert len(losses) == 2 and all(np.isfinite(losses)) and losses[1] < losses[0]
    plain = _student(tmp_path / "plain", *augmented)
    assert (plain / "history.csv").read_text() != (run / "history.csv").read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
