"""Feature types, pretrained embeddings, image size/channels and augmentation, trained for
real on small generated data (numpy oracles)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dlpipe.cli import main
from dlpipe.spec import load_spec

pytestmark = pytest.mark.slow

FILLER = "the a it was is and with for of to in on my we they".split()
VECTORS = {"happy": [0.5, 0.25, -1.0, 2.0], "sad": [-0.5, 1.5, 0.0, -2.0], "the": [0.1, 0.2, 0.3, 0.4],
           "pro": [1.0, -1.0, 0.5, 0.0]}


def write_mixed(folder: Path, n: int = 600, seed: int = 1) -> float:
    """A CSV whose label depends on one column of each kind; returns the majority share."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n)
    size = rng.choice(["small", "medium", "large"], size=n)
    mood = rng.choice(["happy", "sad", "calm"], size=n)
    score = (x + np.select([plan == "pro", plan == "basic"], [1.0, -1.0], 0.0)
             + np.select([size == "large", size == "small"], [1.0, -1.0], 0.0)
             + np.select([mood == "happy", mood == "sad"], [1.5, -1.5], 0.0) + rng.normal(0, 0.3, n))
    label = (score > 0).astype(int)
    texts = [" ".join([*rng.choice(FILLER, size=4), m, *rng.choice(FILLER, size=3)]) for m in mood]
    lines = ["x,plan,size,note,label"] + [f"{x[i]:.4f},{plan[i]},{size[i]},{texts[i]},{label[i]}" for i in range(n)]
    (folder / "mixed.csv").write_text("\n".join(lines) + "\n")
    (folder / "vectors.txt").write_text(f"{len(VECTORS)} 4\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECTORS.items()))
    (folder / "spec.yaml").write_text(textwrap.dedent("""\
        name: mixed
        task: classification
        data:
          source: {type: csv, path: mixed.csv}
          features:
            - {name: x, type: numerical}
            - {name: plan, type: categorical, encoding: embedding, pretrained: {path: vectors.txt}}
            - {name: size, type: ordinal, order: [small, medium, large]}
            - {name: note, type: text, sequence_length: 10, pretrained: {path: vectors.txt, trainable: false}}
          target: {name: label}
        model: {type: mlp, units: [32]}
        training: {epochs: 12, batch_size: 32, optimizer: {type: adam, learning_rate: 3.0e-3}}
        """))
    return float(max(label.mean(), 1 - label.mean()))


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    majority = write_mixed(folder)
    result = CliRunner().invoke(main, ["run", str(folder / "spec.yaml"), "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return folder / "run", majority


def test_numerical_categorical_ordinal_and_text_together_beat_the_majority(mixed_run):
    run, majority = mixed_run
    accuracy = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    assert accuracy >= majority + 0.15, (accuracy, majority)


def test_frozen_pretrained_vectors_are_the_files_and_stay_unchanged(mixed_run):
    import keras

    run, _ = mixed_run
    model = keras.saving.load_model(run / "model.keras")
    vocabulary = model.get_layer("note_vectorize").get_vocabulary()
    table = np.asarray(model.get_layer("note_embedding").embeddings)
    assert not model.get_layer("note_embedding").trainable
    for word in ("happy", "sad", "the"):
        np.testing.assert_array_equal(table[vocabulary.index(word)], np.float32(VECTORS[word]))
    assert not np.any(table[0])  # padding
    # A category's vector: row 0 is the out-of-vocabulary bucket, then the vocabulary.
    plan = np.asarray(model.get_layer("plan_embedding").embeddings)
    vocabulary = model.get_layer("plan_lookup").get_vocabulary()
    np.testing.assert_array_equal(plan[vocabulary.index("pro")], np.float32(VECTORS["pro"]))
    assert not model.get_layer("plan_embedding").trainable


def test_ordinal_values_become_their_place_in_the_order(mixed_run):
    import keras
    import tensorflow as tf

    run, _ = mixed_run
    model = keras.saving.load_model(run / "model.keras")
    inner = keras.Model(model.get_layer("size").output, model.get_layer("size_scale").output)
    np.testing.assert_allclose(np.asarray(inner(tf.constant([["small"], ["medium"], ["large"]]))).ravel(), [0, .5, 1])


def test_predict_takes_raw_rows_of_every_kind(mixed_run, tmp_path):
    run, _ = mixed_run
    (tmp_path / "new.csv").write_text("x,plan,size,note\n2.0,pro,large,the happy one\n-2.0,basic,small,we sad it\n")
    result = CliRunner().invoke(main, ["predict", str(run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    header, first, second = (tmp_path / "p.csv").read_text().splitlines()
    assert header == "prediction,probability_0,probability_1", header
    assert first.split(",")[0] == "1" and second.split(",")[0] == "0", (first, second)


def test_trainable_pretrained_vectors_move(tmp_path):
    import keras

    from dlpipe.architectures.assemble import build_model
    from dlpipe.data.prepare import prepare
    from dlpipe.training.compile import compile_model
    from dlpipe.training.fit import train

    write_mixed(tmp_path, n=200)
    spec = load_spec(tmp_path / "spec.yaml", overrides=["data.features[3].pretrained.trainable=true",
                                                       "training.epochs=2"])
    data = prepare(spec, tmp_path, located=None)
    keras.utils.set_random_seed(0)
    model = build_model(spec, data)
    compile_model(model, spec, 2)
    layer = model.get_layer("note_embedding")
    before = np.array(layer.embeddings.numpy())
    index = model.get_layer("note_vectorize").get_vocabulary().index("happy")
    np.testing.assert_array_equal(before[index], np.float32(VECTORS["happy"]))
    train(model, spec, data)
    assert not np.allclose(np.asarray(layer.embeddings)[index], before[index])


def digits_spec(tmp_path: Path, augmentation: str, image: str = "{name: image, type: image}") -> Path:
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(f"""\
        name: digits
        task: classification
        data:
          source: {{type: builtin, name: digits}}
          features: [{image}]
          target: {{name: label}}
        prepare:
          normalization: {{image: {{type: rescale, scale: 0.0625}}}}
          augmentation: {augmentation}
        model: {{type: cnn, blocks: [{{filters: 8}}]}}
        training: {{epochs: 1, batch_size: 64}}
        """))
    return tmp_path / "spec.yaml"


ALL_IMAGE = ("[{type: flip}, {type: rotation, factor: 0.05}, {type: zoom, factor: 0.1}, "
             "{type: translation, factor: 0.1}, {type: contrast, factor: 0.2}, {type: brightness, factor: 0.1}, "
             "{type: crop, padding: 1}, {type: noise, stddev: 0.02}]")


def first_batches(spec, data, count: int = 2):
    from dlpipe.data.augment import augmenter
    from dlpipe.training.inputs import training_dataset

    train = data.splits["train"]
    dataset = training_dataset(train.x, train.y, None, batch_size=64, seed=spec.seed, first_epoch=0, epochs=1,
                               augment=augmenter(spec, data))
    return [tuple(np.asarray(part["image"] if isinstance(part, dict) else part) for part in batch)
            for batch in dataset.take(count)]


@pytest.mark.parametrize("step", ["{type: flip}", "{type: rotation, factor: 0.05}", "{type: zoom, factor: 0.1}",
                                  "{type: translation, factor: 0.1}", "{type: contrast, factor: 0.2}",
                                  "{type: brightness, factor: 0.1}", "{type: crop, padding: 1}",
                                  "{type: noise, stddev: 0.02}"])
def test_each_image_augmentation_changes_training_batches_the_same_way_every_time(tmp_path, step):
    from dlpipe.data.prepare import prepare

    plain = load_spec(digits_spec(tmp_path, "[]"))
    augmented = load_spec(digits_spec(tmp_path, f"[{step}]"))
    data = prepare(plain, tmp_path, located=None)
    off = first_batches(plain, data)
    on, again = first_batches(augmented, data), first_batches(augmented, data)
    for (x_off, y_off, _), (x_on, y_on, _), (x_again, _, _) in zip(off, on, again):
        assert np.array_equal(y_off, y_on)  # same examples, same order
        assert x_on.shape == x_off.shape and not np.allclose(x_on, x_off)
        np.testing.assert_array_equal(x_on, x_again)  # stateless: seeded by (seed, epoch, batch)
    assert not np.allclose(on[0][0][:len(on[1][0])], on[1][0])  # batches draw different changes


def test_geometric_augmentations_keep_the_image_recognisable(tmp_path):
    """Flip aside, a small rotation or shift keeps most of the picture: the augmented image
    correlates with the original far better than with another digit."""
    from dlpipe.data.prepare import prepare

    plain = load_spec(digits_spec(tmp_path, "[]"))
    data = prepare(plain, tmp_path, located=None)
    (x_off, _, _), = first_batches(plain, data, 1)
    (x_on, _, _), = first_batches(load_spec(digits_spec(tmp_path, "[{type: rotation, factor: 0.03}]")), data, 1)
    same = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(x_off, x_on)]
    other = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(x_off, np.roll(x_on, 1, axis=0))]
    assert np.median(same) > 0.8 > np.median(other) + 0.3


def test_augmented_training_leaves_no_augmentation_in_the_saved_model(tmp_path):
    import keras

    spec_path = digits_spec(tmp_path, ALL_IMAGE + "\n", image="{name: image, type: image, size: [12, 12], channels: 3}")
    result = CliRunner().invoke(main, ["run", str(spec_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    names = [type(layer).__name__ for layer in model.layers]
    assert not [n for n in names if n.startswith("Random") or n in ("GaussianNoise", "GaussianDropout")], names
    from sklearn.datasets import load_digits

    images = load_digits().images[:50, :, :, None].astype("float32")
    first, second = model.predict(images, verbose=0), model.predict(images, verbose=0)
    np.testing.assert_array_equal(first, second)
    served = json.loads((tmp_path / "run" / "export/verification.json").read_text())
    assert served["saved_model"]["max_abs_diff"] <= 1e-5 and served["saved_model"]["agreement"] == 1.0
    # size and channels happen inside the model: raw 8×8×1 in, 12×12×3 to the convolutions.
    assert model.inputs[0].shape[1:] == (8, 8, 1)
    assert model.get_layer("image_resize").output.shape[1:] == (12, 12, 3)


def test_channel_conversion_repeats_grey_and_weighs_rgb():
    from dlpipe.architectures.layers import ChannelConvert

    grey = np.arange(6, dtype="float32").reshape(1, 2, 3, 1)
    np.testing.assert_array_equal(np.asarray(ChannelConvert(3)(grey)), np.repeat(grey, 3, axis=-1))
    rgb = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
    expected = rgb @ np.array([0.299, 0.587, 0.114], "float32")
    np.testing.assert_allclose(np.asarray(ChannelConvert(1)(rgb))[..., 0], expected, rtol=1e-6)


def test_mixup_gives_each_batch_twice_with_weights_lambda_and_one_minus_lambda(tmp_path):
    """Each example's number is its own index, so a blend names its partner exactly."""
    from dlpipe.data.augment import augmenter
    from dlpipe.data.prepare import prepare
    from dlpipe.training.inputs import training_dataset

    (tmp_path / "t.csv").write_text("i,label\n" + "".join(f"{i},{i % 3}\n" for i in range(200)))
    (tmp_path / "spec.yaml").write_text(textwrap.dedent("""\
        name: t
        task: classification
        data: {source: {type: csv, path: t.csv}, target: {name: label}, split: {stratify: false}}
        model: {type: mlp}
        prepare: {augmentation: [{type: mixup, alpha: 0.4}]}
        """))
    spec = load_spec(tmp_path / "spec.yaml")
    data = prepare(spec, tmp_path, located=None)
    train = data.splits["train"]
    make = lambda augment: training_dataset(train.x, train.y, None, batch_size=32, seed=3, first_epoch=0,  # noqa: E731
                                            epochs=1, augment=augment)
    (x_off, y_off, _), = make(None).take(1)
    (x_on, y_on, w_on), = make(augmenter(spec, data)).take(1)
    own, mixed, y_off, y_on, w_on = (np.asarray(x_off["i"]).ravel(), np.asarray(x_on["i"]).ravel(),
                                     np.asarray(y_off), np.asarray(y_on), np.asarray(w_on))
    n = len(own)
    assert len(mixed) == len(y_on) == len(w_on) == 2 * n
    np.testing.assert_array_equal(mixed[:n], mixed[n:])
    np.testing.assert_array_equal(y_on[:n], y_off)
    lam = w_on[:n] / 2
    np.testing.assert_allclose(w_on[n:] / 2, 1 - lam, atol=1e-6)
    assert lam.min() >= 0 and lam.max() <= 1 and lam.std() > 0.1
    blended = lam > 0.05
    blended &= lam < 0.95  # partners are recoverable where both parts weigh something
    partner = (mixed[:n] - lam * own)[blended] / (1 - lam)[blended]
    position = {value: k for k, value in enumerate(own)}
    found = [position[round(p)] for p in partner]  # every partner is an example of the batch
    np.testing.assert_allclose(partner, np.round(partner), atol=2e-2)
    np.testing.assert_array_equal(y_on[n:][blended], y_off[found])  # the second half carries its label
    assert len(set(found)) == len(found) >= n // 4  # a permutation: no example is the partner twice


def test_series_and_tabular_augmentations_change_batches(tmp_path):
    from dlpipe.data.augment import augmenter
    from dlpipe.data.prepare import prepare
    from dlpipe.training.inputs import training_dataset

    days = np.arange(300)
    (tmp_path / "s.csv").write_text("t,level,rain\n" + "".join(f"{d},{np.sin(d / 9) * 5 + d / 30:.4f},{d % 5}\n"
                                                                 for d in days))
    base = textwrap.dedent("""\
        name: s
        task: forecasting
        data:
          source: {type: csv, path: s.csv}
          target: {name: level}
          features: [{name: rain, type: numerical}]
          windows: {lookback: 8, horizon: 2, order_by: t}
        model: {type: rnn, units: [4]}
        prepare: {augmentation: AUG}
        """)
    batches = {}
    for key, aug in {"off": "[]", "jitter": "[{type: jitter, stddev: 0.1}]",
                     "scaling": "[{type: scaling, stddev: 0.1}]"}.items():
        (tmp_path / "spec.yaml").write_text(base.replace("AUG", aug))
        spec = load_spec(tmp_path / "spec.yaml")
        data = prepare(spec, tmp_path, located=None)
        train = data.splits["train"]
        (x, y, _), = training_dataset(train.x, train.y, None, batch_size=32, seed=1, first_epoch=0, epochs=1,
                                      augment=augmenter(spec, data)).take(1)
        batches[key] = (np.asarray(x["window"]), np.asarray(y))
    x_off, y_off = batches["off"]
    x_jit, y_jit = batches["jitter"]
    assert not np.allclose(x_jit, x_off) and np.array_equal(y_jit, y_off)
    assert np.abs(x_jit - x_off).mean() < 0.2 * x_off.std(axis=(0, 1)).max()
    x_sc, y_sc = batches["scaling"]
    factor = x_sc[:, :, 0] / x_off[:, :, 0]  # one factor per example and channel
    np.testing.assert_allclose(factor, factor[:, :1].repeat(8, axis=1), rtol=1e-4)
    np.testing.assert_allclose(y_sc, y_off * factor[:, :1], rtol=1e-4)  # the labels continue the scaled series

    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(100)))
    (tmp_path / "spec.yaml").write_text(textwrap.dedent("""\
        name: t
        task: classification
        data: {source: {type: csv, path: t.csv}, target: {name: label}}
        model: {type: mlp}
        prepare: {augmentation: [{type: gaussian_noise, stddev: 0.1}]}
        """))
    spec = load_spec(tmp_path / "spec.yaml")
    data = prepare(spec, tmp_path, located=None)
    train = data.splits["train"]
    (x_on, _, _), = training_dataset(train.x, train.y, None, batch_size=16, seed=1, first_epoch=0, epochs=1,
                                     augment=augmenter(spec, data)).take(1)
    (x_off, _, _), = training_dataset(train.x, train.y, None, batch_size=16, seed=1, first_epoch=0, epochs=1).take(1)
    noise = np.asarray(x_on["a"]) - np.asarray(x_off["a"])
    assert 0.03 * train.x["a"].std() < noise.std() < 0.3 * train.x["a"].std()


def test_every_dlpipe_layer_is_registered_for_loading():
    """A layer class missing its registration saves fine and fails only when loaded."""
    import inspect

    import keras

    from dlpipe.architectures import layers

    classes = [c for _, c in inspect.getmembers(layers, inspect.isclass)
               if issubclass(c, keras.layers.Layer) and c.__module__ == layers.__name__]
    assert {"LastValue", "SubtractLast", "ChannelConvert"} <= {c.__name__ for c in classes}
    for cls in classes:
        assert keras.saving.get_registered_object(f"dlpipe>{cls.__name__}") is cls, cls.__name__


def test_a_changed_vector_file_changes_the_stage_keys(tmp_path):
    from dlpipe.stagecache import stage_keys

    write_mixed(tmp_path, n=20)
    spec = load_spec(tmp_path / "spec.yaml")
    before = stage_keys(spec, tmp_path)
    with (tmp_path / "vectors.txt").open("a") as handle:
        handle.write("calm 0 0 0 1\n")
    after = stage_keys(spec, tmp_path)
    assert before["data"] != after["data"] and before["train"] != after["train"]


BUILD = """
import json, sys
from pathlib import Path
import keras
import numpy as np
from dlpipe.architectures.assemble import build_model
from dlpipe.data.prepare import prepare
from dlpipe.spec import load_spec

found = {"backend": keras.backend.backend()}
for path in sys.argv[1:]:
    spec = load_spec(path)
    data = prepare(spec, Path(path).parent, None)
    model = build_model(spec, data)
    output = np.asarray(model.predict({k: v[:4] for k, v in data.splits["test"].x.items()}, verbose=0))
    found[path] = [int(model.count_params()), output.round(4).tolist()]
print(json.dumps(found))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_forecasting_and_image_size_layers_build_on_every_backend(tmp_path, backend):
    """LastValue, SubtractLast, ChannelConvert and Resizing are keras.ops / keras.layers:
    the same models build on JAX with the same parameter counts."""
    import importlib.util
    import os
    import subprocess
    import sys

    if backend == "jax" and importlib.util.find_spec("jax") is None:  # in the test extra: CI fails rather than skips
        from _system import require

        require(False, "jax is not installed", "pip install 'dlpipe[jax]'")
    (tmp_path / "s.csv").write_text("t,level\n" + "".join(f"{d},{np.sin(d / 5):.4f}\n" for d in range(120)))
    (tmp_path / "f.yaml").write_text("name: f\ntask: forecasting\ndata: {source: {type: csv, path: s.csv}, "
                                     "target: {name: level}, windows: {lookback: 6, horizon: 2, order_by: t}}\n"
                                     "model: {type: rnn, cell: gru, units: [4]}\n")
    image = digits_spec(tmp_path, "[]", image="{name: image, type: image, size: [12, 12], channels: 3}")
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / "f.yaml"), str(image)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found.pop("backend") == backend
    parameters = {Path(p).stem: count for p, (count, _) in found.items()}
    # GRU(4) on 1 channel: 3·(4·(1+4) + 2·4) = 84; head 4·2 + 2 = 10. Conv 3×3 on 3 channels: 8·27 + 8 = 224; 8·10 + 10.
    assert parameters == {"f": 84 + 10, "spec": 224 + 90}
    forecast = np.asarray(found[str(tmp_path / "f.yaml")][1])
    assert forecast.shape == (4, 2) and np.isfinite(forecast).all()
