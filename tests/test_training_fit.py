"""Training on real data (breast cancer, a small MLP, a few epochs): the learning rate each
epoch follows the schedule, class and sample weights change what is learned, the same seed
gives the same bits, and a NaN loss stops the run with one clear line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.spec import load_document

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras")

SPEC = """\
version: 1
name: fit-test
task: classification
seed: 3
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
  split: {train: 0.7, validation: 0.15, test: 0.15}
prepare:
  normalization: {numerical: {type: zscore}}
model: {type: mlp, units: [16], dropout: 0.1}
training:
  epochs: 4
  batch_size: 64
  optimizer: {type: adam, learning_rate: 0.05}
  progress: none
export: {formats: []}
"""


def train_spec(path: Path, *overrides: str, callbacks=None):
    """The pipeline's setup, data, build and train stages, in this process, without a run directory."""
    from dlpipe.architectures.assemble import build_model
    from dlpipe.data.prepare import prepare
    from dlpipe.spec import locate
    from dlpipe.training.compile import compile_model
    from dlpipe.training.determinism import configure
    from dlpipe.training.fit import train

    spec, document = load_document(path, overrides)
    configure(spec.seed, spec.training)

    def located(key, message):
        from dlpipe.errors import SpecError

        return SpecError([locate(document, key, message)])

    data = prepare(spec, path.parent, located)
    model = build_model(spec, data)
    compile_model(model, spec, len(data.class_names) if data.class_names else None, located)
    history = train(model, spec, data, located=located, callbacks=callbacks)
    return model, history, data


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "spec.yaml"
    path.write_text(SPEC)
    return path


class RateProbe(keras.callbacks.Callback):
    """The rate each step runs at (passed as an extra callback: it runs after dlpipe's)."""

    def __init__(self):
        super().__init__()
        self.rates: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


# 4 epochs of ceil(398 / 64) = 7 steps. Expected rates are written from each definition.
SCHEDULES = {
    "none": ("null", [0.05] * 4),
    "step": ("{type: step, every: 1, factor: 0.5}", [0.05, 0.025, 0.0125, 0.00625]),
    "piecewise": ("{type: piecewise, boundaries: [1, 3], factors: [0.3, 0.1]}", [0.05, 0.015, 0.015, 0.005]),
    "exponential": ("{type: exponential, rate: 0.8}", [0.05 * 0.8 ** e for e in range(4)]),
    "cosine+warmup": ("{type: cosine, warmup_epochs: 1, min_factor: 0.1}",
                      [0.0] + [0.05 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * e / 3))) for e in range(3)]),
    # min_delta so large that nothing counts as an improvement: patience 1 halves each epoch
    # after the first (which sets the reference).
    "plateau": ("{type: reduce_on_plateau, monitor: loss, factor: 0.5, patience: 1, min_delta: 1.0e+9}",
                [0.05, 0.05, 0.025, 0.0125]),
}


@pytest.fixture(scope="module")
def plain(spec_path):
    """One model trained with the spec as it is: (model, history, data), and a copy of its
    weights and test predictions taken before any other test trains the model on."""
    model, history, data = train_spec(spec_path)
    weights = [np.array(w.numpy()) for w in model.weights]
    predictions = model.predict(data.splits["test"].x, verbose=0)[:, 0]
    return model, history, data, weights, predictions


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_logged_learning_rate_follows_the_schedule(spec_path, plain, name):
    from dlpipe.spec import load_spec
    from dlpipe.training.compile import compile_model
    from dlpipe.training.fit import train

    schedule, expected = SCHEDULES[name]
    probe = RateProbe()
    # Trained on further from where `plain` ended (a built model trains sooner than a new
    # one), compiled afresh: the schedule reads the new optimizer's step counter, from 0.
    model, _, data, _, _ = plain
    spec = load_spec(spec_path, [f"training.schedule={schedule}"])
    compile_model(model, spec, 2)
    history = train(model, spec, data, callbacks=[probe])
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-6, atol=1e-9)
    assert len(probe.rates) == 4 * 7
    if name == "cosine+warmup":  # within the warmup epoch the rate climbs step by step
        np.testing.assert_allclose(probe.rates[:7], [0.05 * k / 7 for k in range(7)], rtol=1e-6, atol=1e-9)


def test_history_csv_has_a_learning_rate_column():
    from dlpipe.stages import history_csv

    text = history_csv({"loss": [0.5, 0.25], "learning_rate": [0.01, 0.005]})
    assert text == "epoch,learning_rate,loss\n1,0.01,0.5\n2,0.005,0.25\n"


def test_same_seed_same_weights(spec_path, plain):
    from dlpipe.training.fit import weights_fingerprint

    _, history, _, weights, _ = plain
    again, history_again, _ = train_spec(spec_path)
    assert history_again == history
    for a, b in zip(weights, again.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    assert weights_fingerprint(again) == _sha256(weights)


def _sha256(arrays) -> str:
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_class_weight_and_sample_weight_column_steer_training(spec_path, plain, tmp_path):
    """Weight 0 on the malignant class: the model stops predicting it. The same weights
    given as a CSV column train to exactly the same weights."""
    from dlpipe.data.builtin import load_breast_cancer

    def malignant_recall(predictions, data):
        test = data.splits["test"]
        return float(np.mean((predictions[test.y == 0] > 0.5) == 0))

    _, _, data, _, plain_predictions = plain
    weighted, _, _ = train_spec(spec_path, "training.class_weight={malignant: 0.0}")
    assert malignant_recall(plain_predictions, data) > 0.85
    assert malignant_recall(weighted.predict(data.splits["test"].x, verbose=0)[:, 0], data) < 0.15

    table = load_breast_cancer()
    columns = {name: values for name, values in table.columns.items()}
    columns["weight"] = (columns["target"] == 1).astype(np.float32)  # 0 for malignant (0)
    csv = tmp_path / "cancer.csv"
    names = list(columns)
    rows = [",".join(names)] + [",".join(repr(float(columns[n][i])) if n != "target" else str(int(columns[n][i]))
                                         for n in names) for i in range(len(table))]
    csv.write_text("\n".join(rows) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("{type: builtin, name: breast_cancer}", f"{{type: csv, path: {csv}}}"))
    from_column, _, column_data = train_spec(spec, "training.sample_weight=weight")
    assert [f.name for f in column_data.features] == [f.name for f in data.features]  # weight is no feature
    for a, b in zip(weighted.weights, from_column.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_balanced_class_weights():
    from types import SimpleNamespace

    from dlpipe.training.weights import class_weights

    spec = SimpleNamespace(training=SimpleNamespace(class_weight="balanced"))
    labels = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(class_weights(spec, labels, ["a", "b"]), [4 / (2 * 3), 4 / (2 * 1)])


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """An exploding rate (×1e6 per epoch) on a regression: epoch 1 is fine, a later one overflows."""
    from dlpipe.cli import main
    from dlpipe.training import checkpoints

    spec = tmp_path / "nan.yaml"
    spec.write_text(SPEC.replace("classification", "regression").replace("breast_cancer", "diabetes")
                    .replace("test: 0.15}", "test: 0.15, stratify: false}")
                    .replace("{type: adam, learning_rate: 0.05}", "{type: sgd, learning_rate: 1.0e-4}\n"
                             "  schedule: {type: exponential, rate: 1.0e+6, staircase: true}"))
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(out)])
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert error[0].startswith("error: train: the loss became ")
    kept = checkpoints.read(out / "checkpoints" / "last.npz")
    assert kept.epoch >= 1 and not kept.finished
    assert f" at epoch {kept.epoch + 1}, step " in error[0]
    assert error[0].endswith(f"training stopped; the last good checkpoint (epoch {kept.epoch}) is "
                             f"{out / 'checkpoints' / 'last.npz'}; try a lower learning rate, gradient clipping, "
                             "or check the data")
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == error[0].removeprefix("error: ")
    assert all(np.isfinite(a).all() for a in kept.model)
    assert not (out / "model.keras").exists()


def test_categorical_losses_take_integer_labels_and_binary_losses_need_two_classes(tmp_path):
    """Labels stay class indices; categorical cross-entropy and focal loss one-hot them. A
    binary loss on three classes is a located error before any training."""
    from dlpipe.errors import SpecError

    spec = tmp_path / "iris.yaml"
    spec.write_text(SPEC.replace("breast_cancer", "iris").replace("epochs: 4", "epochs: 3"))
    model, history, data = train_spec(spec, "training.loss=categorical_focal_crossentropy")
    test = data.splits["test"]
    assert np.mean(np.argmax(model.predict(test.x, verbose=0), axis=1) == test.y) > 0.8
    assert history["loss"][-1] < history["loss"][0]
    with pytest.raises(SpecError) as caught:
        train_spec(spec, "training.loss=binary_crossentropy")
    assert str(caught.value) == (f"--set:1:15: training.loss: the data has 3 classes, so the model ends in a "
                                 "softmax; binary_crossentropy does not fit it: use auto, "
                                 "sparse_categorical_crossentropy, categorical_crossentropy or "
                                 "categorical_focal_crossentropy")
