"""A network trained before, its head removed: a Keras application, a KerasHub preset's
backbone or the body of an earlier dlpipe run (model type `backbone`).

The raw image goes in (not the data's normalization: the network normalizes as it was
trained to), is adapted inside the model — 1 ↔ 3 channels, bilinear resize, the
application's own preprocessing or the preset's image converter — and passes through the
network, a nested Keras model named `backbone` that dlpipe/training/finetune.py freezes and
unfreezes. The head follows in assemble.py as for any architecture.
"""

from __future__ import annotations

from pathlib import Path

import keras

from dlpipe import registry
from dlpipe.architectures import BuildProblem
from dlpipe.architectures.adapt import ImagePreprocess, ResizeImage, ScaleImage
from dlpipe.architectures.inputs import Encoded, one_image
from dlpipe.architectures.layers import ChannelConvert

NAME = "backbone"
"""The nested model's name: what the fine-tune schedule looks for."""

HEAD_LAYERS = ("combined", "side_features", "body_flat", "output")
"""Names of layers that begin a dlpipe model's head (besides `head_*`): where a run's body ends."""


def build(spec, encoded: Encoded) -> keras.KerasTensor:
    one_image(encoded, "backbone")  # marks the image as read; the raw input is what goes in
    name = next(n for n, f in encoded.features.items() if f.type == "image")
    raw = encoded.raw[name]
    if spec.from_run is not None:
        return _from_run(spec, raw, name)
    if spec.preset is not None:
        return _preset(spec, raw, name)
    return _application(spec, raw, name)


def _adapt(x, name: str, size: tuple[int, int], channels: int):
    if x.shape[-1] != channels:
        x = ChannelConvert(channels, name=f"{name}_channels")(x)
    if tuple(x.shape[1:3]) != tuple(size):
        x = ResizeImage(*size, name=f"{name}_resize")(x)
    return x


def _application(spec, raw, name: str) -> keras.KerasTensor:
    entry = registry.entry("application", spec.application)
    size = tuple(spec.input_size or raw.shape[1:3])
    if min(size) < entry.min_size:
        raise BuildProblem(("model", "input_size"), f"{spec.application} needs images of at least "
                           f"{entry.min_size}×{entry.min_size}; the data's are {size[0]}×{size[1]}: set input_size")
    x = _adapt(raw, name, size, 3)
    if entry.preprocessing != "built_in":
        x = ImagePreprocess(entry.preprocessing, name=f"{name}_preprocess")(x)
    weights = None if spec.weights == "random" else spec.weights
    try:
        network = registry.load("application", spec.application)(
            include_top=False, weights=weights, input_shape=(*size, 3), pooling=spec.pooling)
    except Exception as err:  # noqa: BLE001  a download, a weights file or a shape Keras refuses: one line
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if weights == "imagenet":
            text = (f"could not get {spec.application}'s imagenet weights ({text}); offline, give the path of a "
                    "weights file, or random")
        elif weights is not None:
            text = f"cannot load {weights} into {spec.application} without its top: {text}"
        raise BuildProblem(("model", "weights" if weights else "application"), text) from None
    backbone = keras.Model(network.inputs[0], network.outputs[0], name=NAME)
    return backbone(x)


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _preset(spec, raw, name: str) -> keras.KerasTensor:
    """A KerasHub preset's backbone, fed as its image converter would feed it: cropped to the
    target's aspect ratio when the converter crops, resized to the converter's size (or the
    backbone's fixed one, or `input_size`), then `x * scale + offset` — rebuilt from dlpipe's layers, since KerasHub's converter resizes with Keras's
    Resizing layer, which runs in training mode. Its last feature map (or a transformer's
    tokens) is pooled inside the nested model."""
    where = ("model", "preset")
    try:
        import keras_hub
    except ImportError as err:
        raise BuildProblem(where, f"KerasHub presets need keras-hub ({_one_line(err)}); "
                           "pip install 'dlpipe[hub]'") from None
    try:
        network = keras_hub.models.Backbone.from_preset(spec.preset, load_weights=spec.weights == "imagenet")
        converter = keras_hub.layers.ImageConverter.from_preset(spec.preset)
    except Exception as err:  # noqa: BLE001  a download, a folder or a config KerasHub refuses: one line
        raise BuildProblem(where, f"cannot load KerasHub preset {spec.preset}: {_one_line(err)}") from None
    if spec.weights not in ("imagenet", "random"):
        try:
            network.load_weights(spec.weights)
        except Exception as err:  # noqa: BLE001
            raise BuildProblem(("model", "weights"), f"cannot load {spec.weights} into {type(network).__name__}: "
                               f"{_one_line(err)}") from None
    if len(network.inputs) != 1 or len(network.inputs[0].shape) != 4 or len(network.outputs) != 1:
        raise BuildProblem(where, f"{spec.preset}: {type(network).__name__} does not read one image and give one "
                           "output; a backbone needs an image classifier's backbone")
    _, height, width, channels = network.inputs[0].shape
    fixed = (height, width) if height is not None and width is not None else None
    if spec.input_size is not None and fixed is not None and tuple(spec.input_size) != fixed:
        raise BuildProblem(("model", "input_size"), f"{type(network).__name__} of {spec.preset} reads "
                           f"{fixed[0]}×{fixed[1]} images only; remove input_size (the image is resized to that)")
    size = tuple(spec.input_size or fixed or converter.image_size or raw.shape[1:3])
    x = raw
    if getattr(converter, "crop_to_aspect_ratio", False) and converter.image_size is not None:
        cropping = aspect_crop(*raw.shape[1:3], size)
        if cropping != ((0, 0), (0, 0)):
            x = keras.layers.Cropping2D(cropping, name=f"{name}_crop")(x)
    x = _adapt(x, name, size, channels or 3)
    if converter.scale is not None or converter.offset is not None:
        x = ScaleImage(converter.scale, converter.offset, name=f"{name}_preprocess")(x)
    features = network.outputs[0]
    rank = len(features.shape)
    if rank in (3, 4):
        pool = {("avg", 4): keras.layers.GlobalAveragePooling2D, ("max", 4): keras.layers.GlobalMaxPooling2D,
                ("avg", 3): keras.layers.GlobalAveragePooling1D, ("max", 3): keras.layers.GlobalMaxPooling1D}
        features = pool[(spec.pooling, rank)](name=f"{NAME}_pool")(features)
    elif rank != 2:
        raise BuildProblem(where, f"{spec.preset}: its backbone's output has shape {tuple(features.shape)}; "
                           "expected a feature map, tokens or a vector")
    backbone = keras.Model(network.inputs[0], features, name=NAME)
    try:
        return backbone(x)
    except ValueError as err:  # a preset whose graph does not run at this size: one line
        raise BuildProblem(("model", "input_size"), f"{spec.preset} does not run on {size[0]}×{size[1]} "
                           f"images: {_one_line(err)}") from None


def aspect_crop(height: int, width: int, size) -> tuple[tuple[int, int], tuple[int, int]]:
    """Cropping2D's ((top, bottom), (left, right)) for the centred crop a KerasHub converter
    with `crop_to_aspect_ratio` takes of a height × width image before resizing it to `size`
    (Keras's resize: the largest centred box of size's aspect ratio, integer sides)."""
    target_height, target_width = size
    crop_height = max(min(height, int(width * target_height / target_width)), 1)
    crop_width = max(min(width, int(height * target_width / target_height)), 1)
    top, left = int((height - crop_height) / 2), int((width - crop_width) / 2)
    return (top, height - crop_height - top), (left, width - crop_width - left)


def _from_run(spec, raw, name: str) -> keras.KerasTensor:
    from dlpipe.errors import DlpipeError
    from dlpipe.modelfile import load_keras_model

    where = ("model", "from_run")
    path = Path(spec.from_run) / "model.keras"
    try:
        earlier = load_keras_model(path)
    except DlpipeError as err:
        raise BuildProblem(where, str(err)) from None
    if len(earlier.inputs) != 1 or len(earlier.inputs[0].shape) != 4:
        raise BuildProblem(where, f"{path}: a backbone reads one image; that model has {len(earlier.inputs)} "
                           "inputs (or one that is no image)")
    cut = _body_output(earlier)
    if cut is None:
        raise BuildProblem(where, f"{path}: no dlpipe head found (layers head_*/output) to cut the body from")
    body = keras.Model(earlier.inputs[0], cut, name=NAME)
    wanted = tuple(int(d) for d in earlier.inputs[0].shape[1:3])
    if spec.input_size is not None and tuple(spec.input_size) != wanted:
        raise BuildProblem(("model", "input_size"), f"the run's body reads {wanted[0]}×{wanted[1]} images; "
                           "remove input_size (the image is resized to that)")
    return body(_adapt(raw, name, wanted, int(earlier.inputs[0].shape[-1])))


def _body_output(model):
    """The tensor a dlpipe model's head starts from: the input of its first head layer."""
    for layer in model.layers:
        if layer.name in HEAD_LAYERS or layer.name.startswith("head_"):
            found = layer.input
            return found[0] if isinstance(found, (list, tuple)) else found
    return None
