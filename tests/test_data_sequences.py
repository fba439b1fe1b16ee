"""Sequence and token features, the npz source, multi-label and per-step targets, and the
generated order_pairs dataset — the data side of the sequence architectures (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlpipe.data.builtin import load_order_pairs
from dlpipe.data.prepare import prepare
from dlpipe.errors import DataError, SpecError
from dlpipe.spec.loader import parse
from dlpipe.spec.validation import locate, validate_document


def prepared(text: str, base: Path = Path(".")):
    doc = parse(text, "s.yaml")
    spec = validate_document(doc)
    return prepare(spec, base, lambda path, message: SpecError([locate(doc, path, message)]))


def npz_spec(features: str, target: str = "{name: y}", model: str = "{type: rnn}", task: str = "classification",
             extra: str = "") -> str:
    return (f"name: t\ntask: {task}\ndata:\n  source: {{type: npz, path: d.npz}}\n  features: {features}\n"
            f"  target: {target}\n  split: {{train: 0.6, validation: 0.2, test: 0.2}}\nmodel: {model}\n{extra}")


def test_order_pairs_only_order_tells_the_classes_apart():
    table = load_order_pairs()
    tokens, label = table.columns["tokens"], table.columns["label"]
    assert tokens.shape == (2000, 16) and abs(label.mean() - 0.5) < 0.05
    for row in range(len(tokens)):
        a = [i for i in range(15) if tuple(tokens[row, i:i + 2]) == (1, 2)]
        b = [i for i in range(15) if tuple(tokens[row, i:i + 2]) == (3, 4)]
        assert len(a) == 1 and len(b) == 1 and label[row] == (a[0] < b[0])
        # A and B appear nowhere else: every row holds ids 1..4 exactly once each.
        assert [int((tokens[row] == k).sum()) for k in (1, 2, 3, 4)] == [1, 1, 1, 1]
        assert table.columns["a_seen"][row].tolist() == [int(i > a[0]) for i in range(16)]
        np.testing.assert_allclose(table.columns["positions"][row], [a[0] / 16, b[0] / 16])
    # The signal carries the same events: channel 0 is high where A is, channel 1 where B is.
    signal = table.columns["signal"]
    assert signal.shape == (2000, 16, 2)
    on_a = np.isin(tokens, (1, 2))
    assert signal[..., 0][on_a].mean() > 1.2 and abs(signal[..., 0][~on_a].mean()) < 0.05
    # Seeded: the same rows every time.
    np.testing.assert_array_equal(load_order_pairs().columns["tokens"], tokens)


def test_token_and_sequence_features_from_the_builtin_source():
    data = prepared("name: t\ntask: classification\ndata:\n  source: {type: builtin, name: order_pairs}\n"
                    "  features: [{name: tokens, type: tokens}, {name: signal, type: sequence}]\n"
                    "  target: {name: label}\nmodel: {type: rnn}\n"
                    "prepare: {normalization: {sequence: {type: zscore}}}\n")
    tokens, signal = data.features
    assert (tokens.type, tokens.shape, tokens.dtype, tokens.vocabulary_size, tokens.normalization) == \
        ("tokens", (16,), "int32", 10, "none")
    assert (signal.type, signal.shape, signal.dtype, signal.normalization) == ("sequence", (16, 2), "float32", "zscore")
    train = data.splits["train"].x["signal"].astype(np.float64)
    np.testing.assert_allclose(signal.mean, train.mean(axis=(0, 1)), rtol=1e-9)  # per channel, train only
    assert data.splits["train"].x["tokens"].dtype == np.int32
    assert data.describe()["features"][0]["vocabulary_size"] == 10


def test_npz_source_with_a_one_channel_sequence_and_per_step_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(50, 7)).astype(np.float32), y=rng.integers(0, 3, size=(50, 7)))
    data = prepared(npz_spec("[{name: x, type: sequence}]", model="{type: rnn, return_sequences: true}"), tmp_path)
    assert data.features[0].shape == (7, 1)  # a 1-D array per example is one channel
    assert data.splits["train"].y.shape == (30, 7) and data.class_names == ["0", "1", "2"]


def test_a_two_dimensional_class_target_needs_to_say_what_it_is(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4), np.float32), y=np.zeros((10, 4), np.int64))
    with pytest.raises(DataError) as caught:
        prepared(npz_spec("[{name: x, type: sequence}]", extra=""), tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'd.npz'}: column 'y' holds (4,) labels per example; set "
                                 "data.target.multi_label (any of K classes) or model.return_sequences "
                                 "(one class per step)")


def test_multi_label_targets(tmp_path):
    y = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]] * 5)
    np.savez(tmp_path / "d.npz", x=np.arange(20, dtype=np.float32), y=y)
    data = prepared(npz_spec("[{name: x, type: numerical}]", "{name: y, multi_label: true, class_names: [a, b, c]}",
                             "{type: mlp}"), tmp_path)
    assert data.class_names == ["a", "b", "c"] and data.splits["train"].y.dtype == np.float32
    assert data.splits["train"].y.shape == (12, 3)
    np.savez(tmp_path / "d.npz", x=np.arange(20, dtype=np.float32), y=np.where(y == 1, 2, 0))
    with pytest.raises(DataError) as caught:
        prepared(npz_spec("[{name: x, type: numerical}]", "{name: y, multi_label: true}", "{type: mlp}"), tmp_path)
    assert str(caught.value) == f"{tmp_path / 'd.npz'}: row 0, column 'y': multi-label indicators must be 0 or 1, got [2, 0, 2]"


def test_token_ids_are_checked(tmp_path):
    ids = np.tile(np.arange(5), (10, 1))
    np.savez(tmp_path / "d.npz", t=ids, y=np.arange(10) % 2)
    text = npz_spec("[{name: t, type: tokens, vocabulary_size: 4}]")
    with pytest.raises(SpecError) as caught:
        prepared(text, tmp_path)
    assert str(caught.value) == ("s.yaml:5:55: data.features[0].vocabulary_size: column 't' holds token id 4, "
                                 "outside vocabulary_size 4")
    ids[3, 2] = -1
    np.savez(tmp_path / "d.npz", t=ids, y=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"row 3, column 't': negative token id -1$"):
        prepared(npz_spec("[{name: t, type: tokens}]"), tmp_path)


def test_a_sequence_feature_needs_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", t=np.arange(10, dtype=np.float32), y=np.arange(10) % 2)
    with pytest.raises(SpecError) as caught:
        prepared(npz_spec("[{name: t, type: sequence}]"), tmp_path)
    assert str(caught.value) == ("s.yaml:5:21: data.features[0].name: column 't' holds values of shape (); a sequence "
                                 "feature needs one array of steps × channels per example")


def test_tokens_cannot_be_normalized(tmp_path):
    np.savez(tmp_path / "d.npz", t=np.ones((10, 3), np.int64), y=np.arange(10) % 2)
    with pytest.raises(SpecError) as caught:
        prepared(npz_spec("[{name: t, type: tokens}]", extra="prepare: {normalization: {t: {type: zscore}}}\n"),
                 tmp_path)
    assert str(caught.value) == "s.yaml:9:30: prepare.normalization.t: 't' holds token ids; they cannot be normalized"


def test_npz_arrays_of_different_lengths(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 3)), y=np.zeros(9))
    with pytest.raises(DataError) as caught:
        prepared(npz_spec("[{name: x, type: sequence}]"), tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'd.npz'}: array 'y' has 9 rows, 'x' has 10; every array is a column "
                                 "and needs one row per example")
