"""Check an export against the trained model on held-out examples."""

from __future__ import annotations

import numpy as np

SINGLES = 3
"""Examples also run one at a time: some runtimes fail or differ only for other batch sizes."""


def compare(reference: np.ndarray, exported: np.ndarray, classifier: bool) -> dict:
    reference = np.asarray(reference, dtype=np.float64)
    exported = np.asarray(exported, dtype=np.float64).reshape(reference.shape)
    diff = np.abs(reference - exported)
    result = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "samples": int(len(reference))}
    if classifier:
        result["agreement"] = float(np.mean(predicted_class(reference) == predicted_class(exported)))
    return result


def predicted_class(output: np.ndarray) -> np.ndarray:
    """Class index per example: argmax of softmax outputs, threshold 0.5 of a sigmoid."""
    output = np.asarray(output)
    return (output[:, 0] >= 0.5).astype(np.int64) if output.shape[-1] == 1 else output.argmax(axis=-1)


def run_and_compare(predict, inputs: dict[str, np.ndarray], reference: np.ndarray, classifier: bool) -> dict:
    """Run a freshly loaded export on the first few examples one by one, then on all of them
    in one batch; the max abs diff is the worse of both, agreement is over the batch.

    Singles come first: a TFLite file with a StringLookup inside fails in RESHAPE when its
    first call has batch size 1, and works when a larger batch came before."""
    count = min(SINGLES, len(reference))
    singles = np.concatenate([np.asarray(predict({name: values[i:i + 1] for name, values in inputs.items()}))
                              .reshape(1, -1) for i in range(count)])
    single = compare(reference[:count], singles, classifier)
    result = compare(reference, predict(inputs), classifier)
    result["max_abs_diff"] = max(result["max_abs_diff"], single["max_abs_diff"])
    result["batch_sizes"] = [int(len(reference)), 1]
    return result


def judge(result: dict, tolerance) -> list[str]:
    """What in `result` breaks `tolerance` (a dlpipe.spec.export.Tolerance); empty when none."""
    problems = []
    if tolerance.max_abs_diff is not None and not result["max_abs_diff"] <= tolerance.max_abs_diff:
        problems.append(f"max abs diff {result['max_abs_diff']:.3g} exceeds {tolerance.max_abs_diff:g}")
    if tolerance.agreement is not None and not result.get("agreement", 0.0) >= tolerance.agreement:
        problems.append(f"class agreement {result.get('agreement', 0.0):.4f} is below {tolerance.agreement:g}")
    return problems
