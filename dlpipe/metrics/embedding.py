"""Embedding metrics: how well the autoencoder reproduces its input, and how well its
embeddings keep examples of one label together.

`reconstruction_mse(original, reconstruction)`: the mean over examples and values of the
squared difference, on normalized inputs (what the decoder is trained to reproduce).

`knn_accuracy(train_embeddings, train_labels, embeddings, labels, neighbors)`: scikit-learn's
k-nearest-neighbours classifier (Euclidean distance, majority vote) fitted on the training
split's embeddings and scored on another split's. A chance-level number means the
embedding lost what tells the labels apart.
"""

from __future__ import annotations

import numpy as np


def reconstruction_mse(original: np.ndarray, reconstruction: np.ndarray) -> float:
    original = np.asarray(original, dtype=np.float64).reshape(len(original), -1)
    reconstruction = np.asarray(reconstruction, dtype=np.float64).reshape(original.shape)
    return float(np.mean(np.square(reconstruction - original)))


def knn_accuracy(train_embeddings: np.ndarray, train_labels: np.ndarray, embeddings: np.ndarray,
                 labels: np.ndarray, neighbors: int = 5) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    train_embeddings = np.asarray(train_embeddings, dtype=np.float64).reshape(len(train_embeddings), -1)
    embeddings = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    knn = KNeighborsClassifier(n_neighbors=min(neighbors, len(train_embeddings)))
    knn.fit(train_embeddings, np.asarray(train_labels))
    return float(knn.score(embeddings, np.asarray(labels)))


def evaluate(models, spec, data, targets: dict[str, np.ndarray], splits) -> dict[str, dict[str, float]]:
    """{split: {metric: value}} for the spec's metrics. `models` is an
    architectures.autoencoder.EmbeddingModels; `targets` the normalized inputs per split."""
    from dlpipe.data.pipeline import predict

    train_embeddings = None
    if "knn_accuracy" in spec.evaluation.metrics:
        train_embeddings = predict(models.encoder, data.splits["train"].x)
    metrics = {}
    for name in splits:
        split = data.splits[name]
        if not len(split):
            continue
        values = {}
        for metric in spec.evaluation.metrics:
            if metric == "reconstruction_mse":
                values[metric] = reconstruction_mse(targets[name], predict(models.autoencoder, split.x))
            elif metric == "knn_accuracy":
                values[metric] = knn_accuracy(train_embeddings, data.splits["train"].y,
                                              predict(models.encoder, split.x), split.y,
                                              spec.evaluation.knn_neighbors)
        metrics[name] = values
    return metrics
