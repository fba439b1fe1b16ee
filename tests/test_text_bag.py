"""Text as a bag of n-grams (`encoding: tfidf | count | multi_hot`, `ngrams`): one vector per
example from a TextVectorization inside the model, read by an mlp."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_tfidf_bag_trains_reloads_and_weighs_counts_by_idf(tmp_path):
    import keras

    from dlpipe.runner import run_spec

    run = run_spec(ROOT / "specs" / "text-classification.yaml", overrides=[
        "data.features=[{name: review, type: text, encoding: tfidf, ngrams: 2, vocabulary_size: 3000}]",
        "model={type: mlp, units: [16]}", "training.epochs=6", "training.optimizer.learning_rate=0.01"],
        out=tmp_path / "run", command=["pytest"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.8 > metrics["baselines"]["test"]["majority_class"]["accuracy"]
    model = keras.saving.load_model(run / "model.keras")
    layer = model.get_layer("review_vectorize")
    vocabulary = layer.get_vocabulary()
    assert vocabulary[0] == "[UNK]" and any(" " in token for token in vocabulary)  # word pairs are entries
    text = "great great product"
    bag = np.asarray(layer(np.array([[text]])))[0].reshape(-1)
    idf = np.asarray(layer._lookup_layer.idf_weights_const)
    great, pair = vocabulary.index("great"), vocabulary.index("great great") if "great great" in vocabulary else None
    assert bag[great] == pytest.approx(2 * idf[great], rel=1e-6)       # count × inverse document frequency
    if pair is not None:
        assert bag[pair] == pytest.approx(idf[pair], rel=1e-6)
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert all(entry["passed"] for entry in verification.values()), verification
