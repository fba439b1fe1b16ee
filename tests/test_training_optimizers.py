"""Optimizers built from the spec: each one learns, and its parameters have their effect.

Updates are checked against the update rules written out by hand (SGD with momentum and
Nesterov, decoupled weight decay, the three clipping modes).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from dlpipe import registry
from dlpipe.spec.training import Optimizer

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras")

OPTIMIZER = TypeAdapter(Optimizer)
# Rates at which each rule gets well down a small quadratic bowl in 60 steps (Adadelta's
# step size is tiny by design; Adafactor scales steps by the weights' size).
RATES = {"adadelta": 20.0, "adafactor": 0.5, "lion": 0.02, "ftrl": 0.5, "adagrad": 0.5}


def make(**fields):
    from dlpipe.training.compile import make_optimizer

    return make_optimizer(OPTIMIZER.validate_python(fields))


def step(optimizer, variables, gradients):
    optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gradients], variables))
    return [np.asarray(v.numpy()) for v in variables]


def compiled_step(optimizer, variables):
    """`step` as one traced graph: eager Keras updates cost ~10 ms each on a busy CPU."""
    import tensorflow as tf

    @tf.function
    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    return lambda gradients: apply([tf.constant(g) for g in gradients])


@pytest.mark.parametrize("name", registry.names("optimizer"))
def test_each_optimizer_descends_a_quadratic(name):
    target = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)
    matrix = keras.Variable(np.ones((4, 3), np.float32))  # 2-D: Muon's orthogonalised path
    vector = keras.Variable(np.ones(3, np.float32))
    optimizer = make(type=name, learning_rate=RATES.get(name, 0.05))
    assert type(optimizer) is registry.load("optimizer", name)

    def loss():
        return float(np.sum((matrix.numpy() - target) ** 2) + np.sum((vector.numpy() + 0.5) ** 2))

    before = loss()
    descend = compiled_step(optimizer, [matrix, vector])
    for _ in range(60):  # the bowl's gradient, written out: 2 (w − w*)
        descend([2 * (matrix.numpy() - target), 2 * (vector.numpy() + 0.5)])
    assert loss() < 0.5 * before, f"{name}: loss {before:.3f} → {loss():.3f}"


def test_spec_parameters_reach_the_keras_optimizer():
    optimizer = make(type="rmsprop", learning_rate=0.02, rho=0.8, momentum=0.5, centered=True, weight_decay=0.01)
    config = optimizer.get_config()
    assert (config["rho"], config["momentum"], config["centered"], config["weight_decay"]) == (0.8, 0.5, True, 0.01)
    assert float(optimizer.learning_rate) == pytest.approx(0.02)
    ftrl = make(type="ftrl", l1_regularization_strength=0.3, learning_rate_power=-0.25).get_config()
    assert (ftrl["l1_regularization_strength"], ftrl["learning_rate_power"]) == (0.3, -0.25)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_nesterov_follow_the_update_rule(nesterov):
    lr, m, g = 0.1, 0.9, np.array([1.0, -2.0], np.float32)
    w = keras.Variable(np.zeros(2, np.float32))
    optimizer = make(type="sgd", learning_rate=lr, momentum=m, nesterov=nesterov)
    velocity, expected = np.zeros(2), np.zeros(2)
    for _ in range(3):
        velocity = m * velocity - lr * g
        expected = expected + (m * velocity - lr * g if nesterov else velocity)
        (got,) = step(optimizer, [w], [g])
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_adamw_decays_weights_where_adam_does_not():
    start = np.array([2.0, -4.0], np.float32)
    zero = np.zeros(2, np.float32)
    adam_w, adamw_w = keras.Variable(start), keras.Variable(start)
    (after_adam,) = step(make(type="adam", learning_rate=0.1), [adam_w], [zero])
    (after_adamw,) = step(make(type="adamw", learning_rate=0.1, weight_decay=0.5), [adamw_w], [zero])
    np.testing.assert_array_equal(after_adam, start)  # no gradient, no change
    np.testing.assert_allclose(after_adamw, start * (1 - 0.1 * 0.5), rtol=1e-6)  # w ← w − lr·wd·w


def test_weight_decay_shrinks_trained_weights():
    """Least squares trained with Adam and with AdamW from the same start: decoupled weight
    decay ends with a smaller weight vector (and still fits the data)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = x @ rng.normal(size=6).astype(np.float32)
    found = {}
    for name, extra in (("adam", {}), ("adamw", {"weight_decay": 1.0})):
        w = keras.Variable(np.zeros(6, np.float32))
        descend = compiled_step(make(type=name, learning_rate=0.05, **extra), [w])
        for _ in range(150):
            descend([2 * x.T @ (x @ w.numpy() - y) / len(y)])
        found[name] = w.numpy()
    norm = {name: float(np.linalg.norm(w)) for name, w in found.items()}
    assert norm["adamw"] < 0.8 * norm["adam"], norm
    assert np.mean((x @ found["adam"] - y) ** 2) < 0.01


def test_clipnorm_bounds_each_gradient_norm():
    w = keras.Variable(np.zeros(2, np.float32))
    (got,) = step(make(type="sgd", learning_rate=1.0, clipnorm=1.0), [w], [np.array([30.0, 40.0], np.float32)])
    np.testing.assert_allclose(got, [-0.6, -0.8], rtol=1e-6)  # the direction kept, the norm 1
    unclipped = keras.Variable(np.zeros(2, np.float32))
    (got,) = step(make(type="sgd", learning_rate=1.0), [unclipped], [np.array([30.0, 40.0], np.float32)])
    np.testing.assert_allclose(got, [-30.0, -40.0])


def test_clipvalue_bounds_each_element():
    w = keras.Variable(np.zeros(3, np.float32))
    (got,) = step(make(type="sgd", learning_rate=1.0, clipvalue=0.5), [w], [np.array([3.0, -0.2, -7.0], np.float32)])
    np.testing.assert_allclose(got, [-0.5, 0.2, 0.5], rtol=1e-6)


def test_global_clipnorm_bounds_all_gradients_together():
    a, b = keras.Variable(np.zeros(1, np.float32)), keras.Variable(np.zeros(1, np.float32))
    got = step(make(type="sgd", learning_rate=1.0, global_clipnorm=1.0), [a, b],
               [np.array([30.0], np.float32), np.array([40.0], np.float32)])
    # Per-variable clipnorm would move each by 1; the global norm scales both by 1/50.
    np.testing.assert_allclose(np.concatenate(got), [-0.6, -0.8], rtol=1e-6)
