"""`predict(..., compiled=True)` (dlpipe/data/pipeline.py): on JAX, Keras' jitted predict step
instead of eager calls, with the very numbers of the eager call; elsewhere the plain call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ON_JAX = r"""
import json
from dlpipe import backend
backend.activate("jax")  # as a run imports Keras on jax (no TensorFlow)
import keras, numpy as np
from dlpipe.data.pipeline import compiled_call, predict

keras.utils.set_random_seed(3)
names = ["a", "b", "c"]
inputs = {n: keras.Input(shape=(1,), name=n) for n in names}
h = keras.layers.Concatenate()([keras.layers.Normalization(mean=1.5, variance=4.0)(inputs[n]) for n in names])
h = keras.layers.Dropout(0.5)(keras.layers.Dense(16, activation="relu")(h))
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
rng = np.random.default_rng(0)
x = {n: rng.normal(size=(37, 1)).astype("float32") for n in names}
one = {n: v[:1] for n, v in x.items()}
# Like with like: a row's numbers may differ in the last bit between batch sizes (the matrix
# product's kernel), on the eager path as well.
out = {"compiled": compiled_call(model) is not None,
       "batch_equal": bool((predict(model, x, compiled=True) == np.asarray(model(x, training=False))).all()),
       "single_equal": bool((predict(model, one, compiled=True) == np.asarray(model(one, training=False))).all()),
       "chunked_equal": bool((predict(model, x, batch_size=8, compiled=True) == predict(model, x, batch_size=8)).all()),
       "deterministic": bool((predict(model, x, compiled=True) == predict(model, x, compiled=True)).all())}

class Sampler(keras.Model):  # its own predict step: left to the plain call
    def predict_step(self, data):
        return super().predict_step(data)

sampler = Sampler(inputs, model.outputs)
out["own_predict_step"] = compiled_call(sampler) is not None
model.jit_compile = False
out["jit_off"] = compiled_call(model) is not None
print(json.dumps(out))
"""


@pytest.mark.slow
def test_compiled_predict_on_jax_gives_the_eager_numbers(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "DLPIPE_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", ON_JAX], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"compiled": True, "batch_equal": True, "single_equal": True, "chunked_equal": True,
                      "deterministic": True, "own_predict_step": False, "jit_off": False}


@pytest.mark.slow
def test_compiled_predict_is_the_plain_call_on_tensorflow():
    import keras

    from dlpipe.data.pipeline import compiled_call

    if keras.backend.backend() != "tensorflow":
        pytest.skip("this process runs another backend")  # the jax test above covers jax
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    assert compiled_call(model) is None
