"""`backend:` in the spec: templates train on JAX without importing TensorFlow, resume
exactly, and their .keras files load on TensorFlow (and back); what JAX cannot run is refused
at validate time in one line.

Each JAX run is a fresh process (Keras picks its backend once per process) started with
TensorFlow looking uninstalled (`NO_TENSORFLOW`: every import finder answers "not found" for
it, so `importlib.util.find_spec` says None and `import tensorflow` fails, as on a machine
without it): a run that imported TensorFlow anywhere would fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

NO_TENSORFLOW = """
import sys
class Hidden:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find is not None else None
    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)
sys.meta_path[:] = [Hidden(finder) for finder in sys.meta_path]
"""


def without_tensorflow(code: str, *, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh process in which `import tensorflow` fails."""
    environment = {**os.environ, **(env or {})}
    environment.pop("KERAS_BACKEND", None)
    return subprocess.run([sys.executable, "-c", NO_TENSORFLOW + code], capture_output=True, text=True,
                          env=environment, timeout=timeout)


def dlpipe_without_tensorflow(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return without_tensorflow(f"from dlpipe.cli import main\nsys.argv = ['dlpipe', *{list(args)!r}]\nmain()",
                              env=env)


def validate(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["validate", "--no-cache", *args])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


# Validate time: one line for what a backend cannot run (no TensorFlow imported) -----------------

def test_backend_defaults_to_tensorflow():
    from dlpipe.spec import load_spec

    assert load_spec(SPECS / "tabular-classification.yaml").backend == "tensorflow"
    assert validate(str(SPECS / "tabular-classification.yaml"), "--set", "backend=jax")[0] == 0


def test_string_features_on_jax_are_refused_in_one_line():
    code, lines = validate(str(SPECS / "text-classification.yaml"), "--set", "backend=jax")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("--set:1:9: backend: backend jax runs numerical"), lines
    assert "data.features[0] (text) maps strings to ids with TensorFlow string ops" in lines[0]
    assert "needs backend: tensorflow" in lines[0]


def test_strategies_on_jax_are_refused_and_augmentation_is_not(tmp_path):
    spec = SPECS / "image-classification.yaml"
    code, lines = validate(str(spec), "--set", "backend=jax", "--set", "prepare.augmentation=[{type: flip}]",
                           "--set", "training.strategy=mirrored", "--set", "evaluation.explain={}")
    assert code == 1 and len(lines) == 1, lines  # every reason in one line, at backend
    assert lines[0].startswith("--set:1:9: backend: ") and "needs backend: tensorflow" in lines[0], lines
    assert "training.strategy mirrored is a tf.distribute strategy" in lines[0]
    assert "evaluation.explain takes gradients with TensorFlow" in lines[0]
    assert "augmentation" not in lines[0]  # NumPy changes the batches on jax (data/augment_numpy.py)
    assert validate(str(spec), "--set", "backend=jax", "--set", "prepare.augmentation=[{type: flip}]")[0] == 0


def test_every_task_honours_backend_and_each_template_validates_on_jax_or_says_why():
    """Every task's pipeline reads `backend` (none refuses it), and every template validates
    with backend jax except text-classification, refused in one line naming its string features."""
    from dlpipe import tasks
    from dlpipe.spec import load_spec

    for path in sorted(SPECS.glob("*.yaml")):
        task = tasks.get(load_spec(path).task)
        assert "backend" in task.honours and "backend" not in task.refusals, (path.name, task.name)
        code, lines = validate(str(path), "--set", "backend=jax")
        if path.stem == "text-classification":
            assert code == 1 and len(lines) == 1 and "strings to ids" in lines[0], lines
        else:
            assert code == 0, (path.name, lines)


def test_without_tensorflow_saved_model_is_refused_naming_the_package():
    """No TensorFlow installed: backend jax validates with keras export, and saved_model is
    refused at its line, naming the package; the default backend names it too."""
    spec = str(SPECS / "tabular-classification.yaml")
    result = dlpipe_without_tensorflow("validate", "--no-cache", spec, "--set", "backend=jax")
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "export.formats[1]" in lines[0], lines
    assert "saved_model export needs the tensorflow package, which is not installed" in lines[0]
    result = dlpipe_without_tensorflow("validate", "--no-cache", spec, "--set", "backend=jax",
                                       "--set", "export.formats=[keras]")
    assert result.returncode == 0 and "valid" in result.stdout, result.stderr
    result = dlpipe_without_tensorflow("validate", "--no-cache", spec, "--set", "export.formats=[keras]")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, lines
    assert ":backend" not in lines[0] and "backend tensorflow (the default) needs the tensorflow package" in lines[0]
    assert "set backend: jax" in lines[0]


@pytest.mark.slow
def test_deep_validate_builds_a_jax_spec_without_tensorflow():
    """`dlpipe validate --deep` builds the model on the spec's backend: a jax spec is built
    and summarized where TensorFlow cannot be imported (the digits CNN's 82,090 parameters, as
    on TensorFlow)."""
    spec = str(SPECS / "image-classification.yaml")
    jax = ("--set", "backend=jax", "--set", "export.formats=[keras]")
    result = dlpipe_without_tensorflow("validate", "--no-cache", "--deep", spec, *jax)
    assert result.returncode == 0, result.stderr
    assert "parameters: 82090 (trainable 82090" in result.stdout and result.stdout.endswith("valid\n"), result.stdout


def test_a_remembered_result_is_not_replayed_once_tensorflow_is_gone(tmp_path):
    """The cache keeps which packages validation looked up: a result remembered with
    TensorFlow installed is checked afresh without it."""
    spec = str(SPECS / "tabular-classification.yaml")
    env = {"DLPIPE_CACHE_DIR": str(tmp_path)}
    first = subprocess.run([sys.executable, "-m", "dlpipe.cli", "validate", spec, "--set", "backend=jax"],
                           capture_output=True, text=True, env={**os.environ, **env})
    assert first.returncode == 0, first.stderr
    again = dlpipe_without_tensorflow("validate", spec, "--set", "backend=jax", env=env)
    assert again.returncode == 1 and "saved_model export needs the tensorflow package" in again.stderr


# Training on JAX ------------------------------------------------------------------------------

@pytest.mark.slow
def test_keras_imported_on_another_backend_is_refused_in_one_line():
    code = ("import os, sys\nos.environ['KERAS_BACKEND'] = 'jax'\nimport keras\nfrom dlpipe.cli import main\n"
            f"sys.argv = ['dlpipe', 'run', {str(SPECS / 'tabular-classification.yaml')!r}]\nmain()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: backend: tensorflow: Keras was already imported in this process with backend jax "
                     "(it reads KERAS_BACKEND once, at its first import); run this spec in a new process"], lines


LEAN = """
import numpy as np, os, sys, tempfile
from dlpipe import backend
backend.activate("jax")
loaded = lambda name: type(sys.modules.get(name)).__name__ == "module"
print(sorted(name for name in ("sklearn", "matplotlib", "pandas", "requests", "h5py", "tensorflow",
                               "jax.experimental.pallas") if loaded(name)))
import keras
print(keras.wrappers.SKLearnClassifier.__name__, "sklearn" in sys.modules)
import pandas
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
frame = pandas.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
path = os.path.join(tempfile.mkdtemp(), "m.keras")
model.save(path)
print(np.allclose(keras.saving.load_model(path).predict(frame, verbose=0), model.predict(frame.to_numpy(), verbose=0)))
from keras.src.backend.jax import nn
print(nn.splash_attention_mask.CausalMask.__name__)
"""


@pytest.mark.slow
def test_keras_on_jax_imports_without_what_a_run_does_not_use():
    """`backend.activate('jax')` imports Keras without scikit-learn, matplotlib, pandas,
    requests, h5py and Pallas; each still works when first used (pandas DataFrames reach
    `predict`, .keras files save and load, the scikit-learn wrappers resolve)."""
    result = without_tensorflow(LEAN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["[]", "SKLearnClassifier True", "True", "CausalMask"]


JAX_TEMPLATES = {
    # (the --set overrides shortening the run, metric, trivial baseline's value, margin, higher is better)
    "tabular-classification": (("training.epochs=20",), "accuracy", 0.63, 0.25, True),  # majority class: 0.63
    "tabular-regression": (("training.epochs=40",), "mse", 6395.0, 1500.0, False),  # the mean predictor: ~6,395
    "image-classification": (("training.epochs=6",), "accuracy", 0.10, 0.5, True),  # 10 classes
}


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("jax")
    runs = {}
    for name, (sets, *_) in JAX_TEMPLATES.items():
        out = folder / name
        args = ["run", str(SPECS / f"{name}.yaml"), "--set", "backend=jax", "--set", "export.formats=[keras]",
                "--set", "training.progress=none", *[a for s in sets for a in ("--set", s)], "--out", str(out)]
        result = dlpipe_without_tensorflow(*args, env={"DLPIPE_CACHE_DIR": str(folder / "cache")})
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = out
    # JAX's compilation cache (dlpipe/backend.py) holds the compiled steps for the next run.
    assert len(list((folder / "cache" / "jax").iterdir())) >= 3
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JAX_TEMPLATES))
def test_template_trains_on_jax_without_tensorflow(name, jax_runs):
    run = jax_runs[name]
    _, metric, baseline, margin, higher = JAX_TEMPLATES[name]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["backend"] == "jax"
    assert "jax" in record["versions"] and "tensorflow" not in record["versions"]
    assert record["training"]["jit_compile"] is True and record["deterministic"] is True
    value = json.loads((run / "metrics.json").read_text())["test"][metric]
    assert (value >= baseline + margin) if higher else (value <= baseline - margin), (metric, value)
    assert (run / "model.keras").is_file() and (run / "export" / "keras" / "model.keras").is_file()
    assert not (run / "logs").exists()  # training.tensorboard: auto writes none on jax
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert verification["keras"]["passed"] is True


@pytest.mark.slow
def test_keras_files_cross_backends(jax_runs, tmp_path):
    """A .keras written on JAX loads on TensorFlow (this process) with the same outputs, and one
    written on TensorFlow loads on JAX (a fresh process) with the same outputs."""
    import keras

    from dlpipe.modelfile import load_keras_model

    assert keras.backend.backend() == "tensorflow"
    run = jax_runs["image-classification"]
    x = np.random.default_rng(0).uniform(0, 16, (32, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    predict = ("import os, numpy as np\nos.environ['KERAS_BACKEND'] = 'jax'\n"
               "from dlpipe.modelfile import load_keras_model\n"
               f"model = load_keras_model({{path!r}})\n"
               f"np.save({str(tmp_path)!r} + '/{{out}}', np.asarray(model({{{{'image': np.load({str(tmp_path / 'x.npy')!r})}}}}, "
               "training=False)))\nimport keras\nassert keras.backend.backend() == 'jax'\n")
    result = without_tensorflow(predict.format(path=str(run / "model.keras"), out="jax.npy"))
    assert result.returncode == 0, result.stderr[-3000:]
    on_jax = np.load(tmp_path / "jax.npy")
    model = load_keras_model(run / "model.keras")
    on_tensorflow = np.asarray(model({"image": x}, training=False))
    np.testing.assert_allclose(on_tensorflow, on_jax, atol=1e-5)
    model.save(tmp_path / "from_tensorflow.keras")  # written by TensorFlow's Keras
    result = without_tensorflow(predict.format(path=str(tmp_path / "from_tensorflow.keras"), out="back.npy"))
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "back.npy"), on_tensorflow, atol=1e-5)


RESUME_SETS = ("--set", "backend=jax", "--set", "export.formats=[keras]", "--set", "training.epochs=3",
               "--set", "training.progress=none")


@pytest.mark.slow
def test_jax_run_killed_mid_training_resumes_to_the_same_bits(tmp_path):
    """Killed (SIGKILL) in epoch 2 after epoch 1's checkpoint, then resumed: the weights are
    bit-identical to an uninterrupted run's (each epoch's order is a function of seed and epoch;
    JAX on a CPU is deterministic; the later runs load the first one's compiled steps)."""
    spec = str(SPECS / "tabular-classification.yaml")
    cache = {"DLPIPE_CACHE_DIR": str(tmp_path / "cache")}  # compiled by the first run, loaded by the others
    whole = dlpipe_without_tensorflow("run", spec, *RESUME_SETS, "--out", str(tmp_path / "whole"), env=cache)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = dlpipe_without_tensorflow("run", spec, *RESUME_SETS, "--out", str(tmp_path / "killed"),
                                       env={"DLPIPE_TEST_KILL_AT": "train:20", **cache})  # 13 batches an epoch
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert json.loads((tmp_path / "killed/checkpoints/last.json").read_text())["epoch"] == 1
    resumed = dlpipe_without_tensorflow("run", spec, *RESUME_SETS, "--out", str(tmp_path / "killed"), "--resume",
                                        env=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    a, b = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("whole", "killed"))
    assert b["resumed_from_epoch"] == 1
    assert a["weights_sha256"] == b["weights_sha256"]
    assert (tmp_path / "whole/history.csv").read_text() == (tmp_path / "killed/history.csv").read_text()


AFTER_TRAINING = """
import json
from dlpipe.cli import main
for args in {commands!r}:
    try:
        main(args, standalone_mode=False)
    except SystemExit as err:
        assert not err.code, (args, err.code)
import keras
assert keras.backend.backend() == "jax" and "tensorflow" not in sys.modules
"""


@pytest.mark.slow
def test_a_jax_run_is_evaluated_exported_predicted_and_served_without_tensorflow(jax_runs, tmp_path):
    """`dlpipe evaluate`, `export --format keras`, `predict` and `serve` of a JAX run load its
    model on JAX (run.json's backend) in a process where TensorFlow cannot be imported, and
    give what TensorFlow gives for the same file."""
    from _server import Server
    from test_serve import assert_same, breast_cancer_rows

    from dlpipe.prediction import Predictor

    run = jax_runs["tabular-classification"]
    rows = breast_cancer_rows(20)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "predicted.jsonl"
    commands = [["evaluate", str(run)], ["export", str(run), "--format", "keras"],
                ["predict", str(run), str(data), "--out", str(out)]]
    result = without_tensorflow(AFTER_TRAINING.format(commands=commands))
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = dict(line.split("\t")[1:] for line in result.stdout.splitlines() if line.startswith("test\t"))
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert abs(float(evaluated["accuracy"]) - trained["accuracy"]) < 1e-6
    assert "keras            verified" in result.stdout
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    assert_same(predicted, Predictor.open(run).predict(rows), tolerance=1e-5)  # on TensorFlow, this process

    server = Server(run)
    server.command = [sys.executable, "-c", NO_TENSORFLOW + "from dlpipe.cli import main\nmain()\n",
                      *server.command[3:]]
    with server:
        status, answer = server.request("/v1/models/breast-cancer-mlp:predict", {"instances": rows})
        assert status == 200, answer
        assert_same(answer["predictions"], predicted)


# A backbone's fine-tune schedule on JAX ---------------------------------------------------------

FINE_TUNE_SETS = ("--set", "backend=jax", "--set", "training.progress=none", "--set", "evaluation.baselines=false")


def _kill_at_checkpoint(tmp_path, later: Path, out: Path, epoch: int, kill_at: str, *extra: str) -> None:
    """Run (or resume) `later` into `out`, killed by SIGKILL at `kill_at`; its last checkpoint
    must then be `epoch`'s."""
    killed = dlpipe_without_tensorflow("run", str(later), *FINE_TUNE_SETS, "--out", str(out), *extra,
                                       env={"DLPIPE_TEST_KILL_AT": kill_at, "DLPIPE_CACHE_DIR": str(tmp_path / "cache")})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert json.loads((out / "checkpoints/last.json").read_text())["epoch"] == epoch


@pytest.mark.slow
def test_fine_tune_on_jax_freezes_unfreezes_and_resumes_to_the_same_bits(tmp_path):
    """tests/test_backbone.py's earlier run (digits 0–4) and fine-tune (digits 5–9, the body
    frozen for 1 epoch of 4) on JAX without TensorFlow: history shows phase 0 → 1 and the
    trainable parameters and rate change with it; after the frozen epoch every weight of the
    body, batch-norm statistics included, is the earlier run's bit for bit; a run killed in
    epoch 2, resumed, killed again in epoch 3 (after the unfreeze) and resumed again ends with
    the uninterrupted run's weights and history."""
    import csv

    from test_backbone import EARLIER, LATER

    from dlpipe.modelfile import load_keras_model
    from dlpipe.training import checkpoints

    cache = {"DLPIPE_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "earlier.yaml").write_text(EARLIER)
    (tmp_path / "later.yaml").write_text(LATER)
    earlier = dlpipe_without_tensorflow("run", str(tmp_path / "earlier.yaml"), *FINE_TUNE_SETS,
                                        "--out", str(tmp_path / "earlier"), env=cache)
    assert earlier.returncode == 0, earlier.stderr[-3000:]
    whole = dlpipe_without_tensorflow("run", str(tmp_path / "later.yaml"), *FINE_TUNE_SETS,
                                      "--out", str(tmp_path / "whole"), env=cache)
    assert whole.returncode == 0, whole.stderr[-3000:]
    run = tmp_path / "whole"
    record = json.loads((run / "run.json").read_text())
    assert record["backend"] == "jax" and "tensorflow" not in record["versions"]
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["phase"] for row in rows] == ["0.0", "1.0", "1.0", "1.0"]
    frozen, unfrozen = float(rows[0]["trainable_params"]), float(rows[1]["trainable_params"])
    assert frozen == 16 * 5 + 5 and unfrozen > frozen + 1000  # the new output layer alone, then the body too
    assert float(rows[0]["learning_rate"]) == pytest.approx(0.01) and float(rows[1]["learning_rate"]) == pytest.approx(0.001)
    assert json.loads((run / "metrics.json").read_text())["test"]["accuracy"] > 0.4  # 5 classes: 0.2 by chance
    assert json.loads((run / "export" / "verification.json").read_text())["keras"]["passed"] is True

    # 28 batches an epoch (plus a kill point per checkpoint file written): 40 is in epoch 2.
    out = tmp_path / "killed"
    _kill_at_checkpoint(tmp_path, tmp_path / "later.yaml", out, 1, "train:40")
    body = load_keras_model(tmp_path / "earlier" / "model.keras")
    body_weights = [w for layer in body.layers if layer.name not in ("head_dense_0", "output")
                    for w in layer.get_weights()]
    saved = checkpoints.read(out / "checkpoints" / "last.npz").model
    assert len(body_weights) >= 6  # two convolutions, one batch norm (4 weights)
    for weights in body_weights:  # the frozen epoch left the body as the earlier run made it
        assert any(w.shape == weights.shape and np.array_equal(w, weights) for w in saved), weights.shape
    _kill_at_checkpoint(tmp_path, tmp_path / "later.yaml", out, 2, "train:40", "--resume")
    resumed = dlpipe_without_tensorflow("run", str(tmp_path / "later.yaml"), *FINE_TUNE_SETS, "--out", str(out),
                                        "--resume", env=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["weights_sha256"] == record["weights_sha256"]
    assert (out / "history.csv").read_bytes() == (run / "history.csv").read_bytes()
    assert (out / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes()


# prepare.augmentation on JAX (NumPy: data/augment_numpy.py) -------------------------------------

AUGMENTED_SETS = ("--set", "backend=jax", "--set", "export.formats=[keras]", "--set", "training.progress=none",
                  "--set", "evaluation.baselines=false", "--set", "training.epochs=4")
AUGMENTATION = ("--set", "prepare.augmentation=[{type: rotation, factor: 0.03}, {type: zoom, factor: 0.1}, "
                "{type: translation, factor: 0.1}, {type: brightness, factor: 0.05}, {type: noise, stddev: 0.02}]")


@pytest.mark.slow
def test_augmented_images_train_on_jax_and_resume_to_the_same_bits(tmp_path):
    """The digits CNN with five image augmentations on JAX without TensorFlow: it learns
    (accuracy band), its first epoch's training loss is higher than an unaugmented run's
    (harder batches: the changes reach training), and a run killed in epoch 2 resumes to the
    uninterrupted run's weights (each batch's changes are seeded by seed, epoch and batch)."""
    spec = str(SPECS / "image-classification.yaml")
    cache = {"DLPIPE_CACHE_DIR": str(tmp_path / "cache")}
    whole = dlpipe_without_tensorflow("run", spec, *AUGMENTED_SETS, *AUGMENTATION, "--out", str(tmp_path / "whole"),
                                      env=cache)
    assert whole.returncode == 0, whole.stderr[-3000:]
    accuracy = json.loads((tmp_path / "whole/metrics.json").read_text())["test"]["accuracy"]
    assert 0.6 <= accuracy, accuracy  # 10 classes; seen 0.83 after 4 epochs
    checkpoints = {}
    for name, augmentation in (("killed", AUGMENTATION), ("plain", ())):  # 23 batches an epoch: 30 is in epoch 2
        killed = dlpipe_without_tensorflow("run", spec, *AUGMENTED_SETS, *augmentation, "--out", str(tmp_path / name),
                                           env={"DLPIPE_TEST_KILL_AT": "train:30", **cache})
        assert killed.returncode == -9, killed.stderr[-3000:]
        checkpoints[name] = json.loads((tmp_path / name / "checkpoints/last.json").read_text())
        assert checkpoints[name]["epoch"] == 1
    assert checkpoints["killed"]["logs"]["loss"] > checkpoints["plain"]["logs"]["loss"] + 0.05, checkpoints
    resumed = dlpipe_without_tensorflow("run", spec, *AUGMENTED_SETS, *AUGMENTATION, "--out", str(tmp_path / "killed"),
                                        "--resume", env=cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("whole", "killed"))
    assert b["resumed_from_epoch"] == 1 and a["weights_sha256"] == b["weights_sha256"]
    assert (tmp_path / "whole/history.csv").read_text() == (tmp_path / "killed/history.csv").read_text()
