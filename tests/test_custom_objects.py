"""dlpipe's Keras objects are registered in one place (dlpipe/custom_objects.py), which the
one model loader (dlpipe/modelfile.py) imports: every kind of model dlpipe writes loads in a
fresh process through the loader, and without that registration it would not."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _registering_modules() -> set[str]:
    """Modules of dlpipe/ that register a Keras object (a `register_keras_serializable` decorator)."""
    found = set()
    for path in sorted((ROOT / "dlpipe").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "register_keras_serializable":
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_every_module_that_registers_a_keras_object_is_imported_by_custom_objects():
    tree = ast.parse((ROOT / "dlpipe" / "custom_objects.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    registering = _registering_modules()
    assert {"dlpipe.architectures.layers", "dlpipe.architectures.centernet"} <= registering  # the scan finds them
    assert registering <= imported, f"import {sorted(registering - imported)} in dlpipe/custom_objects.py"


def test_the_loader_imports_custom_objects():
    tree = ast.parse((ROOT / "dlpipe" / "modelfile.py").read_text(encoding="utf-8"))
    assert "dlpipe.custom_objects" in {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                                       for alias in node.names}


# Every kind of model dlpipe writes: each template's model as its pipeline builds it (the
# `validate --deep` hook), with overrides that bring in each custom layer; tiny data.
MODELS = {
    "classifier_imputed": ("tabular-classification", ["prepare.imputation={numerical: {type: mean}}"]),
    "classifier_reconstructing": ("tabular-classification",
                                  ["model={type: autoencoder, units: [8], latent: 4, reconstruction_weight: 0.5}",
                                   "tuning=null"]),
    "vit_rgb": ("image-classification", ["data.features=[{name: image, type: image, channels: 3}]",
                                        "model={type: vit, patch_size: 4, blocks: 1, heads: 1, key_dim: 4, model_dim: 8, feed_forward: 8}"]),
    "text_imputed": ("text-classification", ["prepare.imputation={text: {type: most_frequent}}"]),
    "categories_imputed": ("../tests/fixtures/churn", ["prepare.imputation={categorical: {type: most_frequent}}"]),
    "transformer": ("text-classification", ["model={type: transformer, blocks: 1, heads: 1, key_dim: 4, model_dim: 8, feed_forward: 8}"]),
    "ssm": ("text-classification", ["model={type: ssm, blocks: 1, model_dim: 8, state_size: 4}"]),
    "forecaster": ("time-series-forecasting", []),
    # An application on grey 8×8 digits: resized and turned RGB inside the model, then its own
    # preprocessing (ResizeImage, ImagePreprocess); random weights, nothing downloaded.
    "backbone_application": ("image-classification", ["model={type: backbone, application: MobileNetV2, "
                                                      "weights: random, input_size: [32, 32]}", "prepare.normalization={}"]),
    "backbone_from_run": ("image-transfer-learning", [f"model.from_run={ROOT / 'specs' / 'pretrained' / 'digits-0-4'}"]),
    # A KerasHub preset folder the fixture writes (PRESET): its converter's size and per-channel
    # scale and offset inside the model (ResizeImage, ScaleImage); KerasHub's own classes,
    # which Keras imports by their module.
    "backbone_preset": ("image-classification", ["model={type: backbone, preset: PRESET}", "prepare.normalization={}"]),
    "classifier_quantization_aware": ("image-classification", ["compression.quantization_aware={}",
                                                               "export.formats=[tflite]",
                                                               "export.tflite={quantization: [int8]}"]),
    "autoencoder": ("autoencoder-embeddings", []),
    "detector": ("object-detection", ["data.source.images=24", "data.source.image_size=32",
                                      "data.source.max_size=14", "model.filters=[8,16,16]"]),
    "generator": ("image-generation-gan", []),
    "sampler": ("image-generation-diffusion", ["model.unet.filters=[8,16]", "model.sampler.steps=2"]),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    from dlpipe import tasks
    from dlpipe.spec import load_document

    folder = tmp_path_factory.mktemp("models")
    preset = _tiny_preset(folder / "preset")
    files = {}
    for name, (template, overrides) in MODELS.items():
        path = (ROOT / "specs" / f"{template}.yaml").resolve()
        spec, document = load_document(path, [o.replace("PRESET", str(preset)) for o in overrides])
        model = tasks.get(spec.task).hook("deep_build")(spec, path.parent, None)
        files[name] = folder / f"{name}.keras"
        model.save(files[name])
    return files


def _tiny_preset(folder: Path) -> Path:
    """A ResNet backbone preset with random weights and its image converter, as KerasHub saves them."""
    import keras_hub

    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block", use_pre_activation=False, image_shape=(None, None, 3),
    ).save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(image_size=(16, 16), scale=[0.2, 0.3, 0.4], offset=[-1.0, -1.5, -2.0]
                                          ).save_to_preset(str(folder))
    return folder


def _dlpipe_classes(path: Path) -> set[str]:
    """The registered names (`dlpipe>Name`) a .keras file's config refers to."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("registered_name"), str) and node["registered_name"].startswith("dlpipe>"):
                found.add(node["registered_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}, cwd=ROOT)


@pytest.mark.slow
def test_every_kind_of_model_loads_in_a_fresh_process_through_the_loader(saved):
    import keras

    import dlpipe.custom_objects  # noqa: F401

    layers = {name for name, cls in keras.saving.get_custom_objects().items()
              if name.startswith("dlpipe>") and isinstance(cls, type) and issubclass(cls, keras.layers.Layer)}
    used = {name: _dlpipe_classes(path) for name, path in saved.items()}
    assert set().union(*used.values()) == layers, "a custom layer no model here holds: add a model that uses it"

    # One fresh process: first Keras alone, which cannot find dlpipe's classes (the test can
    # fail), then the one loader, which registers them itself.
    files = {name: str(path) for name, path in saved.items()}
    held = [name for name in MODELS if used[name]]
    assert len(held) >= 6
    done = _fresh(
        "import json, sys\n"
        "import keras\n"
        f"files = {files!r}\n"
        "unfound = []\n"
        "for name, path in files.items():\n"
        "    try:\n"
        "        keras.saving.load_model(path, safe_mode=True, compile=False)\n"
        "    except Exception as err:\n"
        "        unfound.append(name if 'dlpipe>' in str(err) else str(err)[:300])\n"
        "assert not any(m.startswith('dlpipe') for m in sys.modules)\n"
        "from dlpipe.modelfile import load_keras_model\n"
        "layers = {name: len(load_keras_model(path).layers) for name, path in files.items()}\n"
        "print(json.dumps([unfound, sorted(layers)]))\n")
    assert done.returncode == 0, done.stderr[-3000:]
    unfound, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert unfound == held
    assert loaded == sorted(MODELS)
