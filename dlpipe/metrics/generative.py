"""Metrics for generated samples: Fréchet distance (FID) and Inception Score.

FID compares two sets of feature vectors (real and generated samples passed through the
same network) by the Gaussians with their means and covariances:

    FID = |μ₁ - μ₂|² + tr Σ₁ + tr Σ₂ - 2 tr (Σ₁ Σ₂)^½

The trace of the matrix square root is not taken from a general square root of the
non-symmetric product Σ₁Σ₂ (scipy.linalg.sqrtm, which squares the condition number and
returns complex round-off). With any factors F₁ᵀF₁ = Σ₁ and F₂ᵀF₂ = Σ₂, the eigenvalues of
Σ₁Σ₂ are the squared singular values of F₁F₂ᵀ, so

    tr (Σ₁ Σ₂)^½ = the sum of the singular values of F₁ F₂ᵀ.

From samples, F is the centred sample matrix / √(N - 1) whenever N ≤ D (fewer samples than
feature dimensions: 2,048 for InceptionV3), so a singular covariance is never formed, and
the result is exact to round-off; with more samples F = Σ^½ by a symmetric
eigen-decomposition, eigenvalues below the numerical-rank cutoff set to 0. For 50 samples
of 2,048 unit-variance dimensions and the same samples shifted by d, this gives |d|² to
~5e-13; the trace of sqrtm(Σ₁Σ₂) is off by ~6e-4 there. The result is clipped at 0 (FID
is a squared distance).

Features come from an extractor: `layer_extractor` (a layer of a Keras model, e.g. the
classifier trained by another dlpipe run), the classifier a generation run trains itself
(`train_classifier_extractor`), or InceptionV3's pooled features (metrics/fid.py, which
also computes each FID's real-against-real floor and recomputes a run's FID from outside).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dlpipe import progress
from dlpipe.errors import DataError

Extractor = Callable[[np.ndarray], np.ndarray]


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, N - 1) of N feature vectors."""
    features = _matrix(features)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _matrix(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    features = features.reshape(len(features), -1)
    if len(features) < 2:
        raise DataError(f"FID needs at least 2 samples per set, got {len(features)}")
    if not np.isfinite(features).all():
        raise DataError("FID: the features hold NaN or infinite values")
    return features


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance. Eigenvalues below the numerical rank
    cutoff (largest · size · machine epsilon, as numpy.linalg.matrix_rank) are round-off
    from a singular matrix and become 0, so they add nothing to the trace."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    cutoff = max(values.max(initial=0.0), 0.0) * len(values) * np.finfo(np.float64).eps
    values = np.where(values > cutoff, values, 0.0)
    return (vectors * np.sqrt(values)) @ vectors.T


def _factor(features: np.ndarray) -> np.ndarray:
    """F with Fᵀ F = the covariance: the centred samples themselves when there are no more
    of them than dimensions (exact, and the usual case for FID), else Σ^½."""
    n, dimensions = features.shape
    if n <= dimensions:
        return (features - features.mean(axis=0)) / np.sqrt(n - 1)
    return _sqrt_psd(np.atleast_2d(np.cov(features, rowvar=False)))


def _distance(shift: np.ndarray, factor_1: np.ndarray, factor_2: np.ndarray) -> float:
    # tr (Σ₁Σ₂)^½ = the sum of the singular values (nuclear norm) of F₁ F₂ᵀ.
    cross = np.linalg.svd(factor_1 @ factor_2.T, compute_uv=False).sum()
    distance = shift @ shift + np.sum(factor_1 ** 2) + np.sum(factor_2 ** 2) - 2 * cross
    return max(float(distance), 0.0)


def frechet_distance(mu_1: np.ndarray, sigma_1: np.ndarray, mu_2: np.ndarray, sigma_2: np.ndarray) -> float:
    """FID from precomputed statistics (means and covariances)."""
    mu_1, mu_2 = np.atleast_1d(np.asarray(mu_1, dtype=np.float64)), np.atleast_1d(np.asarray(mu_2, dtype=np.float64))
    sigma_1, sigma_2 = np.atleast_2d(np.asarray(sigma_1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma_2, dtype=np.float64))
    if mu_1.shape != mu_2.shape or sigma_1.shape != sigma_2.shape or sigma_1.shape != mu_1.shape * 2:
        raise ValueError(f"statistics do not fit: means {mu_1.shape} and {mu_2.shape}, "
                         f"covariances {sigma_1.shape} and {sigma_2.shape}")
    return _distance(mu_1 - mu_2, _sqrt_psd(sigma_1), _sqrt_psd(sigma_2))


def fid(real_features: np.ndarray, generated_features: np.ndarray) -> float:
    """Fréchet distance between the Gaussian statistics of two sets of features (N × D)."""
    real, generated = _matrix(real_features), _matrix(generated_features)
    if real.shape[1] != generated.shape[1]:
        raise DataError(f"FID: real features have {real.shape[1]} dimensions, generated ones {generated.shape[1]}")
    return _distance(real.mean(axis=0) - generated.mean(axis=0), _factor(real), _factor(generated))


def inception_score(probabilities: np.ndarray, splits: int = 1) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) from a classifier's class probabilities (N × K), averaged
    over `splits` equal parts (the original paper used 10). 1 when every sample gets the
    same distribution; K when predictions are one-hot and spread evenly over K classes."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits or splits < 1:
        raise DataError(f"inception score: expected N × K probabilities with N ≥ splits ({splits}), "
                        f"got shape {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = np.broadcast_to(part.mean(axis=0, keepdims=True), part.shape)
        # 0 · log 0 = 0: a class a sample gives no probability adds nothing (log 1 - log 1).
        positive = part > 0
        log_ratio = np.log(np.where(positive, part, 1)) - np.log(np.where(positive, marginal, 1))
        scores.append(np.exp((part * log_ratio).sum(axis=1).mean()))
    return float(np.mean(scores))


# Feature extractors ---------------------------------------------------------------------


def _batched(model, batch_size: int) -> Extractor:
    def extract(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        # Chunks of whole batches (the same batches as one predict call), so that a long
        # pass (InceptionV3 on thousands of images) shows its progress.
        chunk = 16 * batch_size
        parts = []
        with progress.task("FID features", total=len(images), unit="images") as step:
            for start in range(0, len(images), chunk):
                parts.append(model.predict(images[start:start + chunk], batch_size=batch_size, verbose=0))
                step.update(min(start + chunk, len(images)))
        features = np.concatenate(parts) if parts else np.zeros((0,))
        return np.asarray(features, dtype=np.float64).reshape(len(images), -1)

    return extract


def layer_extractor(model_path: str | Path, layer: str, batch_size: int = 256) -> Extractor:
    """Features = the output of `layer` of a saved Keras model (a `model.keras` file or a
    run directory holding one), flattened. The model must take one input."""
    import keras

    from dlpipe.modelfile import load_keras_model

    path = Path(model_path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    model = load_keras_model(path)
    names = [item.name for item in model.layers]
    if layer not in names:
        from dlpipe.errors import did_you_mean

        hint = did_you_mean(layer, names) or f"; layers are: {', '.join(names)}"
        raise DataError(f"{path}: no layer {layer!r}{hint}")
    if len(model.inputs) != 1:
        raise DataError(f"{path}: the model takes {len(model.inputs)} inputs; a feature extractor needs one")
    return _batched(keras.Model(model.inputs, model.get_layer(layer).output), batch_size)


def fid_from_samples(real: np.ndarray, generated: np.ndarray, extractor: Extractor) -> float:
    """FID between two sets of samples, both passed through the same extractor."""
    return fid(extractor(real), extractor(generated))


# Extractors of features and class probabilities for task generation ---------------------


def _two_outputs(model, features_layer, batch_size: int = 512):
    """A `Scorer` (metrics/scorer.py) of one model: a layer's output (features) and the
    model's output (class probabilities), as one two-output model that a run saves."""
    import keras

    from dlpipe.metrics.scorer import Scorer

    # One input tensor, not a list: the model then takes a plain array.
    both = keras.Model(model.inputs[0], [features_layer.output, model.outputs[0]], name="feature_extractor")
    return Scorer(both, batch_size=batch_size)


def train_classifier_extractor(train_images: np.ndarray, train_labels: np.ndarray, n_classes: int, *,
                               low: float, high: float, units: int, epochs: int, seed: int):
    """A small CNN trained on labeled real images: returns run(images) → (features of its
    penultimate layer `features`, softmax probabilities), and the model."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=train_images.shape[1:], name="image")
    x = keras.layers.Rescaling(2 / (high - low), offset=-(high + low) / (high - low))(inputs)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if min(x.shape[1], x.shape[2]) >= 4:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(units, activation="relu", name="features")
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(features(x))
    model = keras.Model(inputs, outputs, name="feature_extractor")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train_images.astype(np.float32), train_labels, batch_size=64, epochs=epochs, verbose=0,
              shuffle=True)
    return _two_outputs(model, features), model


def run_extractor(model_path: str | Path, layer: str | None = None, allow_unsafe: bool = False):
    """A classifier saved by an earlier dlpipe run: returns run(images) → (the output of
    `layer` — default: the layer before the output layer —, class probabilities). Loaded in
    safe mode unless `allow_unsafe` (the spec's allow_unsafe_deserialization)."""
    from dlpipe.modelfile import load_keras_model

    path = Path(model_path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise DataError(f"{path}: no such model file (give a run directory holding model.keras)")
    model = load_keras_model(path, allow_unsafe=allow_unsafe)
    if len(model.inputs) != 1:
        raise DataError(f"{path}: the model takes {len(model.inputs)} inputs; a feature extractor needs one")
    names = [item.name for item in model.layers]
    if layer is None:
        chosen = model.layers[-2]
    elif layer in names:
        chosen = model.get_layer(layer)
    else:
        from dlpipe.errors import did_you_mean

        hint = did_you_mean(layer, names) or f"; layers are: {', '.join(names)}"
        raise DataError(f"{path}: no layer {layer!r}{hint}")
    return _two_outputs(model, chosen), model
