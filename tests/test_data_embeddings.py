"""Pretrained vector files (dlpipe/data/embeddings.py): GloVe/word2vec text and .npy."""

from __future__ import annotations

import numpy as np
import pytest

from dlpipe.data.embeddings import embedding_matrix, read_vectors
from dlpipe.errors import DataError


def test_text_vectors_with_and_without_a_word2vec_header(tmp_path):
    body = "good 1 2 3\nbad -1 -2 -3\nunused 9 9 9\n"
    for name, text in {"glove.txt": body, "w2v.txt": "3 3\n" + body}.items():
        (tmp_path / name).write_text(text)
        found, width = read_vectors(str(tmp_path / name), None, {"good", "bad", "absent"})
        assert width == 3 and set(found) == {"good", "bad"}
        np.testing.assert_array_equal(found["bad"], [-1, -2, -3])


def test_npy_matrix_with_a_vocabulary_file(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "m.npy", matrix)
    (tmp_path / "words.txt").write_text("a\nb\nc\nd\n")
    found, width = read_vectors(str(tmp_path / "m.npy"), str(tmp_path / "words.txt"), {"c", "a"})
    assert width == 3
    np.testing.assert_array_equal(found["c"], matrix[2])
    np.testing.assert_array_equal(found["a"], matrix[0])
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"m.npy: a matrix of shape \(4, 3\) for the 2 words of .*short.txt"):
        read_vectors(str(tmp_path / "m.npy"), str(tmp_path / "short.txt"), {"a"})


def test_matrix_rows_follow_the_vocabulary_and_unknown_rows_are_seeded(tmp_path):
    (tmp_path / "v.txt").write_text("good 1 2\nbad 3 4\n")
    pretrained = {"path": str(tmp_path / "v.txt"), "vocabulary": None}
    words = [None, "bad", "meh", "good"]
    matrix, known = embedding_matrix(words, pretrained, seed=7)
    np.testing.assert_array_equal(matrix[[1, 3]], [[3, 4], [1, 2]])
    assert known.tolist() == [False, True, False, True]
    again, _ = embedding_matrix(words, pretrained, seed=7)
    np.testing.assert_array_equal(matrix, again)  # unknown rows: the same draw every time
    assert np.all(np.abs(matrix[[0, 2]]) < 10 * np.std([1, 2, 3, 4]))


def test_a_ragged_vector_file_names_its_line(tmp_path):
    (tmp_path / "v.txt").write_text("good 1 2\nbad 3\n")
    with pytest.raises(DataError, match=r"v.txt: line 2: 1 numbers after the word, expected 2"):
        read_vectors(str(tmp_path / "v.txt"), None, {"good"})
