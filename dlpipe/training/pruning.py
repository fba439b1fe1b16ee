"""Magnitude pruning (`compression.pruning`) as a training callback, on keras.ops.

A mask of 0s and 1s per pruned kernel multiplies the kernel after every training step, so
the optimizer's update of a pruned weight is undone before the next step sees it. Every
`frequency` steps of the schedule the masks are recomputed: the weights of smallest
magnitude (per layer, or over all pruned layers together) are masked to reach the
schedule's sparsity at that step. Weights once pruned are zero, hence among the smallest,
so the masks only ever grow.

The masks are state that cannot be recomputed from the weights (a kept weight may be
zero), so they travel with every checkpoint (`get_state`/`set_state`, as the early
stopping's best weights do) and a resumed run continues with exactly the masks it had.

Nothing of this lives in the model: no wrapper layer, no mask variable. The trained model
is an ordinary Keras model whose pruned weights are exactly zero, and exports as such (no
mask op in any exported graph). Pruning the kernels of Dense and convolution layers only:
biases and normalization layers keep every weight.
"""

from __future__ import annotations

import sys

import keras
import numpy as np

_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def _kind(layer) -> str | None:
    if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
        return "dense"
    conv = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Conv1DTranspose,
            keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose, keras.layers.DepthwiseConv1D,
            keras.layers.DepthwiseConv2D, keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
    return "conv" if isinstance(layer, conv) else None


def prunable_kernels(model, kinds) -> list:
    """The kernels of every layer of `kinds` (dense, conv) inside `model`, nested models and
    layers included, in a fixed order (each once)."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if _kind(layer) not in kinds:
            continue
        for variable in layer.weights:  # frozen layers too: a later unfreeze must not revive them
            if variable.name in _KERNELS and id(variable) not in seen:
                seen.add(id(variable))
                found.append(variable)
    return found


def polynomial_sparsity(step: int, settings, steps_per_epoch: int) -> float:
    """The schedule's sparsity at training step `step` (counting from 0); 0 before it begins."""
    schedule = settings.schedule
    begin = (schedule.begin_epoch - 1) * steps_per_epoch
    last = schedule.end_epoch * steps_per_epoch - 1
    if step < begin:
        return 0.0
    progress = min(1.0, (step - begin) / max(1, last - begin))
    initial, target = schedule.initial_sparsity, settings.sparsity
    return target + (initial - target) * (1.0 - progress) ** schedule.power


def magnitude_masks(kernels: list, sparsity: float, scope: str) -> list:
    """Masks zeroing the `sparsity` fraction of smallest-magnitude weights: of each kernel
    (scope `layer`) or of all of them pooled (`global`). Ties go to the lower index (a stable
    sort's order), so the masks are a function of the weights alone.

    Computed in numpy on the host, in time linear in the weights (a partition finds the cut,
    then the ties at the cut are taken in index order): every recomputation zeroes a different
    count, and backend ops (top_k, scatter) would trace and compile anew for each count, which
    on JAX cost more than the training steps between two recomputations."""
    values = [np.abs(keras.ops.convert_to_numpy(k)).astype("float32") for k in kernels]
    groups = [[v] for v in values] if scope == "layer" else [values]
    masks = []
    for group in groups:
        flat = np.concatenate([v.ravel() for v in group])
        count = int(round(sparsity * flat.size))
        keep = np.ones(flat.size, dtype="float32")
        if count > 0:
            cut = np.partition(flat, count - 1)[count - 1]
            below = flat < cut
            keep[below] = 0.0
            keep[np.flatnonzero(flat == cut)[:count - int(below.sum())]] = 0.0
        offset = 0
        for value in group:
            masks.append(keras.ops.convert_to_tensor(keep[offset:offset + value.size].reshape(value.shape)))
            offset += value.size
    return masks


def sparsity_of(kernels: list) -> dict[str, float]:
    """The fraction of exactly-zero weights of each kernel, by its variable path."""
    return {k.path: float(np.mean(keras.ops.convert_to_numpy(k) == 0)) for k in kernels}


def summary(model, settings) -> dict:
    """What run.json and the report show: target, achieved overall, per layer."""
    kernels = prunable_kernels(model, settings.layers)
    per_layer = sparsity_of(kernels)
    sizes = {k.path: int(np.prod(k.shape)) for k in kernels}
    total = sum(sizes.values())
    overall = sum(per_layer[p] * sizes[p] for p in sizes) / total if total else 0.0
    return {"target": settings.sparsity, "scope": settings.scope, "sparsity": overall,
            "weights": total, "layers": {p: {"sparsity": per_layer[p], "weights": sizes[p]} for p in sizes}}


class Pruning(keras.callbacks.Callback):
    """Applies `compression.pruning` to the model being trained (see the module docstring)."""

    def __init__(self, settings, steps_per_epoch: int):
        super().__init__()
        self.settings, self.steps_per_epoch = settings, steps_per_epoch
        self.kernels: list = []
        self.masks: list | None = None
        self.sparsity = 0.0
        """The sparsity the current masks were computed for."""
        self._restored: tuple[dict, list[np.ndarray]] | None = None

    def on_train_begin(self, logs=None):
        self.kernels = prunable_kernels(self.model, self.settings.layers)
        if self._restored is not None:
            state, arrays = self._restored
            shapes = [tuple(k.shape) for k in self.kernels]
            if [tuple(a.shape) for a in arrays] != shapes:
                raise ValueError(f"the checkpoint's pruning masks ({len(arrays)}) do not fit this model's "
                                 f"prunable kernels ({len(shapes)})")
            self.masks = [keras.ops.convert_to_tensor(a.astype("float32")) for a in arrays]
            self.sparsity = float(state["sparsity"])
            self._restored = None
        elif self.masks is None:
            self.masks = [keras.ops.ones(k.shape, dtype="float32") for k in self.kernels]
        self._apply()

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _sync(self) -> None:
        """On JAX, Keras' fit carries the weights between steps outside the model's variables
        (and empties those): put them back, so the kernels can be read and masked here; fit
        reads them again before its next step. Nothing to do on TensorFlow."""
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()

    def on_train_batch_begin(self, batch, logs=None):
        self._sync()
        step = self._step()
        target = polynomial_sparsity(step, self.settings, self.steps_per_epoch)
        if target <= self.sparsity:
            return
        begin = (self.settings.schedule.begin_epoch - 1) * self.steps_per_epoch
        reached = target >= self.settings.sparsity
        if (step - begin) % self.settings.frequency == 0 or reached:
            self.masks = magnitude_masks(self._masked(), target, self.settings.scope)
            self.sparsity = target
            self._apply()
            if reached:
                print(f"[dlpipe] pruning: target sparsity {self.settings.sparsity:g} reached at step {step + 1}",
                      file=sys.stderr, flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._sync()
        self._apply()

    def on_train_end(self, logs=None):
        self._apply()

    def _masked(self) -> list:
        return [keras.ops.multiply(k, keras.ops.cast(m, k.dtype)) for k, m in zip(self.kernels, self.masks)]

    def _apply(self) -> None:
        for kernel, value in zip(self.kernels, self._masked()):
            kernel.assign(value)

    def get_state(self) -> tuple[dict, list[np.ndarray]]:
        masks = [keras.ops.convert_to_numpy(m).astype(bool) for m in (self.masks or [])]
        return {"sparsity": float(self.sparsity), "kernels": [k.path for k in self.kernels]}, masks

    def set_state(self, state: dict, masks: list[np.ndarray] | None) -> None:
        self._restored = (state, list(masks or []))
