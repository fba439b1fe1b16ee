"""Learning-rate schedules: the Keras schedules the optimizer is given, read at the step of a
position in training (epoch e, step k of n: step e × n + k).

The expected values are written out from each schedule's definition, not computed with
the code under test. The optimizer computes rates in float32: comparisons allow its rounding.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from pydantic import TypeAdapter

from dlpipe.spec.training import Schedule

pytestmark = pytest.mark.slow  # the schedules are Keras objects

keras = pytest.importorskip("keras")

SCHEDULE = TypeAdapter(Schedule)


def schedule(**fields):
    return SCHEDULE.validate_python(fields)


def factor(spec, t: float, epochs: int, steps_per_epoch: int = 10) -> float:
    """The rate, as a multiple of learning_rate, at position `t` (epochs)."""
    from dlpipe.training.schedules import learning_rate

    step = t * steps_per_epoch
    assert step == round(step), "choose steps_per_epoch so that the position is a whole step"
    rate = learning_rate(1.0, spec, epochs, steps_per_epoch)
    return rate if isinstance(rate, float) else float(keras.ops.convert_to_numpy(rate(int(round(step)))))


def test_no_schedule_and_constant_keep_the_rate():
    assert [factor(None, t, 10) for t in (0, 3.5, 9)] == [1.0, 1.0, 1.0]
    assert [factor(schedule(type="constant"), t, 10) for t in (0, 3.5, 9)] == [1.0, 1.0, 1.0]


def test_linear_warmup_then_constant():
    warm = schedule(type="constant", warmup_epochs=2, warmup_start=0.1)
    assert factor(warm, 0, 10) == pytest.approx(0.1)
    assert factor(warm, 1, 10) == pytest.approx(0.55)
    assert factor(warm, 0.5, 10) == pytest.approx(0.1 + 0.9 * 0.25)
    assert factor(warm, 1.9, 10) == pytest.approx(0.1 + 0.9 * 0.95)
    assert factor(warm, 2, 10) == 1.0
    assert factor(warm, 7, 10) == 1.0


def test_step_divides_every_n_epochs():
    step = schedule(type="step", every=2, factor=0.5)
    assert [factor(step, e, 10) for e in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    # 13 steps per epoch: the 13th step of epoch 1 is still before the boundary at 2.
    assert factor(step, 25 / 13, 10, steps_per_epoch=13) == 1.0
    assert factor(step, 2, 10, steps_per_epoch=13) == 0.5


def test_piecewise_switches_at_boundaries_counted_after_warmup():
    piecewise = schedule(type="piecewise", boundaries=[2, 5], factors=[0.1, 0.01], warmup_epochs=1)
    assert factor(piecewise, 0, 10) == 0.0  # warmup from 0
    assert [factor(piecewise, e, 10) for e in (1, 2, 2.9, 3, 5.9, 6, 9)] == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_exponential_smooth_and_staircase():
    smooth = schedule(type="exponential", rate=0.5)
    assert factor(smooth, 2, 10) == pytest.approx(0.25)
    assert factor(smooth, 1.5, 10) == pytest.approx(0.5 ** 1.5)
    assert factor(smooth, 0.1, 10) == pytest.approx(0.5 ** 0.1)  # every step, not once per epoch
    stairs = schedule(type="exponential", rate=0.5, staircase=True)
    assert factor(stairs, 1.5, 10) == 0.5
    assert factor(stairs, 2, 10) == 0.25


def test_cosine_decays_over_the_epochs_after_warmup():
    cosine = schedule(type="cosine", warmup_epochs=2, min_factor=0.1)
    # 10 epochs, 2 of warmup: the half cosine spans the remaining 8.
    for e in range(2, 10):
        expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (e - 2) / 8))
        assert factor(cosine, e, 10) == pytest.approx(expected)
    assert factor(cosine, 10, 10) == pytest.approx(0.1)
    assert factor(schedule(type="cosine", decay_epochs=4), 6, 10) == 0.0  # past the decay: the floor


def test_cosine_with_warm_restarts():
    sgdr = schedule(type="cosine", decay_epochs=2, restarts={"period_multiplier": 2, "peak_multiplier": 0.5})
    # Cycles: [0, 2) peak 1, [2, 6) peak 0.5, [6, 14) peak 0.25.
    assert factor(sgdr, 0, 20) == 1.0
    assert factor(sgdr, 1, 20) == pytest.approx(0.5)
    assert factor(sgdr, 2, 20) == pytest.approx(0.5)
    assert factor(sgdr, 4, 20) == pytest.approx(0.25)
    assert factor(sgdr, 6, 20) == pytest.approx(0.25)
    assert factor(sgdr, 10, 20) == pytest.approx(0.125)
    assert factor(sgdr, 14, 20) == pytest.approx(0.125)  # the fourth cycle starts at 0.5³


def test_plateau_rate_scales_after_warmup():
    from dlpipe.training.schedules import learning_rate, plateau_rates

    rate = learning_rate(0.2, schedule(type="reduce_on_plateau", warmup_epochs=1), 5, 4)
    [plateau] = plateau_rates(rate)
    plateau.scale.assign(0.5)
    values = [float(keras.ops.convert_to_numpy(rate(step))) for step in (0, 2, 4, 9)]
    assert values == pytest.approx([0.0, 0.1, 0.1, 0.1])  # the warmup ramps to the base, then base × scale


def test_plateau_reduces_after_patience_then_cools_down():
    from dlpipe.training.schedules import Plateau

    plateau = schedule(type="reduce_on_plateau", monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                       min_delta=0.01, min_factor=0.2)
    state = Plateau()
    reduced = [state.update(plateau, v) for v in (1.0, 0.995, 0.99, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6)]
    # 0.995 and 0.99 are within min_delta of 1.0: no improvement twice → reduce; 0.5 improves;
    # then 0.6 ×2 → reduce; one epoch of cooldown; 0.6 ×2 → the floor 0.2 caps the third reduction.
    assert reduced == [False, False, True, False, False, True, False, False, True, False]
    assert state.multiplier == pytest.approx(0.2)


def test_plateau_on_accuracy_maximizes():
    from dlpipe.training.schedules import Plateau

    plateau = schedule(type="reduce_on_plateau", monitor="val_accuracy", factor=0.1, patience=1, min_delta=0)
    state = Plateau()
    assert [state.update(plateau, v) for v in (0.8, 0.9, 0.85)] == [False, False, True]
    assert state.multiplier == pytest.approx(0.1)


SAVED = """
import sys
import keras
import numpy as np
from dlpipe.modelfile import load_keras_model
load_keras_model(sys.argv[1])  # how dlpipe loads model files (uncompiled), registering its classes
model = keras.saving.load_model(sys.argv[1])  # compiled: the optimizer and its schedule rebuilt
rate = model.optimizer.learning_rate
print(type(model.optimizer._learning_rate).__name__, float(keras.ops.convert_to_numpy(rate)))
"""


@pytest.mark.parametrize("spec", [{"type": "piecewise", "boundaries": [1], "factors": [0.5], "warmup_epochs": 0.5},
                                  {"type": "reduce_on_plateau", "warmup_epochs": 1}])
def test_a_model_compiled_with_a_schedule_saves_and_loads_in_a_fresh_process(spec, tmp_path):
    """A compiled model.keras holds its optimizer's schedule; it loads in another process
    once dlpipe's schedules are registered, at the step the optimizer had reached."""
    from dlpipe.training.schedules import learning_rate

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(learning_rate(0.1, schedule(**spec), 4, 2))
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 2), np.float32), np.ones((8, 1), np.float32), batch_size=4, epochs=2, verbose=0)
    assert int(optimizer.iterations.numpy()) == 4
    path = tmp_path / "model.keras"
    model.save(path)
    out = subprocess.run([sys.executable, "-c", SAVED, str(path)], capture_output=True, text=True, check=True).stdout
    name, value = out.split()
    expected = {"piecewise": ("Warmup", 0.05), "reduce_on_plateau": ("Warmup", 0.1)}[spec["type"]]
    assert (name, float(value)) == (expected[0], pytest.approx(expected[1]))
