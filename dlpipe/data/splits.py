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


def kfold_indices(n: int, test: float, folds: int, fold: int, seed: int,
                  strata: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """k-fold: `test` of the rows held out (as split_indices would), the rest in `folds`
    seeded folds of (nearly) equal size, stratified like split_indices; fold `fold`
    validates and the other folds train. Every fold index sees the same test rows."""
    outer = split_indices(n, {"rest": 1.0 - test, "test": test}, seed, strata)
    rest = outer["rest"]
    parts = split_indices(len(rest), {f"fold{i}": 1.0 / folds for i in range(folds)}, seed + 1,
                          None if strata is None else strata[rest])
    validation = rest[parts[f"fold{fold}"]]
    train = np.sort(np.concatenate([rest[parts[f"fold{i}"]] for i in range(folds) if i != fold]))
    return {"train": train, "validation": validation, "test": outer["test"]}


def time_ordered_split(times: np.ndarray, fractions: dict[str, float], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows sorted by time; the first fraction trains, the next validates, the last tests.
    A boundary never falls inside a group of equal times (it moves back to the group's
    start), so every training time is earlier than every validation and test time."""
    order = np.argsort(times, kind="stable")
    times = times[order]
    n = len(times)
    names = list(fractions)
    cuts, total = [], 0.0
    for name in names[:-1]:
        total += fractions[name]
        cut = int(round(total * n))
        # Move back to the first row of this time so equal times stay together (no look-ahead).
        cut = int(np.searchsorted(times, times[cut], side="left")) if 0 < cut < n else cut
        cuts.append(max(cut, cuts[-1] if cuts else 0))
    bounds = [0, *cuts, n]
    return {name: np.sort(rows[order[bounds[i]:bounds[i + 1]]]) for i, name in enumerate(names)}
