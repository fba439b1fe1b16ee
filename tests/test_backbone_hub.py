"""KerasHub presets as backbones, offline: the test builds tiny presets with random weights
(`save_to_preset` into a folder, image converter beside), points a spec at the folder,
trains two epochs (frozen, then unfrozen), exports keras, saved_model and tflite and
verifies them; the model reads raw 8×8 grey digits and adapts them inside itself."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dlpipe.runner import run_spec
from dlpipe.spec import load_spec
from dlpipe.spec.paths import resolved

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: hub-resnet
task: classification
seed: 4
data:
  source: {type: builtin, name: digits}
  features: [{name: image, type: image}]
  target: {name: label, label_map: {"0": "0", "1": "1"}, on_unknown: drop}
  split: {train: 0.5, validation: 0.1, test: 0.4}
model:
  type: backbone
  preset: ./tiny-resnet
  fine_tune: {freeze_epochs: 1, unfreeze: 2, learning_rate_factor: 0.5}
training: {epochs: 2, batch_size: 32, progress: none, optimizer: {type: adam, learning_rate: 0.01}}
export:
  formats: [keras, saved_model, tflite]
  tflite: {quantization: [float32]}
"""

SCALE = [1 / (16 * 0.229), 1 / (16 * 0.224), 1 / (16 * 0.225)]  # digits are 0..16: ImageNet statistics on them
OFFSET = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two presets as KerasHub writes them: a ResNet at any image size whose converter
    resizes to 16×16 with ImageNet's per-channel statistics, and a ViT built for 16×16."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("hub")
    resnet = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block", use_pre_activation=False, image_shape=(None, None, 3))
    resnet.save_to_preset(str(folder / "tiny-resnet"))
    keras_hub.layers.ResNetImageConverter(image_size=(16, 16), scale=SCALE, offset=OFFSET).save_to_preset(
        str(folder / "tiny-resnet"))
    vit = keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=4, num_layers=1, num_heads=2,
                                       hidden_dim=8, mlp_dim=16)
    vit.save_to_preset(str(folder / "tiny-vit"))
    keras_hub.layers.ViTImageConverter(image_size=(16, 16), scale=1 / 127.5, offset=-1.0).save_to_preset(
        str(folder / "tiny-vit"))
    (folder / "spec.yaml").write_text(SPEC)
    return folder


def build(spec_path: Path, overrides=()):
    from dlpipe.pipelines.supervised import deep_build

    spec = resolved(load_spec(spec_path, overrides), spec_path.parent)
    return deep_build(spec, spec_path.parent, None)


def test_a_preset_folder_trains_freezes_unfreezes_and_exports_raw_image_models(folder):
    import keras
    import keras_hub

    run = run_spec(folder / "spec.yaml", out=folder / "run")
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["phase"] for row in rows] == ["0.0", "1.0"]
    frozen, unfrozen = (float(row["trainable_params"]) for row in rows)
    assert frozen == 64 + 1  # the sigmoid output on the pooled 64 features
    model = keras.saving.load_model(run / "model.keras", compile=False)
    backbone = model.get_layer("backbone")
    top = [layer for layer in backbone.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    assert unfrozen == frozen + sum(int(np.prod(w.shape)) for w in top[-1].trainable_weights + top[-2].trainable_weights)
    verification = json.loads((run / "export" / "verification.json").read_text())
    for key in ("keras", "saved_model", "tflite/float32"):
        assert verification[key]["passed"] is True, (key, verification[key])
    assert model.inputs[0].shape[1:] == (8, 8, 1)  # raw 8×8 grey digits in; 16×16 RGB inside
    # What trained: the top two layers moved from the preset's weights, the rest (batch-norm
    # statistics included: frozen, inference mode) are the preset's to the bit.
    saved = keras_hub.models.Backbone.from_preset(str(folder / "tiny-resnet"))
    moved = {layer.name for layer in top[-2:]}
    for layer in backbone.layers[1:-1]:  # between its input and the pooling
        for mine, theirs in zip(layer.get_weights(), saved.get_layer(layer.name).get_weights(), strict=True):
            assert np.array_equal(mine, theirs) != (layer.name in moved), layer.name

    # The preprocessing inside is the preset's converter: a raw image through the model's
    # adaptation equals KerasHub's converter on the same image made RGB and 16×16.
    images = np.random.default_rng(0).uniform(0, 16, size=(3, 8, 8, 1)).astype("float32")
    adapted = keras.Model(model.inputs, model.get_layer("image_preprocess").output)({"image": images})
    converter = keras_hub.layers.ImageConverter.from_preset(str(folder / "tiny-resnet"))
    rgb = keras.ops.image.resize(np.repeat(images, 3, axis=-1), (16, 16), interpolation="bilinear")
    assert np.allclose(keras.ops.convert_to_numpy(adapted), keras.ops.convert_to_numpy(converter(rgb)), atol=1e-5)


def test_a_preset_starts_from_its_weights_random_or_a_weights_file(folder):
    import keras
    import keras_hub

    saved = keras_hub.models.Backbone.from_preset(str(folder / "tiny-resnet"))
    model = build(folder / "spec.yaml")
    for mine, theirs in zip(model.get_layer("backbone").get_weights(), saved.get_weights(), strict=True):
        assert np.array_equal(mine, theirs)
    fresh = build(folder / "spec.yaml", ["model.weights=random"]).get_layer("backbone").get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(fresh, saved.get_weights(), strict=True))
    rng = np.random.default_rng(2)
    saved.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in saved.get_weights()])
    saved.save_weights(folder / "moved.weights.h5")
    moved = build(folder / "spec.yaml", [f"model.weights={folder / 'moved.weights.h5'}"])
    for mine, theirs in zip(moved.get_layer("backbone").get_weights(), saved.get_weights(), strict=True):
        assert np.array_equal(mine, theirs)
    assert isinstance(moved.get_layer("backbone").get_layer("backbone_pool"), keras.layers.GlobalAveragePooling2D)


def test_a_vision_transformer_preset_pools_its_tokens_at_its_fixed_size(folder):
    import keras

    model = build(folder / "spec.yaml", ["model.preset=./tiny-vit", "model.pooling=max"])
    backbone = model.get_layer("backbone")
    assert backbone.inputs[0].shape[1:] == (16, 16, 3)
    assert isinstance(backbone.get_layer("backbone_pool"), keras.layers.GlobalMaxPooling1D)
    assert backbone.output.shape[-1] == 8 and model.output.shape[-1] == 1
    from click.testing import CliRunner

    from dlpipe.cli import main

    (folder / "vit.yaml").write_text(SPEC.replace("./tiny-resnet", "./tiny-vit\n  input_size: [32, 32]"))
    result = CliRunner().invoke(main, ["validate", "--deep", str(folder / "vit.yaml")])
    assert result.exit_code == 1 and result.output.strip() == (
        f"{folder / 'vit.yaml'}:13:15: model.input_size: ViTBackbone of {folder / 'tiny-vit'} reads 16×16 images "
        "only; remove input_size (the image is resized to that)")


def test_the_names_validate_reads_without_importing_are_the_names_keras_hub_lists():
    """dlpipe/kerashub.py parses KerasHub's preset tables; importing KerasHub lists the same."""
    import keras_hub

    from dlpipe.kerashub import image_preset_names

    assert set(image_preset_names()) == set(keras_hub.models.ImageClassifier.presets)
    assert {"resnet_50_imagenet", "mobilenet_v3_small_100_imagenet", "efficientnet_b0_ra_imagenet",
            "vit_base_patch16_224_imagenet"} <= set(image_preset_names())


def test_a_non_square_image_is_cropped_to_the_converters_aspect_as_keras_hub_crops_it():
    """A converter with crop_to_aspect_ratio (KerasHub's default) takes the centred box of its
    size's aspect ratio before resizing: the model's Cropping2D + ResizeImage equal it."""
    import keras
    import keras_hub

    from dlpipe.architectures.adapt import ResizeImage
    from dlpipe.architectures.backbone import aspect_crop

    converter = keras_hub.layers.ImageConverter(image_size=(16, 12), crop_to_aspect_ratio=True)
    images = np.random.default_rng(3).uniform(0, 255, size=(2, 9, 20, 3)).astype("float32")
    for shape in ((9, 20), (20, 9), (12, 12), (16, 12)):
        cropping = aspect_crop(*shape, (16, 12))
        x = keras.Input((*shape, 3))
        mine = keras.Model(x, ResizeImage(16, 12)(keras.layers.Cropping2D(cropping)(x)))
        batch = np.ascontiguousarray(np.resize(images, (2, *shape, 3)))
        assert np.allclose(keras.ops.convert_to_numpy(mine(batch)), keras.ops.convert_to_numpy(converter(batch)),
                           atol=1e-4), shape
