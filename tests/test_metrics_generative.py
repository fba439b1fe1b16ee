"""FID and Inception Score: exact cases, properties, references; the feature extractors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from dlpipe.errors import DataError
from dlpipe.metrics.generative import fid, frechet_distance, inception_score, statistics


def sqrtm_reference(mu_1, sigma_1, mu_2, sigma_2) -> float:
    """The textbook formula with scipy's general matrix square root (accurate only when
    both covariances are well conditioned)."""
    root = np.real(scipy.linalg.sqrtm(sigma_1 @ sigma_2))
    return float((mu_1 - mu_2) @ (mu_1 - mu_2) + np.trace(sigma_1) + np.trace(sigma_2) - 2 * np.trace(root))


# Samples × dimensions: many samples (full-rank covariance), and fewer samples than
# dimensions (singular covariance), down to 2 samples; 2,048 is InceptionV3's width.
SHAPES = [(400, 6), (60, 60), (30, 64), (10, 256), (50, 2048), (2, 16)]


def from_statistics(x: np.ndarray, y: np.ndarray) -> float | None:
    """frechet_distance on the covariances; skipped for 2,048 dimensions, whose two
    eigen-decompositions take minutes on a busy 2-core machine."""
    return frechet_distance(*statistics(x), *statistics(y)) if x.shape[1] <= 256 else None


@pytest.mark.parametrize("n, d", SHAPES)
def test_identical_statistics_give_zero(n, d):
    x = np.random.default_rng(n * d).normal(size=(n, d)) * np.linspace(0.01, 30, d)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    assert from_statistics(x, x) in (None, pytest.approx(0.0, abs=1e-6))


@pytest.mark.parametrize("n, d", SHAPES)
def test_mean_shift_gives_its_squared_length(n, d):
    rng = np.random.default_rng(n + d)
    x, shift = rng.normal(size=(n, d)), rng.normal(0, 2, size=d)
    expected = float(shift @ shift)
    assert fid(x, x + shift) == pytest.approx(expected, abs=1e-6)
    assert fid(x + shift, x) == pytest.approx(expected, abs=1e-6)
    assert from_statistics(x, x + shift) in (None, pytest.approx(expected, abs=1e-6))


@pytest.mark.parametrize("seed", range(20))
def test_singular_covariances_exact(seed):
    """Σ₁ = Q diag(a) Qᵀ, Σ₂ = Q diag(b) Qᵀ with many zero eigenvalues: the distance is
    |μ₁ - μ₂|² + Σ (√aᵢ - √bᵢ)² exactly."""
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 80))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = np.where(rng.random(d) < 0.6, 0.0, rng.uniform(0, 9, d))
    b = np.where(rng.random(d) < 0.6, 0.0, rng.uniform(0, 9, d))
    mu_1, mu_2 = rng.normal(size=d), rng.normal(size=d)
    expected = (mu_1 - mu_2) @ (mu_1 - mu_2) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu_1, q @ np.diag(a) @ q.T, mu_2, q @ np.diag(b) @ q.T) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(30))
def test_nonnegative_symmetric_and_equal_to_sqrtm_when_well_conditioned(seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 12))
    x = rng.normal(size=(int(rng.integers(d + 30, 300)), d)) @ rng.normal(size=(d, d))
    y = rng.normal(rng.normal(size=d), rng.uniform(0.2, 3), size=(int(rng.integers(d + 30, 300)), d))
    forward, backward = fid(x, y), fid(y, x)
    assert forward >= 0
    assert forward == pytest.approx(backward, rel=1e-12, abs=1e-12)
    assert forward == pytest.approx(sqrtm_reference(*statistics(x), *statistics(y)), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_nonnegative_and_symmetric_with_few_samples(seed):
    rng = np.random.default_rng(100 + seed)
    x, y = rng.normal(size=(8, 300)), rng.normal(0.01, 1.0, size=(12, 300))
    assert fid(x, y) >= 0 and fid(x, x[::-1]) == pytest.approx(0.0, abs=1e-6)
    assert fid(x, y) == pytest.approx(fid(y, x), rel=1e-12)


def test_fid_input_errors():
    with pytest.raises(DataError, match="FID needs at least 2 samples per set, got 1"):
        fid(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(DataError, match="FID: real features have 3 dimensions, generated ones 4"):
        fid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(DataError, match="FID: the features hold NaN or infinite values"):
        fid(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_inception_score_exact_cases():
    assert inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0, abs=1e-12)
    one_hot = np.eye(7)[np.arange(70) % 7]
    assert inception_score(one_hot) == pytest.approx(7.0, abs=1e-12)
    assert inception_score(one_hot, splits=10) == pytest.approx(7.0, abs=1e-12)
    # Confident but always the same class: no diversity, score 1.
    assert inception_score(np.eye(4)[np.zeros(20, dtype=int)]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_inception_score_equals_kl_reference(seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(int(rng.integers(2, 12)), rng.uniform(0.05, 2)), size=int(rng.integers(20, 200)))
    p[rng.random(p.shape) < 0.1] = 0  # exact zeros: 0 · log 0 = 0
    p /= p.sum(axis=1, keepdims=True)
    splits = int(rng.integers(1, 6))
    expected = np.mean([np.exp(np.mean([scipy.stats.entropy(row, part.mean(axis=0)) for row in part]))
                        for part in np.array_split(p, splits)])
    assert inception_score(p, splits) == pytest.approx(expected, rel=1e-9)


def test_inception_score_input_errors():
    with pytest.raises(DataError, match=r"expected N × K probabilities with N ≥ splits \(10\), got shape \(5, 3\)"):
        inception_score(np.full((5, 3), 1 / 3), splits=10)
