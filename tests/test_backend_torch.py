"""`backend: torch`: templates train on Keras' PyTorch backend without importing TensorFlow,
repeat and resume to the same bits, and what they write holds on TensorFlow: the `.keras`
file loaded here (this process runs on TensorFlow) gives the torch run's outputs, and a
SavedModel exported from a torch run (written by TensorFlow in a child process) gives them too.

Each torch run is a fresh process (Keras picks its backend once per process). "Without
TensorFlow" is a process in which TensorFlow looks uninstalled (test_backend.py's
`NO_TENSORFLOW`: `importlib.util.find_spec` says None, as torch's own start-up asks, and
`import tensorflow` fails): a run that imported it anywhere would fail.

Without PyTorch installed these tests skip in one line (`pip install torch==2.13.0`, the CPU
wheel where one is at hand); in CI (CI=true) they fail instead (tests/_system.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _system import require
from test_backend import NO_TENSORFLOW
from dlpipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

AFTER = """
import keras, numpy as np
assert keras.backend.backend() == "torch", keras.backend.backend()
assert "tensorflow" not in sys.modules
"""


def require_torch() -> None:
    require(importlib.util.find_spec("torch") is not None, "PyTorch is not installed",
            "pip install torch==2.13.0 (a CPU wheel: pip install torch==2.13.0 --index-url "
            "https://download.pytorch.org/whl/cpu)")


def python(code: str, *, hide_tensorflow: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh process (TensorFlow hidden unless `hide_tensorflow` is false)."""
    environment = {**os.environ, **(env or {})}
    environment.pop("KERAS_BACKEND", None)
    return subprocess.run([sys.executable, "-c", (NO_TENSORFLOW if hide_tensorflow else "import sys\n") + code],
                          capture_output=True, text=True, env=environment, timeout=600)


def dlpipe(*args: str, then: str = "", hide_tensorflow: bool = True, env: dict | None = None):
    """`dlpipe ARGS` in a fresh process, then Python `then` in the same process."""
    code = (f"from dlpipe.cli import main\ntry:\n    main({list(args)!r}, standalone_mode=False)\n"
            f"except SystemExit as err:\n    assert not err.code, err.code\n{then}")
    return python(code, hide_tensorflow=hide_tensorflow, env=env)


def validate(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["validate", "--no-cache", *args])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


# Validate time (no TensorFlow imported, no PyTorch either) ---------------------------------------

def test_every_template_validates_on_torch_but_text_classification_and_detection():
    """What validates on torch runs there (the tests below and `pytest tests/test_run_templates.py
    --backend torch -k NAME`); text-classification's string features and object-detection
    (its detector learns less on torch, unexplained) are refused in one line each."""
    for path in sorted(SPECS.glob("*.yaml")):
        code, lines = validate(str(path), "--set", "backend=torch")
        if path.stem == "text-classification":
            assert code == 1 and len(lines) == 1, lines
            assert lines[0].startswith("--set:1:9: backend: backend torch runs numerical"), lines
            assert "data.features[0] (text) maps strings to ids with TensorFlow string ops" in lines[0]
        elif path.stem == "object-detection":
            assert code == 1 and len(lines) == 1, lines
            assert lines[0].startswith("--set:1:9: backend: backend torch does not train task detection yet"), lines
        else:
            assert code == 0, (path.name, lines)


def test_strategies_and_attributions_on_torch_are_refused_in_one_line():
    code, lines = validate(str(SPECS / "image-classification.yaml"), "--set", "backend=torch",
                           "--set", "training.strategy=mirrored", "--set", "evaluation.explain={}")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("--set:1:9: backend: backend torch ") and "needs backend: tensorflow" in lines[0]
    assert "training.strategy mirrored is a tf.distribute strategy" in lines[0]
    assert "evaluation.explain takes gradients with TensorFlow" in lines[0]


def test_jit_compile_on_torch_is_refused_at_its_line():
    code, lines = validate(str(SPECS / "tabular-classification.yaml"), "--set", "backend=torch",
                           "--set", "training.jit_compile=true")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("--set:2:22: training.jit_compile: backend torch trains eagerly"), lines
    assert validate(str(SPECS / "tabular-classification.yaml"), "--set", "backend=torch",
                    "--set", "training.jit_compile=auto")[0] == 0


def test_without_tensorflow_a_torch_spec_refuses_saved_model_naming_the_package():
    spec = str(SPECS / "tabular-classification.yaml")
    result = python("from dlpipe.cli import main\n"
                    f"main(['validate', '--no-cache', {spec!r}, '--set', 'backend=torch'])")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert "export.formats[1]" in lines[0] and "saved_model export needs the tensorflow package" in lines[0]
    assert "backend torch exports keras without it" in lines[0]


# A model's own train step (training/steps.py) ----------------------------------------------------

TWO_NETWORKS = '''
import numpy as np, keras
from dlpipe.training.steps import train_step

class TwoNetworks(keras.Model):
    """A GAN's step without randomness: the critic's update, then the generator's through it."""

    def __init__(self):
        super().__init__()
        self.g = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
        self.d = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
        rng = np.random.default_rng(0)
        for variable in [*self.g.weights, *self.d.weights]:
            variable.assign(rng.normal(0, 0.5, variable.shape).astype("float32"))
        self.d_optimizer = keras.optimizers.Adam(0.05)
        self.d_optimizer.build(self.d.trainable_variables)

    def call(self, z):
        return self.g(z)

    def train_step(self, *args):
        return train_step(self, self._step, *args)

    def _step(self, data, step):
        z, real = data
        fake = self.g(z)  # outside the critic's gradient
        softplus, mean = keras.ops.softplus, keras.ops.mean
        d_loss, _ = step.minimize(self.d_optimizer, self.d.trainable_weights,
                                  lambda: (mean(softplus(-self.d(real))) + mean(softplus(self.d(fake))), None))
        g_loss, _ = step.minimize(self.optimizer, self.g.trainable_weights,
                                  lambda: (mean(softplus(-self.d(self.g(z)))), None))
        return {"d_loss": d_loss, "g_loss": g_loss}


def trained():
    rng = np.random.default_rng(1)
    z, real = rng.normal(size=(64, 3)).astype("float32"), rng.normal(2, 1, (64, 2)).astype("float32")
    model = TwoNetworks()
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=False)
    history = model.fit(z, real, batch_size=16, epochs=3, shuffle=False, verbose=0).history
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights], history
'''


@pytest.mark.slow
def test_a_models_own_train_step_updates_on_torch_as_on_tensorflow(tmp_path):
    """`steps.train_step` on torch (`Autograd`: torch.autograd.grad over the chosen network's
    weights) makes the updates TensorFlow's gradient tapes make: a critic step, then a
    generator step through the critic, 12 steps with two Adam optimizers, from the same
    weights; every weight and each epoch's losses agree within 1e-5."""
    require_torch()
    out = str(tmp_path / "torch.npz")
    code = ("from dlpipe import backend\nbackend.activate('torch')\n" + AFTER + TWO_NETWORKS
            + "with backend.inference():  # as the runner trains\n    weights, history = trained()\n"
            + f"np.savez({out!r}, *weights, d_loss=history['d_loss'], g_loss=history['g_loss'])\n")
    result = python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    import keras

    assert keras.backend.backend() == "tensorflow"
    scope = {}
    exec(TWO_NETWORKS, scope)  # noqa: S102 (the same code, here on TensorFlow)
    weights, history = scope["trained"]()
    saved = np.load(out)
    assert len(weights) == 8
    for i, expected in enumerate(weights):
        np.testing.assert_allclose(saved[f"arr_{i}"], expected, atol=1e-5)
    np.testing.assert_allclose(saved["d_loss"], history["d_loss"], atol=1e-5)
    np.testing.assert_allclose(saved["g_loss"], history["g_loss"], atol=1e-5)
    assert not np.allclose(weights[0], np.random.default_rng(0).normal(0, 0.5, weights[0].shape))  # it trained


# Training on torch ----------------------------------------------------------------------------------

SHORT = ("--set", "backend=torch", "--set", "training.progress=none", "--set", "evaluation.baselines=false")
TABULAR = (str(SPECS / "tabular-classification.yaml"), *SHORT, "--set", "training.epochs=3")
IMAGE = (str(SPECS / "image-classification.yaml"), *SHORT, "--set", "training.epochs=2",
         "--set", "export.formats=[keras]")
X_IMAGE = np.random.default_rng(0).uniform(0, 16, (32, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def torch_runs(tmp_path_factory) -> dict[str, Path]:
    """The tabular template on torch exporting keras and saved_model (TensorFlow importable: the
    SavedModel is written by TensorFlow in a child process, verified in the run's); the image
    template on torch without TensorFlow, then its model.keras loaded on torch in that process
    and run on `X_IMAGE` (outputs saved for the TensorFlow oracle here)."""
    require_torch()
    folder = tmp_path_factory.mktemp("torch")
    np.save(folder / "x.npy", X_IMAGE)
    tabular = dlpipe("run", *TABULAR, "--out", str(folder / "tabular"), hide_tensorflow=False)
    assert tabular.returncode == 0, tabular.stderr[-3000:]
    predict = (AFTER + "from dlpipe.modelfile import load_keras_model\n"
               f"model = load_keras_model({str(folder / 'image' / 'model.keras')!r})\n"
               f"x = np.load({str(folder / 'x.npy')!r})\n"
               f"np.save({str(folder / 'image-torch.npy')!r}, model.predict({{'image': x}}, verbose=0))\n")
    image = dlpipe("run", *IMAGE, "--out", str(folder / "image"), then=predict)
    assert image.returncode == 0, image.stderr[-3000:]
    return {"tabular": folder / "tabular", "image": folder / "image", "folder": folder}


@pytest.mark.slow
@pytest.mark.parametrize("name, metric, at_least", [("tabular", "accuracy", 0.9), ("image", "accuracy", 0.6)])
def test_templates_train_on_torch(torch_runs, name, metric, at_least):
    """The same accuracy band as TensorFlow's runs of the same length (majority class: 0.63 and
    0.10), deterministic on a CPU, no TensorFlow version recorded."""
    run = torch_runs[name]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "torch"
    assert "torch" in record["versions"] and "tensorflow" not in record["versions"]
    assert record["deterministic"] is True and record["training"]["jit_compile"] is False
    assert json.loads((run / "metrics.json").read_text())["test"][metric] >= at_least
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert verification["keras"]["passed"] is True
    assert not (run / "logs").exists()  # training.tensorboard: auto writes none off TensorFlow


@pytest.mark.slow
def test_a_torch_model_predicts_the_same_on_tensorflow(torch_runs):
    """model.keras written on torch, loaded here on TensorFlow: the outputs the torch process
    computed from it (atol 1e-5); the tabular run's SavedModel, written by TensorFlow from the
    torch model and verified against it in the run, within 1e-5 too."""
    import keras

    from dlpipe.modelfile import load_keras_model

    assert keras.backend.backend() == "tensorflow"
    on_torch = np.load(torch_runs["folder"] / "image-torch.npy")
    on_tensorflow = load_keras_model(torch_runs["image"] / "model.keras").predict({"image": X_IMAGE}, verbose=0)
    np.testing.assert_allclose(on_tensorflow, on_torch, atol=1e-5)
    assert on_torch.shape == (32, 10) and np.allclose(on_torch.sum(axis=1), 1, atol=1e-5)
    saved_model = json.loads((torch_runs["tabular"] / "export" / "verification.json").read_text())["saved_model"]
    assert saved_model["passed"] is True and saved_model["max_abs_diff"] <= 1e-5, saved_model
    import tensorflow as tf

    serve = tf.saved_model.load(str(torch_runs["tabular"] / "export" / "saved_model")).signatures["serving_default"]
    assert "mean_radius" in serve.structured_input_signature[1]  # raw, named inputs, as on TensorFlow


@pytest.mark.slow
def test_a_torch_run_killed_mid_training_resumes_to_the_same_bits(torch_runs, tmp_path):
    """Killed (SIGKILL) in epoch 2 after epoch 1's checkpoint, then resumed, without TensorFlow:
    the weights and history equal the uninterrupted run's (the fixture's, made in another
    process: a torch run on a CPU repeats its bits; the Dropout draws of each step are seeded
    from seed, epoch and step, dlpipe/training/callbacks.py TorchBatchSeed). Then, in the same
    process, `dlpipe evaluate` gives the run's test accuracy and `dlpipe predict` what the
    model.keras gives on TensorFlow here."""
    args = (*TABULAR, "--set", "export.formats=[keras]", "--out", str(tmp_path / "killed"))
    killed = dlpipe("run", *args, env={"DLPIPE_TEST_KILL_AT": "train:20"})  # 13 batches an epoch
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert json.loads((tmp_path / "killed/checkpoints/last.json").read_text())["epoch"] == 1
    from test_serve import assert_same, breast_cancer_rows

    rows = breast_cancer_rows(20)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = str(tmp_path / "killed")
    after = (f"for args in {[['evaluate', run], ['predict', run, str(tmp_path / 'rows.jsonl'), '--out', str(tmp_path / 'p.jsonl')]]!r}:\n"
             "    main(args, standalone_mode=False)\n" + AFTER)
    resumed = dlpipe("run", *args, "--resume", then=after)  # then `dlpipe evaluate` and `predict`, still no TensorFlow
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    evaluated = dict(line.split("\t")[1:] for line in resumed.stdout.splitlines() if line.startswith("test\t"))
    trained = json.loads((tmp_path / "killed/metrics.json").read_text())["test"]
    assert abs(float(evaluated["accuracy"]) - trained["accuracy"]) < 1e-6
    from dlpipe.prediction import Predictor

    predicted = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert_same(predicted, Predictor.open(tmp_path / "killed").predict(rows), tolerance=1e-5)  # TensorFlow, here
    whole = torch_runs["tabular"]
    a, b = (json.loads((run / "run.json").read_text()) for run in (whole, tmp_path / "killed"))
    assert b["resumed_from_epoch"] == 1 and a["weights_sha256"] == b["weights_sha256"]
    assert (whole / "history.csv").read_text() == (tmp_path / "killed/history.csv").read_text()
    assert (whole / "metrics.json").read_bytes() == (tmp_path / "killed/metrics.json").read_bytes()
