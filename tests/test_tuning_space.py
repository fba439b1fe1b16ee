"""Sampling the search space with dlpipe's samplers: bounds, log scales, steps, the grid.

Optuna draws the parameters exactly as in `dlpipe tune`; the objective here is a cheap
formula of the drawn values, because these tests are about where the samplers look, not
about training (tests/test_tuning.py runs real trials).
"""

from __future__ import annotations

import itertools
import math
import textwrap

import pytest

optuna = pytest.importorskip("optuna")
stats = pytest.importorskip("scipy.stats")

from dlpipe.spec import load_spec  # noqa: E402
from dlpipe.tuning import space  # noqa: E402
from dlpipe.tuning.study import make_sampler  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPEC = """\
version: 1
name: bc
task: classification
data:
  source: {type: builtin, name: breast_cancer}
  target: {name: target}
model: {type: mlp, units: [16]}
tuning:
  sampler: {type: SAMPLER}
  search:
    training.optimizer.learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-1}
    model.dropout: {type: uniform, low: 0.1, high: 0.4}
    model.head.dropout: {type: uniform, low: 0.0, high: 0.5, step: 0.05}
    training.batch_size: {type: int, low: 8, high: 128, step: 8}
    model.units[0]: {type: int, low: 4, high: 256, log: true}
    model.activation: {type: choice, values: [relu, gelu, tanh]}
"""


def tuning_of(tmp_path, sampler: str, search: str | None = None):
    text = SPEC.replace("SAMPLER", sampler)
    if search is not None:
        text = text.split("  search:\n")[0] + "  search:\n" + textwrap.indent(textwrap.dedent(search), "    ")
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    spec = load_spec(path)
    return spec, space.dimensions(spec.tuning.search)


def run_study(spec, dims, n_trials: int, storage=None, name=None):
    study = optuna.create_study(sampler=make_sampler(spec.tuning, dims, spec.seed), storage=storage,
                                study_name=name, load_if_exists=True, direction="minimize")
    drawn = []

    def objective(trial):
        values = {d.key: d.suggest(trial) for d in dims}
        drawn.append((trial.number, values))
        # Best near lr 1e-3, dropout 0.2, batch 32.
        return ((math.log10(values["training.optimizer.learning_rate"]) + 3) ** 2
                + (values["model.dropout"] - 0.2) ** 2 + abs(values["training.batch_size"] - 32) / 100)

    study.optimize(objective, n_trials=n_trials)
    return study, drawn


def check_bounds(drawn):
    for _, v in drawn:
        assert 1e-5 <= v["training.optimizer.learning_rate"] <= 1e-1
        assert 0.1 <= v["model.dropout"] <= 0.4
        head = v["model.head.dropout"]
        assert 0.0 <= head <= 0.5 and head == round(round(head / 0.05) * 0.05, 12)
        assert 8 <= v["training.batch_size"] <= 128 and v["training.batch_size"] % 8 == 0
        assert 4 <= v["model.units[0]"] <= 256 and isinstance(v["model.units[0]"], int)
        assert v["model.activation"] in ("relu", "gelu", "tanh")


def test_random_sampler_respects_bounds_steps_and_log_scales(tmp_path):
    spec, dims = tuning_of(tmp_path, "random")
    study, drawn = run_study(spec, dims, 300)
    check_bounds(drawn)
    rates = [v["training.optimizer.learning_rate"] for _, v in drawn]
    # Log-uniform over four decades: each decade holds a quarter of the draws (a linear
    # uniform would put 90 % in the top decade); log10 is uniform on [-5, -1].
    assert stats.kstest([math.log10(r) for r in rates], stats.uniform(loc=-5, scale=4).cdf).pvalue > 0.01
    per_decade = [sum(10.0 ** (d - 1) <= r < 10.0 ** d for r in rates) / len(rates) for d in range(-4, 0)]
    assert all(0.17 < share < 0.33 for share in per_decade), per_decade
    dropouts = [v["model.dropout"] for _, v in drawn]
    assert stats.kstest(dropouts, stats.uniform(loc=0.1, scale=0.3).cdf).pvalue > 0.01
    # The log-scaled int: as many draws in 4..16 as in 64..256 (two doublings each).
    units = [v["model.units[0]"] for _, v in drawn]
    low, high = sum(u <= 16 for u in units), sum(u >= 64 for u in units)
    assert abs(low - high) < 0.25 * len(units), (low, high)
    distributions = study.trials[0].distributions
    assert distributions["training.optimizer.learning_rate"].log is True
    assert distributions["model.units[0]"].log is True
    assert distributions["model.dropout"].log is False


def test_bayesian_sampler_respects_bounds_and_closes_in(tmp_path):
    spec, dims = tuning_of(tmp_path, "bayesian")
    assert spec.tuning.sampler.startup_trials == 10
    study, drawn = run_study(spec, dims, 40)
    check_bounds(drawn)
    for trial in study.trials:
        assert trial.distributions["training.optimizer.learning_rate"].log is True
    values = [t.value for t in study.trials]
    # After 10 random trials TPE samples near the good ones: the last 15 are better
    # than the random start on the median.
    assert sorted(values[-15:])[7] < sorted(values[:10])[5]


def test_grid_sampler_covers_exactly_the_grid(tmp_path):
    spec, dims = tuning_of(tmp_path, "grid", """\
        training.optimizer.learning_rate: {type: choice, values: [1.0e-4, 1.0e-3]}
        model.dropout: {type: uniform, low: 0.1, high: 0.3, step: 0.1}
        training.batch_size: {type: int, low: 16, high: 32, step: 16}
    """)
    assert spec.tuning.trials == 12
    study, drawn = run_study(spec, dims, 100)  # the grid sampler stops the study when done
    points = sorted(tuple(v[k] for k in sorted(v)) for _, v in drawn)
    expected = sorted(itertools.product([0.1, 0.2, 0.3], [16, 32], [1e-4, 1e-3]))  # keys sorted
    assert points == expected
    assert len(study.trials) == 12


def test_each_trial_number_has_its_own_seed(tmp_path):
    """Two workers of one study draw different points; a new study repeats trial N's draw."""
    spec, dims = tuning_of(tmp_path, "random")
    storage = optuna.storages.InMemoryStorage()
    drawn = []
    for _ in range(3):  # two workers, taking turns on one storage
        for _worker in range(2):
            drawn += run_study(spec, dims, 1, storage=storage, name="shared")[1]
    assert [n for n, _ in drawn] == [0, 1, 2, 3, 4, 5]
    rates = [v["training.optimizer.learning_rate"] for _, v in drawn]
    assert len(set(rates)) == 6
    again = run_study(spec, dims, 6)[1]
    assert again == drawn


@pytest.mark.parametrize("pruner, expected", [
    ("{type: none}", ("NopPruner", {})),
    ("{type: median, startup_trials: 3, warmup_epochs: 2}",
     ("MedianPruner", {"_n_startup_trials": 3, "_n_warmup_steps": 2})),
    ("{type: hyperband, min_epochs: 2, reduction_factor: 4}",
     ("HyperbandPruner", {"_min_resource": 2, "_max_resource": 7, "_reduction_factor": 4})),
])
def test_pruners_follow_the_spec(tmp_path, pruner, expected):
    from dlpipe.tuning.study import make_pruner

    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("SAMPLER", "random").replace("  search:", f"  pruner: {pruner}\n  search:")
                    + "training: {epochs: 7}\n")
    spec = load_spec(path)
    made = make_pruner(spec.tuning, spec)
    name, attributes = expected
    assert type(made).__name__ == name
    assert {k: getattr(made, k) for k in attributes} == attributes


def test_hyperband_measures_epochs_itself_when_they_are_searched(tmp_path):
    from dlpipe.tuning.study import make_pruner

    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("SAMPLER", "random").replace("  search:", "  pruner: {type: hyperband}\n  search:")
                    + "    training.epochs: {type: int, low: 2, high: 8}\n")
    spec = load_spec(path)
    assert make_pruner(spec.tuning, spec)._max_resource == "auto"
