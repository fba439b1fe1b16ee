"""Learning-rate schedules as functions of the position in training (no TensorFlow).

The expected values are written out from each schedule's definition, not computed with
the code under test.
"""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter

from dlpipe.spec.training import Schedule
from dlpipe.training.schedules import Plateau, factor

SCHEDULE = TypeAdapter(Schedule)


def schedule(**fields):
    return SCHEDULE.validate_python(fields)


def test_no_schedule_and_constant_keep_the_rate():
    assert [factor(None, t, 10) for t in (0, 3.5, 9)] == [1.0, 1.0, 1.0]
    assert [factor(schedule(type="constant"), t, 10) for t in (0, 3.5, 9)] == [1.0, 1.0, 1.0]


def test_linear_warmup_then_constant():
    warm = schedule(type="constant", warmup_epochs=2, warmup_start=0.1)
    assert factor(warm, 0, 10) == pytest.approx(0.1)
    assert factor(warm, 1, 10) == pytest.approx(0.55)
    assert factor(warm, 0.5, 10) == pytest.approx(0.1 + 0.9 * 0.25)
    assert factor(warm, 2, 10) == 1.0
    assert factor(warm, 7, 10) == 1.0


def test_step_divides_every_n_epochs():
    step = schedule(type="step", every=2, factor=0.5)
    assert [factor(step, e, 10) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    # 13 steps per epoch: the 13th step of epoch 1 is still before the boundary at 2.
    assert factor(step, 1 + 12 / 13, 10) == 1.0


def test_piecewise_switches_at_boundaries_counted_after_warmup():
    piecewise = schedule(type="piecewise", boundaries=[2, 5], factors=[0.1, 0.01], warmup_epochs=1)
    assert factor(piecewise, 0, 10) == 0.0  # warmup from 0
    assert [factor(piecewise, e, 10) for e in (1, 2, 2.9, 3, 5.9, 6, 9)] == [1, 1, 1, 0.1, 0.1, 0.01, 0.01]


def test_exponential_smooth_and_staircase():
    smooth = schedule(type="exponential", rate=0.5)
    assert factor(smooth, 2, 10) == pytest.approx(0.25)
    assert factor(smooth, 1.5, 10) == pytest.approx(0.5 ** 1.5)
    stairs = schedule(type="exponential", rate=0.5, staircase=True)
    assert factor(stairs, 1.5, 10) == 0.5


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


def test_plateau_reduces_after_patience_then_cools_down():
    plateau = schedule(type="reduce_on_plateau", monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                       min_delta=0.01, min_factor=0.2)
    state = Plateau()
    reduced = [state.update(plateau, v) for v in (1.0, 0.995, 0.99, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6)]
    # 0.995 and 0.99 are within min_delta of 1.0: no improvement twice → reduce; 0.5 improves;
    # then 0.6 ×2 → reduce; one epoch of cooldown; 0.6 ×2 → the floor 0.2 caps the third reduction.
    assert reduced == [False, False, True, False, False, True, False, False, True, False]
    assert state.multiplier == pytest.approx(0.2)


def test_plateau_on_accuracy_maximizes():
    plateau = schedule(type="reduce_on_plateau", monitor="val_accuracy", factor=0.1, patience=1, min_delta=0)
    state = Plateau()
    assert [state.update(plateau, v) for v in (0.8, 0.9, 0.85)] == [False, False, True]
    assert state.multiplier == pytest.approx(0.1)
