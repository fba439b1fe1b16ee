"""Python's cyclic garbage collector in a `dlpipe run` process (standard library only).

A run imports Keras, JAX or TensorFlow, scikit-learn and matplotlib: millions of objects
that live until the process ends and hold no cycles worth freeing. With Python's default
thresholds the collector walks them again and again (over a thousand collections in one
breast-cancer run, about 0.6 s of its 6 s of CPU on jax). So the `dlpipe run` command
(dlpipe/cli.py) calls `pause()` before its imports, and the runner calls `settle()` once
Keras is imported: what exists then is frozen (`gc.freeze`: never walked again) and the
collector comes back with a larger first generation, so the objects of training, evaluation
and export are still collected, a few dozen times instead of a thousand.

Only a process that asked (`pause`) is changed: `dlpipe.run(...)` called from a notebook
leaves the caller's collector as it is.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 20, 20)
"""Allocations (net) before a young collection, and young collections before an older one
(Python's defaults: 700, 10, 10)."""

_paused = False


def pause() -> None:
    """No cyclic collection until `settle()` (the imports of a run)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def settle() -> None:
    """After the imports: freeze what exists and collect again, less often. Does nothing in a
    process that did not `pause()`."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    gc.enable()
