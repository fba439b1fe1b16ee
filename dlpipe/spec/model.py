"""The `model` section: one architecture, chosen by `type`, plus the output head.

Model code lives in dlpipe/architectures; here are only the choices a spec may make.
"""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Field, WithJsonSchema

from dlpipe import registry
from dlpipe.limits import WIDTH_MAX
from dlpipe.spec.base import (Activation, ByType, Depth, Initializer, Name, PositiveInt, Probability, StrictModel, Width,
                              did_you_mean, unknown_name)
from dlpipe.spec.detection import CenterNet
from dlpipe.spec.diffusion import Diffusion
from dlpipe.spec.paths import PathKind, PresetPath, RunPath

NonNegative = Annotated[float, Field(ge=0)]


class Head(StrictModel):
    """Layers between the architecture's features and the output. Features the architecture
    does not read (a number beside a cnn's image) are concatenated to its output first: with
    `units`, this is the combiner MLP where several inputs meet. The output layer follows
    from the task and target: sigmoid for two classes, softmax for more, K sigmoids for
    multi-label, linear for numbers; per step when the architecture returns sequences."""

    units: Annotated[list[Width], Field(max_length=1000)] = []
    """Width of each dense layer before the output."""
    activation: Activation = "relu"
    """Activation of each dense layer in `units` (not of the output layer, which the task fixes)."""
    dropout: Probability = 0.0
    """Dropout rate after each dense layer of `units`, or once before the output layer when `units`
    is empty."""


class MLP(StrictModel):
    """Dense layers on the concatenation of all (flattened) features."""

    type: Literal["mlp"]
    """Picks this architecture: a multi-layer perceptron."""
    units: Annotated[list[Width], Field(min_length=1, max_length=1000)] = [64, 64]
    """Width of each hidden layer; its length is the depth."""
    activation: Activation = "relu"
    """Activation of each hidden layer."""
    dropout: Probability = 0.0
    """Dropout rate after each hidden layer; 0: none."""
    batch_norm: bool = False
    """Batch normalization after each hidden layer's dense transform, before its activation (the
    dense layer then has no bias)."""
    l1: NonNegative = 0.0
    """L1 penalty on the hidden layers' weights, added to the loss; pushes weights to exactly 0."""
    l2: NonNegative = 0.0
    """L2 penalty on the hidden layers' weights, added to the loss; keeps weights small against
    overfitting."""
    kernel_initializer: Initializer = "glorot_uniform"
    """How the hidden layers' weights are initialised."""
    embedding_dim: Width = 16
    """Token features are embedded and averaged over their positions (a bag of embeddings,
    blind to order); numeric sequences are flattened."""
    head: Head = Head()
    """Dense layers between the hidden layers and the output."""


class ConvBlock(StrictModel):
    """`convs` convolutions, then optional batch norm, pooling and dropout."""

    filters: Width
    """Output channels of each convolution in the block."""
    kernel_size: Width = 3
    """Side of the square convolution kernels, in pixels."""
    strides: Width = 1
    """Stride of the block's first convolution (2 halves the height and width); later convolutions
    use 1."""
    padding: Literal["same", "valid"] = "same"
    """same: zero padding keeps the size (at stride 1); valid: no padding, so each convolution trims
    the border."""
    convs: Depth = 1
    """Convolutions in the block, each followed by batch norm (if on) and the activation."""
    batch_norm: bool = False
    """Batch normalization after each convolution, before its activation (the convolution then has
    no bias)."""
    residual: bool = False
    """Add the block's input to its output (a 1×1 projection when the shapes differ)."""
    pool: Literal["max", "avg", "none"] = "max"
    """Pooling after the convolutions (and the residual sum): max, average, or none."""
    pool_size: Width = 2
    """Side of the pooling window and its stride: 2 halves the height and width."""
    dropout: Probability = 0.0
    """Dropout rate at the end of the block; 0: none."""


class CNN(StrictModel):
    """2-D convolution blocks over one image feature; other features join in the head."""

    type: Literal["cnn"]
    """Picks this architecture: a convolutional network."""
    blocks: Annotated[list[ConvBlock], Field(min_length=1)]
    """The convolution blocks, applied in order."""
    activation: Activation = "relu"
    """Activation after each convolution."""
    kernel_initializer: Initializer = "glorot_uniform"
    """How the convolution weights are initialised."""
    global_pool: Literal["avg", "max", "flatten"] = "avg"
    """How the last block's map becomes a vector: the average or maximum over positions per channel,
    or every value flattened (keeps positions, many more weights in the head)."""
    head: Head = Head()
    """Dense layers between the pooled features (with any other features) and the output."""


class RNN(StrictModel):
    """Recurrent layers over the sequence features, joined along their channels (token ids
    pass through an embedding first); other features join in the head."""

    type: Literal["rnn"]
    """Picks this architecture: a recurrent network."""
    cell: Literal["lstm", "gru", "simple"] = "lstm"
    """The recurrent layer: lstm, gru (fewer weights, often as good), or simple (plain RNN; short
    memory)."""
    units: Annotated[list[Width], Field(min_length=1, max_length=1000)] = [64]
    """Width of each stacked recurrent layer; its length is the depth."""
    bidirectional: bool = False
    """Read each sequence forwards and backwards; the two states are concatenated."""
    dropout: Probability = 0.0
    """Dropout on the inputs of each recurrent layer."""
    return_sequences: bool = False
    """Many-to-many: one output per time step (the target holds a value per step).
    Otherwise many-to-one: the last layer's final state feeds the head."""
    embedding_dim: Width = 32
    """Width of the learned embedding of token features."""
    l1: NonNegative = 0.0
    """L1 penalty on the recurrent layers' input weights, added to the loss."""
    l2: NonNegative = 0.0
    """L2 penalty on the recurrent layers' input weights, added to the loss."""
    kernel_initializer: Initializer = "glorot_uniform"
    """How the recurrent layers' input weights are initialised."""
    head: Head = Head()
    """Dense layers between the recurrent output (with any other features) and the output."""


class _Encoder(StrictModel):
    """Settings shared by the transformer encoder blocks of `transformer` and `vit`."""

    type: str
    """Picks the architecture (set by each variant)."""
    blocks: Depth = 2
    """Number of encoder blocks (self-attention, then a feed-forward network)."""
    heads: Width = 4
    """Attention heads per block."""
    key_dim: Width = 16
    """Width of each head's queries and keys."""
    model_dim: Width = 64
    """Width of the vector kept for each position (embeddings, projections, block outputs)."""
    feed_forward: Width = 128
    """Width of the hidden layer of each block's feed-forward network."""
    activation: Activation = "gelu"
    """Activation of the feed-forward network."""
    dropout: Probability = 0.1
    """Dropout on attention weights and after attention and feed-forward."""
    norm: Literal["pre", "post"] = "pre"
    """Layer normalization before each sub-layer (pre, more stable) or after the residual
    sum (post, as in the original Transformer)."""
    positions: Literal["learned", "sinusoidal", "none"] = "learned"
    """Position information added to each position's vector: trained, or the fixed sine
    and cosine table of the original Transformer."""
    kernel_initializer: Initializer = "glorot_uniform"
    """How the weights are initialised: the input projection (transformer) or patch projection
    (vit), attention and feed-forward layers."""


class Transformer(_Encoder):
    """A transformer encoder over the sequence features: token ids are embedded, numeric
    time steps projected to `model_dim`. Other features join in the head."""

    type: Literal["transformer"]
    """Picks this architecture: a transformer encoder over sequences."""
    pooling: Literal["mean", "max", "last"] = "mean"
    """How the positions are summarised into one vector for a per-example output."""
    return_sequences: bool = False
    """One output per position (the target holds a value per step) instead of pooling."""
    causal: bool = False
    """Each position attends only to itself and earlier positions."""
    head: Head = Head()
    """Dense layers between the pooled (or per-step) encoding and the output."""


class ViT(_Encoder):
    """Vision transformer: one image feature cut into square patches, each projected to
    `model_dim`, then transformer encoder blocks."""

    type: Literal["vit"]
    """Picks this architecture: a vision transformer."""
    patch_size: Width = 4
    """Side of the square patches, in pixels; must divide the image's height and width."""
    pooling: Literal["class_token", "mean"] = "class_token"
    """Summarise the patches through a learned class token prepended to them, or by their mean."""
    head: Head = Head()
    """Dense layers between the pooled encoding and the output."""


class SSM(StrictModel):
    """A selective state-space model (Mamba-style) over the sequence features: token ids are
    embedded, numeric time steps projected to `model_dim`, then `blocks` residual blocks, each
    layer normalization → a gated selective scan. Its cost grows linearly with the sequence
    length (attention's grows with its square). Other features join in the head."""

    type: Literal["ssm"]
    """Picks this architecture: a selective state-space model."""
    blocks: Depth = 2
    """Number of stacked blocks, each with a residual connection."""
    model_dim: Width = 64
    """Width of the vector kept for each step (embeddings, projections, block outputs)."""
    state_size: Annotated[int, Field(gt=0, le=1024)] = 16
    """Size of each channel's hidden state (N); memory and time grow with it."""
    expand: Annotated[int, Field(gt=0, le=64)] = 2
    """Inner width of each block as a multiple of `model_dim`."""
    conv_width: Annotated[int, Field(gt=0, le=1024)] = 4
    """Kernel of each block's short causal convolution, in steps."""
    dt_rank: Union[Literal["auto"], Width] = "auto"
    """Width of the low-rank projection that computes each step's step size Δ; auto:
    model_dim / 16, rounded up."""
    scan: Literal["sequential", "parallel"] = "sequential"
    """How the recurrence runs: sequential, one compiled loop over the steps (the fastest on a
    CPU), or parallel, an associative scan of logarithmic depth (more memory traffic; for long
    sequences on a GPU, and the form TFLite and ONNX can convert). Both give the same outputs."""
    dropout: Probability = 0.0
    """Dropout on each block's output, before the residual sum."""
    pooling: Literal["mean", "max", "last"] = "mean"
    """How the steps are summarised into one vector for a per-example output; last: the final
    step, whose state has read the whole sequence."""
    return_sequences: bool = False
    """One output per step (the target holds a value per step) instead of pooling."""
    kernel_initializer: Initializer = "glorot_uniform"
    """How the projection weights are initialised (the input projection and each block's in,
    x and out projections)."""
    head: Head = Head()
    """Dense layers between the pooled (or per-step) encoding and the output."""


class Autoencoder(StrictModel):
    """Encoder → latent → decoder. The head reads the latent vector; the decoder's
    reconstruction error (of the normalized inputs) is added to the loss. The encoder is a
    sub-model named `encoder` (`model.get_layer("encoder")` gives embeddings)."""

    type: Literal["autoencoder"]
    """Picks this architecture: an autoencoder."""
    encoder: Literal["dense", "conv"] = "dense"
    """dense: on all features flattened; conv: on one image feature."""
    units: Annotated[list[Width], Field(min_length=1, max_length=1000)] = [128, 64]
    """dense: widths of the encoder's layers; the decoder mirrors them."""
    filters: Annotated[list[Width], Field(min_length=1, max_length=1000)] = [16, 32]
    """conv: filters of the encoder's stride-2 convolutions; the decoder mirrors them with
    transposed convolutions."""
    latent: Width = 16
    """Size of the embedding between encoder and decoder."""
    activation: Activation = "relu"
    """Activation of the encoder's and decoder's hidden layers (the latent and reconstruction layers
    are linear)."""
    kernel_initializer: Initializer = "glorot_uniform"
    """How the encoder's and decoder's weights are initialised."""
    reconstruction_weight: NonNegative = 1.0
    """Weight of the mean squared reconstruction error in the training loss; 0 trains the
    encoder through the head alone. Task embedding: unused (the reconstruction error is the
    whole loss)."""
    head: Head = Head()
    """Classification or regression on the latent vector. Task embedding has no head."""


# Layers that take a list of tensors (`inputs` of two or more nodes or features).
MERGE_LAYERS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                          "Concatenate", "Dot"})
# Layers that take several tensors as separate arguments or a list: (query, value[, key]).
ATTENTION_LAYERS = frozenset({"MultiHeadAttention", "GroupQueryAttention", "Attention",
                              "AdditiveAttention"})
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def _check_layer(name: str) -> str:
    if ":" in name:
        if not _IMPORT_PATH.match(name):
            raise unknown_name("layer", name, "; a layer from user code is written module.path:ClassName")
        return name
    known = registry.names("layer")
    if name not in known:
        raise unknown_name("layer", name, did_you_mean(name, known) or
                           "; use a Keras layer name such as Dense or Conv2D, or module.path:ClassName")
    return name


LayerName = Annotated[str, AfterValidator(_check_layer),
                      WithJsonSchema({"type": "string", "description": "a Keras layer name (" +
                                      ", ".join(registry.names("layer")) + ") or module.path:ClassName"})]
NodeName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]


class Node(StrictModel):
    """One layer of a graph: a Keras layer by name, its arguments, and what it reads."""

    name: NodeName
    """Names the node's output for other nodes' `inputs`, and the layer in the model."""
    layer: LayerName
    """A Keras layer (Dense, Conv2D, LSTM, Add, Concatenate, MultiHeadAttention...) or a
    layer class from user code, `module.path:ClassName`, whose module is in `allow_imports`."""
    args: dict[str, Any] = {}
    """Keyword arguments of the layer, as in Keras (`{units: 32, activation: relu}`).
    Activation, initializer and regularizer names resolve through dlpipe's tables."""
    inputs: Annotated[list[str], Field(min_length=1)]
    """Names of features (data.features) or of other nodes. Merge layers (Add,
    Concatenate...) take two or more; attention layers take query, value and optionally key."""


class Graph(StrictModel):
    """A free layer graph: nodes wired by name into a directed acyclic graph, written in
    any order. The output node's tensor feeds the head."""

    type: Literal["graph"]
    """Picks this architecture: a free layer graph."""
    nodes: Annotated[list[Node], Field(min_length=1)]
    """The layers, each naming the features or nodes it reads."""
    output: str | None = None
    """The node whose output feeds the head; default: the last node listed."""
    allow_imports: list[str] = []
    """Python modules whose layer classes nodes may use (`module.path:ClassName`). Nothing
    outside Keras is ever imported unless its module is listed here."""
    head: Head = Head()
    """Dense layers between the output node and the model's output."""


def graph_problems(graph: Graph, features: list[str] | None) -> Iterator[tuple[tuple, str]]:
    """Located problems of a graph, paths relative to the graph: unknown or duplicate names,
    cycles, arity, imports not allowed, unknown activation/initializer/regularizer names.
    `features`: the listed feature names, or None when features are inferred from the data
    (then a name that is no node is checked when the model is built)."""
    names = [node.name for node in graph.nodes]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield ("nodes", i, "name"), f"node name {name!r} is used twice"
        elif features and name in features:
            yield ("nodes", i, "name"), f"{name!r} is a feature's name; give the node another"
        seen.add(name)
    known = set(names) | set(features or ())
    for i, node in enumerate(graph.nodes):
        for j, source in enumerate(node.inputs):
            if source == node.name:
                yield ("nodes", i, "inputs", j), f"node {node.name!r} reads its own output"
            elif source not in known and features is not None:
                # (bounded: a spec with thousands of nodes gets no list of them all)
                hint = (did_you_mean(source, known) if len(known) <= 1000 else "") or (
                    f"; known: {', '.join(sorted(known))}" if len(known) <= 20 else "")
                yield ("nodes", i, "inputs", j), f"unknown input {source!r}{hint}"
        yield from _arity(node, i)
        yield from _argument_names(node, i)
        if ":" in node.layer:
            module = node.layer.partition(":")[0]
            if module not in graph.allow_imports:
                yield (("nodes", i, "layer"),
                       f"layer {node.layer!r} comes from user code; importing {module!r} is not "
                       f"allowed unless model.allow_imports lists it")
    if graph.output is not None and graph.output not in names:
        yield ("output",), f"unknown node {graph.output!r}{did_you_mean(graph.output, names)}"
    cycle = find_cycle(graph)
    if cycle:
        # Shown in the direction data flows, from the node listed first.
        position = {name: i for i, name in reversed(list(enumerate(names)))}
        flow = cycle[::-1]
        start = min(range(len(flow)), key=lambda k: position[flow[k]])
        flow = flow[start:] + flow[:start]
        shown = [*flow, flow[0]] if len(flow) <= 12 else [*flow[:10], f"… ({len(flow) - 11} more)", flow[-1], flow[0]]
        yield (("nodes", position[flow[0]], "inputs"),
               "the graph has a cycle: " + " → ".join(shown) + " (each node feeds the next)")


def _arity(node: Node, i: int) -> Iterator[tuple[tuple, str]]:
    count = len(node.inputs)
    if node.layer in ("Subtract", "Dot") and count != 2:
        yield ("nodes", i, "inputs"), f"{node.layer} takes exactly 2 inputs, got {count}"
    elif node.layer in MERGE_LAYERS and count < 2:
        yield ("nodes", i, "inputs"), f"{node.layer} merges 2 or more inputs, got {count}"
    elif node.layer in ATTENTION_LAYERS and count not in (2, 3):
        yield ("nodes", i, "inputs"), f"{node.layer} takes query, value and optionally key (2 or 3 inputs), got {count}"
    elif node.layer not in MERGE_LAYERS | ATTENTION_LAYERS and ":" not in node.layer and count != 1:
        yield ("nodes", i, "inputs"), f"{node.layer} takes 1 input, got {count}; merge them first (Concatenate, Add...)"


_WIDTH_ARGS = {"units", "filters", "kernel_size", "pool_size", "strides", "num_heads", "key_dim", "value_dim",
               "output_dim", "depth_multiplier"}


def _argument_names(node: Node, i: int) -> Iterator[tuple[tuple, str]]:
    """Names that Keras would resolve itself are checked here against dlpipe's tables, so
    that `validate` catches them without importing Keras."""
    for key, value in node.args.items():
        if key == "name":
            yield ("nodes", i, "args", "name"), "the layer is named after its node; remove args.name"
            continue
        if key == "dtype" and value is not None and not isinstance(value, str):
            # Keras would take a mapping as a serialized policy of any class it can find.
            yield ("nodes", i, "args", "dtype"), f"expected a dtype name such as float32 or mixed_float16, got {value!r}"
            continue
        if key in _WIDTH_ARGS and isinstance(value, int) and value > WIDTH_MAX:
            yield ("nodes", i, "args", key), f"expected a value <= {WIDTH_MAX}, got {value}"
            continue
        kind = ("activation" if key in ("activation", "recurrent_activation") else
                "initializer" if key.endswith("_initializer") else
                "regularizer" if key.endswith("_regularizer") else None)
        if kind is None or value is None:
            continue
        name = value.get("type") if kind == "regularizer" and isinstance(value, dict) else value
        path = ("nodes", i, "args", key) + (("type",) if isinstance(value, dict) else ())
        if not isinstance(name, str):
            shape = "a name or {type: name, ...}" if kind == "regularizer" else "a name"
            yield path, f"expected {shape}, got {value!r}"
        elif name not in registry.names(kind):
            known = registry.names(kind)
            yield path, f"unknown {kind} {name!r}" + (did_you_mean(name, known) or f"; choose from {', '.join(known)}")


def find_cycle(graph: Graph) -> list[str] | None:
    """The node names along one cycle, or None when the graph is acyclic."""
    reads = {node.name: [s for s in node.inputs] for node in graph.nodes}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    # A depth-first search with a stack of its own: a chain of thousands of nodes would
    # exceed Python's recursion limit.
    for node in graph.nodes:
        if node.name in state:
            continue
        path: list[str] = [node.name]
        pending = [iter(reads[node.name])]
        state[node.name] = 1
        while pending:
            source = next(pending[-1], None)
            if source is None:
                state[path.pop()] = 2
                pending.pop()
            elif source not in reads or source == path[-1]:
                continue
            elif state.get(source) == 1:
                return path[path.index(source):]
            elif source not in state:
                state[source] = 1
                path.append(source)
                pending.append(iter(reads[source]))
    return None


def topological_order(graph: Graph) -> list[int]:
    """Node indices in an order where each node comes after the nodes it reads (listed
    order among independent nodes). The graph must be acyclic."""
    index = {node.name: i for i, node in enumerate(graph.nodes)}
    done: set[int] = set()
    order: list[int] = []
    for start in range(len(graph.nodes)):
        if start in done:
            continue
        done.add(start)
        pending = [(start, iter(graph.nodes[start].inputs))]
        while pending:
            i, sources = pending[-1]
            source = next(sources, None)
            if source is None:
                order.append(i)
                pending.pop()
            elif source in index and index[source] != i and index[source] not in done:
                done.add(index[source])
                pending.append((index[source], iter(graph.nodes[index[source]].inputs)))
    return order


class DCGANGenerator(StrictModel):
    """DCGAN generator: latent → dense → reshape to a small map → stride-2 transposed
    convolutions (each doubling the side) → a convolution to the image's channels, tanh.
    The image's height and width must be divisible by 2^len(filters)."""

    type: Literal["dcgan"]
    """Picks this generator: DCGAN's transposed convolutions."""
    filters: Annotated[list[Width], Field(min_length=1, max_length=1000)] = [128, 64]
    """Filters of each transposed convolution; the first also sizes the initial map."""
    kernel_size: Width = 4
    """Side of the transposed convolution kernels, in pixels."""
    batch_norm: bool = True
    """Batch normalization after the dense layer and each transposed convolution."""
    activation: Activation = "relu"
    """Activation after the dense layer and each transposed convolution (the last convolution uses
    tanh)."""


class DCGANDiscriminator(StrictModel):
    """DCGAN discriminator: stride-2 convolutions with leaky ReLU, flattened into the
    features that the real/fake logit (and, for a conditional GAN, the class projection) reads."""

    type: Literal["dcgan"]
    """Picks this discriminator: DCGAN's stride-2 convolutions."""
    filters: Annotated[list[Width], Field(min_length=1, max_length=1000)] = [64, 128]
    """Filters of each stride-2 convolution (each halves the side)."""
    kernel_size: Width = 4
    """Side of the convolution kernels, in pixels."""
    dropout: Probability = 0.3
    """Dropout after each convolution: a discriminator that memorises the real images stops
    giving the generator useful gradients."""
    batch_norm: bool = False
    """Batch normalization after each convolution, before its leaky ReLU."""


class GANGraph(StrictModel):
    """One GAN network as a free layer graph (the layers of `model: {type: graph}`). The
    generator's graph reads `latent` (the latent vector, with a learned class embedding
    concatenated for a conditional GAN) and its output node must have the image's shape;
    its values are taken as tanh-range (−1..1). The discriminator's graph reads `image`
    (scaled to −1..1); its output node's values are flattened into the features."""

    type: Literal["graph"]
    """Picks this network: a free layer graph."""
    nodes: Annotated[list[Node], Field(min_length=1)]
    """The layers, each naming the input (`latent` or `image`) or the nodes it reads."""
    output: str | None = None
    """The node whose output is the network's output; default: the last node listed."""
    allow_imports: list[str] = []
    """Python modules whose layer classes nodes may use (`module.path:ClassName`)."""


Generator = Annotated[Union[DCGANGenerator, GANGraph], ByType()]
Discriminator = Annotated[Union[DCGANDiscriminator, GANGraph], ByType()]


class GAN(StrictModel):
    """A generative adversarial network for task generation: a generator maps a latent vector
    (and, when `data.target` is given, a class) to an image; a discriminator tells real
    images from generated ones. Images are scaled to −1..1 from the training split's value
    range for the discriminator, and the generator's output is scaled back, so the exported
    generator emits images in the data's own units. How they train: `training.adversarial`."""

    type: Literal["gan"]
    """Picks this architecture: a generative adversarial network."""
    latent_size: Annotated[int, Field(gt=0, le=4096)] = 64
    """Length of the latent vector (standard normal) the generator starts from."""
    generator: Generator = DCGANGenerator(type="dcgan")
    """The network that turns a latent vector into an image: dcgan or a layer graph."""
    discriminator: Discriminator = DCGANDiscriminator(type="dcgan")
    """The network that tells real images from generated ones: dcgan or a layer graph."""
    class_embedding: Width = 16
    """Conditional GAN (a target is given): the class's learned embedding concatenated to the
    latent vector. The discriminator scores the class by projection (a learned class vector
    dotted with its features)."""


WEIGHT_WORDS = ("imagenet", "random")
"""Values of `weights` that name no file."""

WeightsPath = Annotated[str, PathKind("file", words=WEIGHT_WORDS)]


class FineTune(StrictModel):
    """When the backbone trains: frozen for the first epochs (only the head learns, batch
    normalization in inference mode), then unfrozen — all of it or its top layers — at a
    lower learning rate. Each epoch's `phase` and `trainable_params` are columns of
    history.csv."""

    freeze_epochs: Annotated[int, Field(ge=0)] = 0
    """Epochs with the whole backbone frozen; 0: it trains from the first epoch. At or
    above training.epochs the backbone never trains (a fixed feature extractor)."""
    unfreeze: Union[Literal["all"], Annotated[int, Field(gt=0)]] = "all"
    """After the frozen epochs: `all` of the backbone trains, or only its top K layers that
    hold weights (counted from the output; batch-norm layers not counted)."""
    learning_rate_factor: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Multiplies the learning rate (and its schedule) from the first unfrozen epoch on: 0.1
    keeps the pretrained weights close to where they were."""
    batch_norm: Literal["frozen", "train"] = "frozen"
    """The backbone's batch-norm layers once unfrozen: `frozen` keeps their moving statistics
    and normalizes with them (inference mode; Keras's advice for fine-tuning), `train` lets
    them learn and normalize with each batch's statistics. While the backbone is frozen they
    are always in inference mode."""


class Backbone(StrictModel):
    """A network trained before, its own head removed, with a new head for this task. It
    reads one image feature as stored (raw pixel values: an application expects 0..255):
    the model resizes it (`input_size`), converts 1 ↔ 3 channels and applies the
    network's own preprocessing inside itself, so exports and `dlpipe predict` take raw
    images. Give `application`, `preset` or `from_run`."""

    type: Literal["backbone"]
    """Picks this architecture: a pretrained network with a new head."""
    application: Name("application") | None = None
    """A Keras application by its Keras name (MobileNetV3Small, EfficientNetB0, ResNet50,
    ...), built without its classifier."""
    preset: PresetPath | None = None
    """A KerasHub image classifier's backbone (needs the `hub` extra): a preset name KerasHub
    lists (resnet_50_imagenet, mobilenet_v3_small_100_imagenet, efficientnet_b0_ra_imagenet,
    vit_base_patch16_224_imagenet, ...; KerasHub downloads it once, which needs the network),
    a `kaggle://` or `hf://` handle, or the path of a local preset folder (written with a
    `/`, or beginning with `.` or `~`) as `save_to_preset` writes it, image_converter.json
    included. The preset's image converter (its size, scale and offset) is rebuilt inside
    the model."""
    weights: WeightsPath = "imagenet"
    """With `application`: `imagenet` (Keras downloads the file once into ~/.keras, which
    needs the network), `random` (no pretrained weights), or the path of a weights file of
    the headless network (`.weights.h5`, as `model.save_weights` writes it). With `preset`:
    `imagenet` takes the preset's own weights (whatever data they were trained on), `random`
    its architecture alone, a path a `.weights.h5` file of its backbone."""
    from_run: RunPath | None = None
    """The folder of an earlier `dlpipe run` (its --out): its model up to the head — the
    input normalization and the architecture — becomes the backbone."""
    input_size: Annotated[list[Width], Field(min_length=2, max_length=2)] | None = None
    """Height and width the image is resized to before the backbone. Default: an
    application takes the image's own size, a preset its image converter's size (or the
    fixed size its backbone was built for), a run's body its own input size."""
    pooling: Literal["avg", "max"] = "avg"
    """How an application's or a preset's last feature map (or a vision transformer's tokens)
    becomes a vector (a run's body keeps its own)."""
    fine_tune: FineTune = FineTune()
    """When the backbone is frozen and when it trains."""
    head: Head = Head()
    """Dense layers between the backbone's features and the output."""


Model = Annotated[Union[MLP, CNN, RNN, Transformer, SSM, ViT, Autoencoder, Graph, GAN, CenterNet, Backbone,
                        Diffusion],
                  ByType()]
