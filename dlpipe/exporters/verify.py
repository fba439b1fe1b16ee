"""Check every export against the trained model on held-out examples."""

from __future__ import annotations

import numpy as np

from dlpipe.errors import StageError


def compare(reference: np.ndarray, exported: np.ndarray, classifier: bool) -> dict:
    reference = np.asarray(reference, dtype=np.float64)
    exported = np.asarray(exported, dtype=np.float64).reshape(reference.shape)
    diff = np.abs(reference - exported)
    result = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "samples": int(len(reference))}
    if classifier:
        if reference.shape[-1] == 1:
            agree = (reference[:, 0] >= 0.5) == (exported[:, 0] >= 0.5)
        else:
            agree = reference.argmax(axis=-1) == exported.argmax(axis=-1)
        result["agreement"] = float(agree.mean())
    return result


def check(results: dict[str, dict], tolerance: float, mode: str) -> list[str]:
    """Mark each result passed or not; raise (mode error) or return warnings (mode warn)."""
    problems = []
    for name, result in results.items():
        result["tolerance"] = tolerance
        result["passed"] = result["max_abs_diff"] <= tolerance
        if not result["passed"]:
            problems.append(f"{name}: max abs diff {result['max_abs_diff']:.3g} exceeds the tolerance {tolerance:g}")
    if problems and mode == "error":
        raise StageError("export", "; ".join(problems) + " (see export/verification.json)")
    return problems
