"""The `training` section: optimizer, loss, batch size, epochs, early stopping."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, WithJsonSchema

from dlpipe import registry
from dlpipe.spec.base import PositiveFloat, PositiveInt, Probability, StrictModel, _check_name


class _Optimizer(StrictModel):
    learning_rate: PositiveFloat = 1e-3
    clipnorm: PositiveFloat | None = None
    """Clip each gradient to this L2 norm."""
    clipvalue: PositiveFloat | None = None
    """Clip each gradient element to ±clipvalue."""
    global_clipnorm: PositiveFloat | None = None
    """Clip all gradients together to this L2 norm."""


class Adam(_Optimizer):
    type: Literal["adam"]
    beta_1: Probability = 0.9
    beta_2: Probability = 0.999
    epsilon: PositiveFloat = 1e-7
    amsgrad: bool = False


class AdamW(_Optimizer):
    type: Literal["adamw"]
    weight_decay: Annotated[float, Field(ge=0)] = 0.004
    beta_1: Probability = 0.9
    beta_2: Probability = 0.999
    epsilon: PositiveFloat = 1e-7
    amsgrad: bool = False


class SGD(_Optimizer):
    type: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: Probability = 0.0
    nesterov: bool = False


class RMSprop(_Optimizer):
    type: Literal["rmsprop"]
    rho: Probability = 0.9
    momentum: Probability = 0.0
    epsilon: PositiveFloat = 1e-7


class Adagrad(_Optimizer):
    type: Literal["adagrad"]
    initial_accumulator_value: Annotated[float, Field(ge=0)] = 0.1
    epsilon: PositiveFloat = 1e-7


Optimizer = Annotated[Union[Adam, AdamW, SGD, RMSprop, Adagrad], Field(discriminator="type")]

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
    patience: PositiveInt = 5
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class Training(StrictModel):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    optimizer: Optimizer = Adam(type="adam")
    loss: Loss = "auto"
    """`auto` picks from the task: binary or sparse categorical cross-entropy, or mse."""
    early_stopping: EarlyStopping | None = None
    progress: Literal["auto", "bar", "epoch", "none"] = "auto"
    """`auto`: a progress bar on a terminal, one line per epoch otherwise (CI, logs)."""
