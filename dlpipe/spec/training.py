"""The `training` section: optimizer and learning-rate schedule, loss and weights, batch size,
epochs, early stopping, checkpoints, precision, XLA and distribution."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag, WithJsonSchema
from pydantic_core import PydanticCustomError

from dlpipe import registry
from dlpipe.limits import BATCH_SIZE_MAX, EPOCHS_MAX
from dlpipe.spec.base import (ByType, Fraction, PositiveFloat, PositiveInt, Probability, StrictModel, _check_name,
                              did_you_mean)

NonNegative = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Optimizer(StrictModel):
    learning_rate: PositiveFloat = 1e-3
    """The base learning rate; `training.schedule` shapes it over the epochs."""
    weight_decay: NonNegative | None = None
    """Decoupled weight decay: each step also subtracts learning_rate × weight_decay × weight."""
    clipnorm: PositiveFloat | None = None
    """Clip each gradient to this L2 norm."""
    clipvalue: PositiveFloat | None = None
    """Clip each gradient element to ±clipvalue."""
    global_clipnorm: PositiveFloat | None = None
    """Clip all gradients together to this L2 norm."""


class Adam(_Optimizer):
    type: Literal["adam"]
    """Picks this optimizer: Adam."""
    beta_1: Probability = 0.9
    """Decay rate of the running mean of gradients (first moment)."""
    beta_2: Probability = 0.999
    """Decay rate of the running mean of squared gradients (second moment)."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""
    amsgrad: bool = False
    """Use the AMSGrad variant: divide by the largest second moment seen so far."""


class AdamW(_Optimizer):
    type: Literal["adamw"]
    """Picks this optimizer: Adam with decoupled weight decay."""
    weight_decay: Annotated[float, Field(ge=0)] = 0.004
    """Decoupled weight decay: each step also subtracts learning_rate × weight_decay × weight."""
    beta_1: Probability = 0.9
    """Decay rate of the running mean of gradients (first moment)."""
    beta_2: Probability = 0.999
    """Decay rate of the running mean of squared gradients (second moment)."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""
    amsgrad: bool = False
    """Use the AMSGrad variant: divide by the largest second moment seen so far."""


class SGD(_Optimizer):
    type: Literal["sgd"]
    """Picks this optimizer: stochastic gradient descent."""
    learning_rate: PositiveFloat = 0.01
    """The base learning rate (higher than Adam's default); `training.schedule` shapes it over the
    epochs."""
    momentum: Probability = 0.0
    """Fraction of the previous update added to each step; 0: plain gradient descent, 0.9 is
    common."""
    nesterov: bool = False
    """Nesterov momentum: take the gradient at the point momentum is about to reach."""


class RMSprop(_Optimizer):
    type: Literal["rmsprop"]
    """Picks this optimizer: RMSprop."""
    rho: Probability = 0.9
    """Decay rate of the running mean of squared gradients."""
    momentum: Probability = 0.0
    """Fraction of the previous update added to each step; 0: none."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""
    centered: bool = False
    """Normalise by the gradient's variance rather than its second moment."""


class Adagrad(_Optimizer):
    type: Literal["adagrad"]
    """Picks this optimizer: Adagrad."""
    initial_accumulator_value: Annotated[float, Field(ge=0)] = 0.1
    """Starting value of each weight's sum of squared gradients."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""


class Adadelta(_Optimizer):
    type: Literal["adadelta"]
    """Picks this optimizer: Adadelta."""
    rho: Probability = 0.95
    """Decay rate of the running means of squared gradients and updates."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""


class Adafactor(_Optimizer):
    """Factored second moments: memory grows with rows + columns, not rows × columns."""

    type: Literal["adafactor"]
    """Picks this optimizer: Adafactor."""
    beta_2_decay: Annotated[float, Field(lt=0)] = -0.8
    """Exponent of the second-moment decay schedule (1 − step^beta_2_decay); negative."""
    epsilon_1: PositiveFloat = 1e-30
    """Small constant added to squared gradients for numerical stability."""
    epsilon_2: PositiveFloat = 1e-3
    """Lower bound of a weight's root mean square when it scales the relative step."""
    clip_threshold: PositiveFloat = 1.0
    """Updates whose root mean square exceeds this are scaled down to it."""
    relative_step: bool = True
    """Cap the step at 1/sqrt(iteration) (the rate then starts high and decays)."""


class Adamax(_Optimizer):
    type: Literal["adamax"]
    """Picks this optimizer: Adamax (Adam with the infinity norm)."""
    beta_1: Probability = 0.9
    """Decay rate of the running mean of gradients (first moment)."""
    beta_2: Probability = 0.999
    """Decay rate of the exponentially weighted infinity norm of gradients."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""


class Nadam(_Optimizer):
    type: Literal["nadam"]
    """Picks this optimizer: Nadam (Adam with Nesterov momentum)."""
    beta_1: Probability = 0.9
    """Decay rate of the running mean of gradients (first moment)."""
    beta_2: Probability = 0.999
    """Decay rate of the running mean of squared gradients (second moment)."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""


class Ftrl(_Optimizer):
    type: Literal["ftrl"]
    """Picks this optimizer: FTRL-Proximal (sparse, wide linear models)."""
    learning_rate_power: Annotated[float, Field(le=0)] = -0.5
    """How the per-weight rate shrinks as gradients accumulate; 0 keeps it fixed."""
    initial_accumulator_value: NonNegative = 0.1
    """Starting value of each weight's sum of squared gradients."""
    l1_regularization_strength: NonNegative = 0.0
    """L1 penalty applied by the optimizer; drives weights to exactly 0."""
    l2_regularization_strength: NonNegative = 0.0
    """L2 penalty applied by the optimizer."""
    l2_shrinkage_regularization_strength: NonNegative = 0.0
    """L2 shrinkage penalty (magnitude penalty, applied through the gradient)."""
    beta: NonNegative = 0.0
    """Added to the accumulator's square root in the rate's denominator (FTRL's β); 0: none."""


class Lion(_Optimizer):
    """Sign of an interpolated momentum: use a 3–10× smaller learning rate than Adam."""

    type: Literal["lion"]
    """Picks this optimizer: Lion."""
    learning_rate: PositiveFloat = 1e-4
    """The base learning rate, 10× below Adam's default; `training.schedule` shapes it over the
    epochs."""
    beta_1: Probability = 0.9
    """Interpolation between momentum and gradient in the signed update."""
    beta_2: Probability = 0.99
    """Decay rate of the momentum that is kept."""


class Lamb(_Optimizer):
    """Adam with a per-layer trust ratio, for large batches."""

    type: Literal["lamb"]
    """Picks this optimizer: LAMB."""
    beta_1: Probability = 0.9
    """Decay rate of the running mean of gradients (first moment)."""
    beta_2: Probability = 0.999
    """Decay rate of the running mean of squared gradients (second moment)."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to the denominator for numerical stability."""


class Muon(_Optimizer):
    """Orthogonalised momentum for matrices (Newton–Schulz); AdamW for the other weights."""

    type: Literal["muon"]
    """Picks this optimizer: Muon."""
    weight_decay: NonNegative | None = 0.004
    """Decoupled weight decay of the weights Muon updates; null: none."""
    momentum: Probability = 0.95
    """Momentum of the Muon update."""
    nesterov: bool = True
    """Nesterov momentum for the Muon update."""
    ns_steps: PositiveInt = 5
    """Newton–Schulz iterations per step."""
    adam_beta_1: Probability = 0.9
    """First-moment decay rate of the AdamW part."""
    adam_beta_2: Probability = 0.999
    """Second-moment decay rate of the AdamW part."""
    adam_weight_decay: NonNegative = 0.004
    """Decoupled weight decay of the weights the AdamW part updates."""
    adam_lr_ratio: PositiveFloat = 1.0
    """The Adam part's learning rate as a multiple of `learning_rate`."""
    epsilon: PositiveFloat = 1e-7
    """Small constant added to denominators for numerical stability."""
    rms_rate: PositiveFloat = 0.2
    """Scales the orthogonalised update to the size of a typical AdamW update, so that one learning
    rate and weight decay suit both parts."""


Optimizer = Annotated[
    Union[Adam, AdamW, SGD, RMSprop, Adagrad, Adadelta, Adafactor, Adamax, Nadam, Ftrl, Lion, Lamb, Muon],
    ByType(),
]


class _Schedule(StrictModel):
    warmup_epochs: NonNegative = 0.0
    """Raise the rate linearly from `warmup_start` × learning_rate to learning_rate over this
    many epochs (fractions allowed; updated every step). The schedule starts when warmup ends."""
    warmup_start: Fraction = 0.0
    """The first warmup step's rate, as a fraction of learning_rate."""


class Constant(_Schedule):
    """learning_rate throughout (after the warmup, if any)."""

    type: Literal["constant"]
    """Picks this schedule: a constant rate."""


class Step(_Schedule):
    """learning_rate × factor^k after k × `every` epochs."""

    type: Literal["step"]
    """Picks this schedule: step decay."""
    every: PositiveFloat
    """Epochs between two reductions."""
    factor: PositiveFloat = 0.1
    """Multiplier applied at each reduction (0.1: a tenth)."""


def _increasing(values: list[float]) -> list[float]:
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise PydanticCustomError(
                "not_increasing", f"boundaries must increase; {values[i]:g} follows {values[i - 1]:g}")
    return values


class Piecewise(_Schedule):
    """learning_rate until boundaries[0], then learning_rate × factors[i] from boundaries[i]
    on (epochs, counted after the warmup)."""

    type: Literal["piecewise"]
    """Picks this schedule: piecewise constant."""
    boundaries: Annotated[list[PositiveFloat], Field(min_length=1), AfterValidator(_increasing)]
    """Epochs (after the warmup, increasing) at which the rate changes."""
    factors: Annotated[list[PositiveFloat], Field(min_length=1)]
    """One per boundary: the multiple of learning_rate from that boundary on."""


class Exponential(_Schedule):
    """learning_rate × rate^epochs (every step, or once per epoch with `staircase`)."""

    type: Literal["exponential"]
    """Picks this schedule: exponential decay."""
    rate: PositiveFloat
    """Multiplier per epoch: 0.9 loses 10 % of the rate each epoch."""
    staircase: bool = False
    """Change the rate once per epoch instead of at every step."""


class CosineRestarts(StrictModel):
    """Warm restarts (SGDR): after each cycle the rate jumps back up and decays again."""

    period_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Each cycle lasts this many times the previous one."""
    peak_multiplier: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Each cycle starts at this many times the previous cycle's peak."""


class Cosine(_Schedule):
    """Half a cosine from learning_rate down to min_factor × learning_rate."""

    type: Literal["cosine"]
    """Picks this schedule: cosine decay."""
    decay_epochs: PositiveFloat | None = None
    """Length of the decay (of the first cycle with restarts); default: the epochs left after
    the warmup."""
    min_factor: Fraction = 0.0
    """The floor, as a fraction of learning_rate."""
    restarts: CosineRestarts | None = None
    """Warm restarts; none: a single decay that stays at the floor afterwards."""


class ReduceOnPlateau(_Schedule):
    """Multiply the rate by `factor` when `monitor` has not improved for `patience` epochs."""

    type: Literal["reduce_on_plateau"]
    """Picks this schedule: reduce on plateau."""
    monitor: str = "val_loss"
    """The logged value watched after each epoch (val_loss, loss, val_accuracy...)."""
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """Multiplier applied to the rate at each reduction."""
    patience: NonNegativeInt = 5
    """Epochs without improvement before the rate is reduced."""
    min_delta: NonNegative = 1e-4
    """The smallest change of `monitor` that counts as an improvement."""
    cooldown: NonNegativeInt = 0
    """Epochs to wait after a reduction before counting again."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether `monitor` should fall (min) or rise (max); auto: rise for accuracy, auc, precision,
    recall and f1 names, fall otherwise."""
    min_factor: Fraction = 0.0
    """The floor, as a fraction of learning_rate."""


Schedule = Annotated[Union[Constant, Step, Piecewise, Exponential, Cosine, ReduceOnPlateau],
                     ByType()]

_check_loss = _check_name("loss", "loss")


def _loss_or_auto(name: str) -> str:
    return name if name == "auto" else _check_loss(name)


Loss = Annotated[
    str,
    AfterValidator(_loss_or_auto),
    WithJsonSchema({"type": "string", "enum": ["auto", *registry.names("loss")]}),
]


class EarlyStopping(StrictModel):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    monitor: str = "val_loss"
    """The logged value watched after each epoch (val_loss, loss, val_accuracy...)."""
    patience: PositiveInt = 5
    """Epochs without improvement before training stops."""
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    """The smallest change of `monitor` that counts as an improvement."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether `monitor` should fall (min) or rise (max); auto: Keras infers it from the metric."""
    restore_best_weights: bool = True
    """At the stop, put back the weights of the best epoch; false: keep the last epoch's weights."""


def _balanced_or_mapping(value):
    # Checked before the union so that a typo gets one message, not one per union member.
    if isinstance(value, dict) or value == "balanced":
        return value
    hint = did_you_mean(value, ["balanced"]) if isinstance(value, str) else ""
    shown = repr(value).replace("{", "{{").replace("}", "}}")
    raise PydanticCustomError("class_weight", f"expected 'balanced' or a mapping of class name to weight, "
                              f"got {shown}{hint}")


ClassWeight = Annotated[
    Union[Annotated[Literal["balanced"], Tag("balanced")], Annotated[dict[str, NonNegative], Tag("mapping")]],
    Discriminator(lambda value: "balanced" if isinstance(value, str) else "mapping"),
    BeforeValidator(_balanced_or_mapping),
]


class Checkpoints(StrictModel):
    """After every epoch RUN_DIR/checkpoints/ holds `last` (what `--resume` continues from)
    and `best` (by `monitor`): weights, optimizer state, epoch, history and schedule state."""

    monitor: str = "auto"
    """`auto`: the early-stopping monitor, else val_loss with a validation split, else loss."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether `monitor` should fall (min) or rise (max); auto: early stopping's mode when `monitor`
    is auto and early stopping is on, else rise for accuracy, auc, precision, recall and f1 names,
    fall otherwise."""


class Adversarial(StrictModel):
    """How a GAN's two networks take turns (task generation). `training.optimizer` trains
    the generator."""

    discriminator_optimizer: Optimizer | None = None
    """The discriminator's own optimizer; default: a copy of `training.optimizer`."""
    discriminator_steps: Annotated[int, Field(ge=1, le=10)] = 1
    """Discriminator updates per generator update, each on its own batch of real images."""
    label_smoothing: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    """One-sided label smoothing: the discriminator learns real images as 1 − this (0.1 is
    usual), which keeps it from growing over-confident; fakes stay 0."""


class Training(StrictModel):
    epochs: Annotated[int, Field(gt=0, le=EPOCHS_MAX)] = 10
    """Passes over the training split (fewer when early stopping ends the run)."""
    batch_size: Annotated[int, Field(gt=0, le=BATCH_SIZE_MAX)] = 32
    """The global batch: with several replicas or workers each gets an equal share of it."""
    optimizer: Optimizer = Adam(type="adam")
    """The optimizer, picked by `type`, and its settings; the default is Adam with learning rate
    0.001."""
    schedule: Schedule | None = None
    """How the learning rate changes over the epochs; none: constant."""
    loss: Loss = "auto"
    """`auto` picks from the task: binary or sparse categorical cross-entropy, or mse."""
    class_weight: ClassWeight | None = None
    """Weight of each class in the training loss: `balanced` (n / (classes × count)), or a
    mapping from class name (as in data.json; quote numbers: "0") to weight; classes left
    out weigh 1."""
    sample_weight: str | None = None
    """A data column holding each example's weight in the training loss (not a feature)."""
    early_stopping: EarlyStopping | None = None
    """Stop training when a monitored value stops improving; none: train all `epochs`."""
    adversarial: Adversarial | None = None
    """GAN training (task generation; filled in with its defaults there)."""
    checkpoints: Checkpoints = Checkpoints()
    """Which saved state counts as the best, for `--resume` and the best checkpoint."""
    progress: Literal["auto", "bar", "epoch", "none"] = "auto"
    """`auto`: a progress bar on a terminal, one line per epoch otherwise (CI, logs)."""
    tensorboard: Literal["auto", True, False] = "auto"
    """Write TensorBoard logs to RUN_DIR/logs/ (skipped, with a notice, when the tensorboard
    package is not installed: `pip install dlpipe[tensorboard]`). `auto`: on with `backend:
    tensorflow`, off on the others (Keras writes the logs with TensorFlow's summary ops; `true`
    there imports TensorFlow at the train stage)."""
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    """`auto`: float32 on a CPU (mixed precision is several times slower there); on a GPU
    mixed_bfloat16 where it is supported (compute capability 8+), else mixed_float16."""
    jit_compile: Literal["auto", True, False] = "auto"
    """Compile the training step with XLA. `auto`: on a GPU only (slower on a CPU)."""
    deterministic: Literal["auto", True, False] = "auto"
    """TensorFlow op determinism: with `seed`, reruns on the same hardware give the same bits.
    Keras turns XLA off under it, and some GPU ops are slower. `auto`: on unless the step is
    compiled with XLA (so: on for CPU runs, off for GPU runs)."""
    strategy: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"
    """`mirrored`: one process, every local GPU (or logical CPU device); `multi_worker`: one
    process per worker, described by the TF_CONFIG environment variable. `auto`:
    multi_worker under a TF_CONFIG with several tasks, mirrored with several GPUs, else none."""
