"""Check an export against the trained model on held-out inputs.

An output is an array with a row per example, or a dict of such arrays by name (a
detector's boxes, scores and classes). A comparison `(reference, exported) → result` turns
two outputs into numbers: `max_abs_diff`, `mean_abs_diff` and, where the output carries
classes, `agreement`. Which comparison fits is the task's: `compare_values` (probabilities,
values, embeddings, images; class agreement for a classifier) or `compare_detections`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SINGLES = 3
"""Examples also run one at a time: some runtimes fail or differ only for other batch sizes."""

COUNTED = "_compared"
"""A comparison's count of the things its agreement is over (examples, kept detections),
so that the agreement of one-by-one runs and of the batch pool by what they compared."""

Output = np.ndarray | dict[str, np.ndarray]
Comparison = Callable[[Output, Output], dict]


def compare_values(reference: np.ndarray, exported: np.ndarray, classes: bool) -> dict:
    """Every number of the output; `classes`: the output is class probabilities, whose
    predicted class must also agree."""
    reference = np.asarray(reference, dtype=np.float64)
    exported = np.asarray(exported, dtype=np.float64).reshape(reference.shape)
    diff = np.abs(reference - exported)
    result = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if classes:
        result["agreement"] = float(np.mean(predicted_class(reference) == predicted_class(exported)))
        result[COUNTED] = int(len(reference))
    return result


def predicted_class(output: np.ndarray) -> np.ndarray:
    """Class index per example: argmax of softmax outputs, threshold 0.5 of a sigmoid."""
    output = np.asarray(output)
    return (output[:, 0] >= 0.5).astype(np.int64) if output.shape[-1] == 1 else output.argmax(axis=-1)


DETECTION_OUTPUTS = ("boxes", "scores", "classes")


def compare_detections(reference: dict, exported: dict) -> dict:
    """Boxes and scores number by number; classes: the share of the reference's kept
    detections (class ≥ 0) whose class the export gives too."""
    if not isinstance(exported, dict) or set(DETECTION_OUTPUTS) - set(exported):
        got = sorted(exported) if isinstance(exported, dict) else "one array"
        return {"max_abs_diff": float("inf"), "mean_abs_diff": float("inf"), "agreement": 0.0, COUNTED: 1,
                "missing": f"expected outputs {', '.join(DETECTION_OUTPUTS)}, got {got}"}
    diff = np.concatenate([np.abs(np.asarray(reference[k], np.float64) - np.asarray(exported[k], np.float64)).ravel()
                           for k in ("boxes", "scores")])
    kept = np.asarray(reference["classes"]) >= 0
    agreeing = int(np.sum(np.asarray(reference["classes"])[kept] == np.asarray(exported["classes"])[kept]))
    compared = int(kept.sum())
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "agreement": agreeing / compared if compared else 1.0, COUNTED: compared}


def rows(values: Output) -> int:
    return len(next(iter(values.values()))) if isinstance(values, dict) else len(values)


def take(values: Output, start: int, stop: int) -> Output:
    if isinstance(values, dict):
        return {name: array[start:stop] for name, array in values.items()}
    return values[start:stop]


def run_and_compare(predict, inputs: dict[str, np.ndarray], reference: Output, compare: Comparison) -> dict:
    """Run a freshly loaded export on the first few examples one by one, then on all of them
    in one batch. The max abs diff is the worst of all runs; the agreement pools them (each
    run weighs what it compared).

    Singles come first: a TFLite file with a StringLookup inside fails in RESHAPE when its
    first call has batch size 1, and works when a larger batch came before."""
    count = rows(reference)
    runs = [compare(take(reference, i, i + 1), predict(take(inputs, i, i + 1))) for i in range(min(SINGLES, count))]
    result = compare(reference, predict(inputs))
    runs.append(result)
    result["max_abs_diff"] = max(run["max_abs_diff"] for run in runs)
    if "agreement" in result:
        compared = sum(run.get(COUNTED, 0) for run in runs)
        agreeing = sum(run["agreement"] * run.get(COUNTED, 0) for run in runs)
        result["agreement"] = agreeing / compared if compared else 1.0
    result.pop(COUNTED, None)
    result.update(samples=int(count), batch_sizes=[int(count), 1])
    return result


def judge(result: dict, tolerance) -> list[str]:
    """What in `result` breaks `tolerance` (a dlpipe.spec.export.Tolerance); empty when none."""
    problems = [f"outputs differ: {result['missing']}"] if result.get("missing") else []
    if tolerance.max_abs_diff is not None and not result["max_abs_diff"] <= tolerance.max_abs_diff:
        problems.append(f"max abs diff {result['max_abs_diff']:.3g} exceeds {tolerance.max_abs_diff:g}")
    if tolerance.agreement is not None and not result.get("agreement", 0.0) >= tolerance.agreement:
        problems.append(f"class agreement {result.get('agreement', 0.0):.4f} is below {tolerance.agreement:g}")
    return problems
