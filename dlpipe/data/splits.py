"""Seeded train/validation/test splits, stratified by class when asked."""

from __future__ import annotations

import numpy as np


def split_indices(n: int, fractions: dict[str, float], seed: int,
                  strata: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices for each named split. With `strata`, every class is divided in the same
    proportions (each split's count per class is within one example of exact)."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == c) for c in np.unique(strata)]
    names = list(fractions)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for group in groups:
        group = rng.permutation(group)
        # Counts by largest remainder, so that they sum to the group's size exactly.
        exact = np.array([fractions[name] * len(group) for name in names])
        counts = np.floor(exact).astype(int)
        short = len(group) - counts.sum()
        for i in np.argsort(-(exact - counts), kind="stable")[:short]:
            counts[i] += 1
        start = 0
        for name, count in zip(names, counts):
            parts[name].append(group[start:start + count])
            start += count
    return {name: np.sort(np.concatenate(parts[name])) if parts[name] else np.array([], dtype=np.int64)
            for name in names}
