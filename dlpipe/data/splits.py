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


def split_record(origin: str, rows: dict[str, np.ndarray], table=None, windows: bool = False) -> dict:
    """What splits.json holds: for each split, the source's row numbers (0-based among its
    data rows; a CSV's header is not counted) or, for a folder source, the examples' files
    (relative to the folder); with a file per split (`data.split.files`), row numbers within
    each split's own file. `rows` are indices into `table` as prepare() read it."""
    record: dict = {"source": origin}
    pieces = table.pieces if table is not None else []
    files = table.row_files if table is not None else None
    if files is not None:
        from pathlib import Path

        root = Path(origin)
        record["unit"] = "file"
        record["about"] = "each example's file, relative to the source folder"
        record["splits"] = {name: [Path(files[i]).relative_to(root).as_posix() if Path(files[i]).is_relative_to(root)
                                   else files[i] for i in index.tolist()] for name, index in rows.items()}
        return record
    record["unit"] = "row"
    if windows:
        record["about"] = ("0-based number, among the source's data rows, of the row each window starts at "
                           "(a CSV's header is not counted)")
    else:
        record["about"] = "0-based number of each example's row among the source's data rows (a CSV's header is not counted)"
    if pieces:
        import bisect

        starts = [start for start, _ in pieces]
        record["about"] += "; with a file per split, rows of that split's own file"
        record["files"], record["splits"] = {}, {}
        for name, index in rows.items():
            if not len(index):
                record["splits"][name] = []
                continue
            start, piece = pieces[bisect.bisect_right(starts, int(index[0])) - 1]
            record["files"][name] = piece.origin
            record["splits"][name] = np.asarray(index, dtype=np.int64) - start
        return record
    record["splits"] = {name: np.asarray(index, dtype=np.int64) for name, index in rows.items()}
    return record
