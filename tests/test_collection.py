"""The `dlpipe run` process's garbage-collector policy (dlpipe/collection.py)."""

import gc

import pytest

from dlpipe import collection


@pytest.fixture
def restored_collector():
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()
    collection._paused = False


def test_pause_then_settle_freezes_and_collects_less_often(restored_collector):
    gc.enable()
    collection.pause()
    assert not gc.isenabled()
    collection.settle()
    assert gc.isenabled()
    assert gc.get_threshold() == collection.THRESHOLDS
    assert gc.get_freeze_count() > 0
    # A cycle made after settling is still freed.
    cycle = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


def test_settle_without_pause_leaves_the_collector_alone(restored_collector):
    gc.enable()
    before = gc.get_threshold()
    collection.settle()  # dlpipe.run(...) from a program: the caller's collector as it was
    assert gc.isenabled() and gc.get_threshold() == before


def test_the_command_called_in_process_leaves_the_collector_alone(restored_collector, tmp_path):
    """`main` called by a program (or a test's CliRunner) is not the `dlpipe` executable."""
    from click.testing import CliRunner

    from dlpipe.cli import main

    gc.enable()
    before = gc.get_threshold()
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ntask: classification\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert gc.isenabled() and gc.get_threshold() == before and gc.get_freeze_count() == 0
