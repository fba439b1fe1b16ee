"""The `compression` section: magnitude pruning (dlpipe/training/pruning.py) and
quantization-aware training (dlpipe/architectures/quantization.py)."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from dlpipe.spec.base import PositiveInt, StrictModel

Sparsity = Annotated[float, Field(gt=0, lt=1)]
"""A fraction of weights set to zero: above 0 (something is pruned), below 1 (something is kept)."""

LayerKind = Literal["dense", "conv"]


class PruningSchedule(StrictModel):
    """Polynomial decay of the kept fraction (Zhu & Gupta, 2017): the sparsity rises from
    `initial_sparsity` at the first step of `begin_epoch` to the target at the last step of
    `end_epoch`, as s = target + (initial − target)·(1 − progress)^power, and stays there."""

    begin_epoch: PositiveInt = 1
    """The epoch (counting from 1) whose first step prunes first."""
    end_epoch: PositiveInt
    """The epoch (counting from 1) at whose last step the target sparsity is reached; the
    epochs after it fine-tune the pruned weights. At most training.epochs."""
    initial_sparsity: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """The sparsity of the first pruning step."""
    power: PositiveInt = 3
    """The exponent of the polynomial: 3 prunes fast while many redundant weights remain and
    slowly near the target; 1 is a straight line."""


class Pruning(StrictModel):
    """Magnitude pruning: the weights of smallest magnitude are set to zero by masks, which
    are applied after every training step, saved with every checkpoint, and dropped before
    export (the exported weights are exactly zero; the graph holds no mask)."""

    sparsity: Sparsity
    """The fraction of the pruned layers' weights that are zero at the end (0.8: one in five kept)."""
    schedule: PruningSchedule
    """When pruning happens: from `begin_epoch` to `end_epoch`, polynomially."""
    frequency: PositiveInt = 10
    """Training steps between mask updates during the schedule (each update sorts every pruned
    weight by magnitude)."""
    scope: Literal["layer", "global"] = "layer"
    """layer: each layer reaches the sparsity on its own; global: the smallest weights of all
    pruned layers together are pruned, so layers with many redundant weights lose more."""
    layers: Annotated[list[LayerKind], Field(min_length=1)] = ["dense", "conv"]
    """Which kinds of layer have their kernels pruned: dense (Dense, EinsumDense, the head) and
    conv (every convolution). Biases and normalization layers are never pruned."""


class QuantizationAware(StrictModel):
    """Quantization-aware training: the Dense and Conv2D layers round their kernels to TFLite's
    int8 grid and their inputs to 8 bits in every step (fake quantization, straight-through
    gradients), so the model learns around int8 rounding; exported as an int8 TFLite file."""

    start_epoch: PositiveInt = 1
    """The epoch (counting from 1) from which int8 is simulated; the epochs before it train in
    float (the input ranges are tracked already), so QAT fine-tunes a converged float model.
    Early stopping starts watching at this epoch. At most training.epochs."""
    ema_decay: Annotated[float, Field(gt=0, lt=1)] = 0.99
    """How slowly each layer's running input range follows the batches' minimum and maximum in
    training. After training each range is set to the one int8 calibration finds on the
    export's `export.tflite.representative_samples` training examples, so the trained model's
    metrics are those of the int8 file (run.json `quantization_aware` records the ranges)."""


class Compression(StrictModel):
    """Ways to make the trained model smaller (and faster on integer hardware)."""

    pruning: Pruning | None = None
    """Magnitude pruning to a target sparsity during training."""
    quantization_aware: QuantizationAware | None = None
    """Train with int8 simulated, for the int8 TFLite export (export.tflite.quantization: [int8])."""


def layer_kinds(model) -> set[str]:
    """The kinds of prunable layer (dense, conv) an architecture spec builds. A supervised
    model always ends in a Dense output layer (dlpipe/architectures/heads.py)."""
    kinds = {"dense"}
    if model.type in ("cnn", "vit") or (model.type == "autoencoder" and model.encoder == "conv"):
        kinds.add("conv")
    if model.type == "graph" and any("conv" in node.layer.rpartition(":")[2].lower() for node in model.nodes):
        kinds.add("conv")
    return kinds


def compression_problems(spec) -> Iterator[tuple[tuple, str]]:
    """Located problems of `spec.compression` against the rest of the spec."""
    if spec.compression is None:
        return
    # Off TensorFlow, a run may export keras alone (TensorFlow may be missing there): its kernels
    # are on the int8 grid, and `dlpipe export RUN --format tflite` converts them where it is not.
    later = spec.backend != "tensorflow" and "tflite" not in spec.export.formats
    if spec.compression.quantization_aware is not None and not later and not (
            "tflite" in spec.export.formats and "int8" in spec.export.tflite.quantization):
        yield (("compression", "quantization_aware"), "quantization-aware training is for an int8 TFLite export: "
               "add tflite to export.formats and int8 to export.tflite.quantization")
    quantization = spec.compression.quantization_aware
    if quantization is not None and quantization.start_epoch > spec.training.epochs:
        yield (("compression", "quantization_aware", "start_epoch"), f"epoch {quantization.start_epoch} is after "
               f"the last training epoch (training.epochs is {spec.training.epochs})")
    pruning = spec.compression.pruning
    if pruning is None:
        return
    path = ("compression", "pruning")
    schedule, epochs = pruning.schedule, spec.training.epochs
    if schedule.end_epoch > epochs:
        yield (path + ("schedule", "end_epoch"), f"epoch {schedule.end_epoch} is after the last training epoch "
               f"(training.epochs is {epochs})")
    if schedule.begin_epoch > min(schedule.end_epoch, epochs):
        yield (path + ("schedule", "begin_epoch"), f"epoch {schedule.begin_epoch} is after "
               + (f"end_epoch ({schedule.end_epoch})" if schedule.end_epoch <= epochs
                  else f"the last training epoch (training.epochs is {epochs})"))
    if schedule.initial_sparsity >= pruning.sparsity:
        yield (path + ("schedule", "initial_sparsity"), f"{schedule.initial_sparsity:g} is not below the target "
               f"sparsity {pruning.sparsity:g}")
    present = layer_kinds(spec.model)
    if not present & set(pruning.layers):
        yield (path + ("layers",), f"a {spec.model.type} model has no {' or '.join(pruning.layers)} layer to prune; "
               f"its prunable layers are {', '.join(sorted(present))}")
