"""Datasets bundled with scikit-learn (installed with dlpipe; nothing is downloaded)."""

from __future__ import annotations

import numpy as np

from dlpipe.data.table import Table


def _frame(bunch, name: str, target: str = "target") -> Table:
    columns = {str(n): np.asarray(bunch.data[:, i], dtype=np.float32) for i, n in enumerate(bunch.feature_names)}
    columns[target] = np.asarray(bunch.target)
    names = {target: [str(n) for n in bunch.target_names]} if hasattr(bunch, "target_names") else {}
    return Table(columns, origin=f"builtin:{name}", class_names=names)


def load_digits() -> Table:
    """1,797 handwritten digits, 8×8 pixels valued 0..16, columns `image` and `label`."""
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    images = bunch.images.astype(np.float32)[..., np.newaxis]  # (N, 8, 8, 1)
    return Table({"image": images, "label": bunch.target.astype(np.int64)}, origin="builtin:digits",
                  class_names={"label": [str(n) for n in bunch.target_names]})


def load_iris() -> Table:
    from sklearn.datasets import load_iris as sk_load

    return _frame(sk_load(), "iris")


def load_wine() -> Table:
    from sklearn.datasets import load_wine as sk_load

    return _frame(sk_load(), "wine")


def load_breast_cancer() -> Table:
    """569 patients, 30 measurements; target 0 = malignant, 1 = benign."""
    from sklearn.datasets import load_breast_cancer as sk_load

    return _frame(sk_load(), "breast_cancer")


def load_diabetes() -> Table:
    """442 patients, 10 baseline variables (already centred and scaled); target: disease
    progression after one year (a number)."""
    from sklearn.datasets import load_diabetes as sk_load

    bunch = sk_load()
    table = _frame(bunch, "diabetes")
    table.columns["target"] = table.columns["target"].astype(np.float32)
    return table
