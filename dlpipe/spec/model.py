"""The `model` section: one architecture, chosen by `type`, plus the output head.

Model code lives in dlpipe/architectures; here are only the choices a spec may make.
"""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal, Union

from pydantic import Field

from dlpipe.spec.base import Activation, Initializer, PositiveInt, Probability, StrictModel

NonNegative = Annotated[float, Field(ge=0)]


class Head(StrictModel):
    """Layers between the architecture's features and the output. The output layer itself
    follows from the task: sigmoid for two classes, softmax for more, linear for regression."""

    units: list[PositiveInt] = []
    activation: Activation = "relu"
    dropout: Probability = 0.0


class MLP(StrictModel):
    """Dense layers on the concatenation of all (flattened) features."""

    type: Literal["mlp"]
    units: Annotated[list[PositiveInt], Field(min_length=1)] = [64, 64]
    """Width of each hidden layer; its length is the depth."""
    activation: Activation = "relu"
    dropout: Probability = 0.0
    batch_norm: bool = False
    l1: NonNegative = 0.0
    l2: NonNegative = 0.0
    kernel_initializer: Initializer = "glorot_uniform"
    head: Head = Head()


class ConvBlock(StrictModel):
    """`convs` convolutions, then optional batch norm, pooling and dropout."""

    filters: PositiveInt
    kernel_size: PositiveInt = 3
    strides: PositiveInt = 1
    padding: Literal["same", "valid"] = "same"
    convs: PositiveInt = 1
    batch_norm: bool = False
    residual: bool = False
    """Add the block's input to its output (a 1×1 projection when the shapes differ)."""
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: PositiveInt = 2
    dropout: Probability = 0.0


class CNN(StrictModel):
    """2-D convolution blocks over one image feature."""

    type: Literal["cnn"]
    blocks: Annotated[list[ConvBlock], Field(min_length=1)]
    activation: Activation = "relu"
    kernel_initializer: Initializer = "glorot_uniform"
    global_pool: Literal["avg", "max", "flatten"] = "avg"
    head: Head = Head()


Model = Annotated[Union[MLP, CNN], Field(discriminator="type")]
