"""Pretrained vectors from a local file: word2vec/GloVe text, or a .npy matrix with a
vocabulary file. Only the rows of the words a model needs are kept in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe import readlog
from dlpipe.errors import DataError


def read_vectors(path: str, vocabulary: str | None, wanted: set[str]) -> tuple[dict[str, np.ndarray], int]:
    """({word: vector} for the wanted words found in the file, the vectors' length)."""
    if path.endswith(".npy"):
        return _npy(Path(path), Path(vocabulary), wanted)
    return _text(Path(path), wanted)


def _text(path: Path, wanted: set[str]) -> tuple[dict[str, np.ndarray], int]:
    found: dict[str, np.ndarray] = {}
    width = None
    readlog.opened(path)
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's "count dimension" header
            if len(parts) < 2:
                continue
            if width is None:
                width = len(parts) - 1
            elif len(parts) - 1 != width:
                raise DataError(f"{path}: line {number}: {len(parts) - 1} numbers after the word, expected {width} "
                                "(as on the first vector line)")
            if parts[0] in wanted and parts[0] not in found:
                try:
                    found[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}: line {number}: the vector of {parts[0]!r} holds a non-number") from None
    if width is None:
        raise DataError(f"{path}: no vectors (expected lines of `word v1 v2 ...`)")
    return found, width


def _npy(path: Path, vocabulary: Path, wanted: set[str]) -> tuple[dict[str, np.ndarray], int]:
    readlog.opened(path)
    readlog.opened(vocabulary)
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise DataError(f"{path}: not a NumPy array file ({error})") from None
    words = vocabulary.read_text(encoding="utf-8").splitlines()
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise DataError(f"{path}: a matrix of shape {matrix.shape} for the {len(words)} words of {vocabulary}; "
                        "expected one row per word")
    return ({word: np.asarray(matrix[i], dtype=np.float32) for i, word in enumerate(words) if word in wanted},
            int(matrix.shape[1]))


def embedding_matrix(words: list[str | None], pretrained: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(one row per word, a mask of the rows taken from the file). Rows of words the file
    lacks (and None: padding / out-of-vocabulary slots) are drawn from N(0, σ²) with the
    file's own σ, seeded; a None at index 0 of a text vocabulary (padding) is zeros."""
    wanted = {w for w in words if w is not None}
    found, width = read_vectors(pretrained["path"], pretrained.get("vocabulary"), wanted)
    scale = float(np.std(np.stack(list(found.values())))) if found else 0.1
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, scale or 0.1, size=(len(words), width)).astype(np.float32)
    known = np.zeros(len(words), dtype=bool)
    for i, word in enumerate(words):
        if word in found:
            matrix[i], known[i] = found[word], True
    return matrix, known
