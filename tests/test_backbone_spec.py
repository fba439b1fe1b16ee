"""The `backbone` model section without TensorFlow: `dlpipe validate` refuses an unknown
application (did-you-mean), a `from_run` folder that holds no run, and the combinations a
backbone cannot honour, each at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dlpipe import registry, tasks
from dlpipe.cli import main
from dlpipe.spec import Spec

SPEC = """\
version: 1
name: transfer
task: classification
data:
  source: {type: builtin, name: mnist}
  features: [{name: image, type: image}]
  target: {name: label}
model:
  type: backbone
  MODEL
training: {epochs: 3}
"""


def validate(tmp_path: Path, model: str, spec: str = SPEC) -> tuple[int, list[str]]:
    path = tmp_path / "spec.yaml"
    path.write_text(spec.replace("MODEL", model))
    result = CliRunner().invoke(main, ["validate", "--no-cache", str(path)])
    return result.exit_code, [line.removeprefix(str(path)) for line in result.output.strip().splitlines()]


def fake_run(folder: Path, files=("run.json", "model.keras")) -> Path:
    folder.mkdir()
    for name in files:
        (folder / name).write_text("{}")
    return folder


def test_an_application_and_its_schedule_validate_and_round_trip(tmp_path):
    code, lines = validate(tmp_path, "application: MobileNetV3Small\n  weights: random\n  input_size: [32, 32]\n"
                           "  fine_tune: {freeze_epochs: 1, unfreeze: 10, learning_rate_factor: 0.1}")
    assert code == 0, lines
    from dlpipe.spec import load_spec

    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.model.fine_tune.unfreeze == 10 and spec.model.weights == "random"
    assert Spec.model_validate(spec.model_dump()) == spec


def test_an_unknown_application_is_refused_at_its_line_with_a_did_you_mean(tmp_path):
    code, lines = validate(tmp_path, "application: MobileNetV3small")
    assert code == 1
    assert lines == [":10:16: model.application: unknown application 'MobileNetV3small'; "
                     "did you mean 'MobileNetV3Small'?"]


def test_a_from_run_folder_that_holds_no_run_is_refused_at_its_line(tmp_path):
    (tmp_path / "empty").mkdir()
    fake_run(tmp_path / "half", files=("run.json",))
    fake_run(tmp_path / "earlier")
    code, lines = validate(tmp_path, "from_run: empty")
    assert code == 1 and lines == [f":10:13: model.from_run: {tmp_path / 'empty'} holds no dlpipe run (no run.json "
                                   "or model.keras); name the --out folder of a finished `dlpipe run`"]
    code, lines = validate(tmp_path, "from_run: half")
    assert code == 1 and lines[0].endswith("holds no dlpipe run (no model.keras); name the --out folder of a "
                                           "finished `dlpipe run`")
    code, lines = validate(tmp_path, "from_run: earlir")
    assert code == 1 and lines == [f":10:13: model.from_run: no such run folder: {tmp_path / 'earlir'}; "
                                   "did you mean 'earlier'?"]
    assert validate(tmp_path, "from_run: earlier")[0] == 0


def test_a_backbone_needs_exactly_one_network_and_keys_that_fit_it(tmp_path):
    fake_run(tmp_path / "earlier")
    code, lines = validate(tmp_path, "head: {units: [8]}")
    assert code == 1 and lines == [":9:3: model: a backbone starts from a network: give application (a Keras "
                                   "application), preset (a KerasHub preset) or from_run"]
    code, lines = validate(tmp_path, "application: ResNet50\n  from_run: earlier")
    assert code == 1 and lines == [":11:13: model.from_run: application and from_run cannot be combined; give "
                                   "one network to start from"]
    code, lines = validate(tmp_path, "from_run: earlier\n  weights: random")
    assert code == 1 and lines == [":11:12: model.weights: weights belongs to an application; a run's body keeps "
                                   "its own weights and pooling"]
    code, lines = validate(tmp_path, "application: InceptionV3\n  input_size: [32, 32]")
    assert code == 1 and lines == [":11:15: model.input_size: InceptionV3 needs images of at least 75×75, got 32×32"]
    code, lines = validate(tmp_path, "application: ResNet50\n  weights: nowhere.weights.h5")
    assert code == 1 and lines == [f":11:12: model.weights: no such file: {tmp_path / 'nowhere.weights.h5'}"]
    code, lines = validate(tmp_path, "application: ResNet50\n  fine_tune: {unfreeze: 0}")
    assert code == 1 and "model.fine_tune.unfreeze" in lines[0]


def test_the_image_is_adapted_by_the_backbone_not_by_the_data_section(tmp_path):
    spec = SPEC.replace("[{name: image, type: image}]", "[{name: image, type: image, size: [32, 32]}]")
    code, lines = validate(tmp_path, "application: ResNet50", spec)
    assert code == 1 and lines == [":6:47: data.features[0].size: a backbone adapts the image to its network itself "
                                   "(model.input_size, 1 ↔ 3 channels); remove size"]
    spec = SPEC.replace("model:", "prepare:\n  normalization: {image: {type: rescale, scale: 0.1}}\nmodel:")
    code, lines = validate(tmp_path, "application: ResNet50", spec)
    assert code == 1 and "prepare.normalization.image: a backbone reads raw pixels" in lines[0]


def test_weights_words_are_no_paths_and_a_file_is_resolved(tmp_path):
    from dlpipe.spec.paths import path_values, resolved

    (tmp_path / "net.weights.h5").write_bytes(b"")
    assert validate(tmp_path, "application: ResNet50\n  weights: net.weights.h5")[0] == 0
    from dlpipe.spec import load_spec

    spec = load_spec(tmp_path / "spec.yaml")
    assert resolved(spec, tmp_path).model.weights == str(tmp_path / "net.weights.h5")
    for word in ("imagenet", "random"):
        validate(tmp_path, f"application: ResNet50\n  weights: {word}")
        spec = load_spec(tmp_path / "spec.yaml")
        assert resolved(spec, Path("/elsewhere")).model.weights == word
        assert not [v for _, v, _ in path_values(spec) if v == word]


def test_an_inline_label_map_is_no_file(tmp_path):
    """A label_map is a mapping or a file's path: the mapping's values are class names."""
    spec = SPEC.replace("target: {name: label}", 'target: {name: label, label_map: {"5": five, "6": six}, '
                        "on_unknown: drop}")
    code, lines = validate(tmp_path, "application: ResNet50", spec)
    assert code == 0, lines


def test_every_application_has_its_facts_and_tasks_that_train_it_honour_its_keys():
    for name in registry.names("application"):
        entry = registry.entry("application", name)
        assert entry.target == f"keras.applications:{name}"
        assert entry.preprocessing in ("built_in", "tf", "caffe", "torch") and entry.min_size >= 32
    for task in ("classification", "regression"):
        for key in ("model.application", "model.from_run", "model.weights", "model.fine_tune.freeze_epochs",
                    "model.fine_tune.unfreeze", "model.fine_tune.learning_rate_factor", "model.fine_tune.batch_norm"):
            assert tasks.get(task).honoured(key), (task, key)


def test_init_copies_the_earlier_run_a_template_starts_from(tmp_path):
    from dlpipe import templates

    assert templates.companions(templates.path("image-transfer-learning")) == ["pretrained/digits-0-4"]
    assert all(templates.companions(templates.path(name)) == [] for name in templates.names()
               if name != "image-transfer-learning")
    result = CliRunner().invoke(main, ["init", "image-transfer-learning", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("run.json", "model.keras", "spec.yaml"):
        assert (tmp_path / "pretrained" / "digits-0-4" / name).is_file()
    result = CliRunner().invoke(main, ["validate", "--no-cache", str(tmp_path / "image-transfer-learning.yaml")])
    assert result.exit_code == 0, result.output


def preset_folder(folder: Path, config: dict | None = None, tasks=("ImageClassifier",), converter=True) -> Path:
    """The files of a preset as KerasHub's save_to_preset lays them out (contents as far as
    validate reads them: the backbone's class, the tasks, the converter's presence)."""
    import json

    folder.mkdir()
    config = config or {"module": "keras_hub.src.models.resnet.resnet_backbone", "class_name": "ResNetBackbone",
                        "config": {}, "registered_name": "keras_hub>ResNetBackbone"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metadata.json").write_text(json.dumps({"keras_hub_version": "0.32.0", "tasks": list(tasks)}))
    if converter:
        (folder / "image_converter.json").write_text("{}")
    (folder / "model.weights.h5").write_bytes(b"")
    return folder


def test_a_preset_name_is_checked_against_keras_hubs_image_presets(tmp_path):
    assert validate(tmp_path, "preset: resnet_50_imagenet\n  fine_tune: {freeze_epochs: 1}")[0] == 0
    assert validate(tmp_path, "preset: kaggle://keras/resnetv1/keras/resnet_50_imagenet/3")[0] == 0
    code, lines = validate(tmp_path, "preset: resnet_50_imagenett")
    assert code == 1 and lines == [":10:11: model.preset: unknown KerasHub image preset 'resnet_50_imagenett'; did "
                                   "you mean 'resnet_50_imagenet'? (a local preset folder is written as a path: "
                                   "./NAME)"]
    code, lines = validate(tmp_path, "preset: bert_base_en")  # a text model's preset is no image backbone
    assert code == 1 and lines[0].startswith(":10:11: model.preset: unknown KerasHub image preset 'bert_base_en'")
    code, lines = validate(tmp_path, "preset: resnet_50_imagenet\n  application: ResNet50")
    assert code == 1 and lines == [":10:11: model.preset: application and preset cannot be combined; give "
                                   "one network to start from"]


def test_a_preset_folder_must_hold_an_image_classifiers_backbone(tmp_path):
    preset_folder(tmp_path / "tiny")
    assert validate(tmp_path, "preset: ./tiny\n  input_size: [16, 16]")[0] == 0
    code, lines = validate(tmp_path, "preset: ./tiy")
    assert code == 1 and lines == [f":10:11: model.preset: no such preset folder: {tmp_path / 'tiy'}; did you "
                                   "mean 'tiny'?"]
    (tmp_path / "empty").mkdir()
    code, lines = validate(tmp_path, "preset: ./empty")
    assert code == 1 and lines == [f":10:11: model.preset: {tmp_path / 'empty'} holds no KerasHub preset (no "
                                   "readable config.json naming a backbone class); give a folder written by "
                                   "save_to_preset, or a preset name"]
    preset_folder(tmp_path / "bert", {"module": "keras_hub.src.models.bert.bert_backbone",
                                      "class_name": "BertBackbone"}, tasks=("MaskedLM", "TextClassifier"))
    code, lines = validate(tmp_path, "preset: ./bert")
    assert code == 1 and lines == [f":10:11: model.preset: {tmp_path / 'bert'}: BertBackbone is not an image "
                                   "classifier's backbone (its tasks: MaskedLM, TextClassifier); a backbone model "
                                   "reads images"]
    preset_folder(tmp_path / "keras", {"module": "keras.src.models.functional", "class_name": "Functional"})
    code, lines = validate(tmp_path, "preset: ./keras")
    assert code == 1 and lines[0].endswith("config.json names keras.src.models.functional.Functional, not a "
                                           "KerasHub backbone")
    preset_folder(tmp_path / "bare", converter=False)
    code, lines = validate(tmp_path, "preset: ./bare")
    assert code == 1 and "holds no image_converter.json" in lines[0]
    code, lines = validate(tmp_path, "preset: ./tiny\n  weights: nowhere.weights.h5")
    assert code == 1 and lines == [f":11:12: model.weights: no such file: {tmp_path / 'nowhere.weights.h5'}"]


def test_a_preset_folder_is_a_path_a_preset_name_is_not(tmp_path):
    from dlpipe.spec import load_spec
    from dlpipe.spec.paths import resolved

    preset_folder(tmp_path / "tiny")
    for value, expected in (("./tiny", str(tmp_path / "tiny")), ("resnet_18_imagenet", "resnet_18_imagenet"),
                            ("hf://keras/resnet_18", "hf://keras/resnet_18")):
        validate(tmp_path, f"preset: {value}")
        assert resolved(load_spec(tmp_path / "spec.yaml"), tmp_path).model.preset == expected


def test_without_keras_hub_a_preset_is_refused_in_one_line_naming_the_extra(tmp_path):
    """Validation asks whether keras_hub is installed (looked up, not imported): in a process
    whose import system cannot find it, one line names the extra, whatever the preset."""
    import subprocess
    import sys

    blocked = ("import sys\n"
               "class NoHub:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'keras_hub':\n"
               "            raise ModuleNotFoundError(name)\n"
               "sys.meta_path.insert(0, NoHub())\n"
               "from dlpipe.cli import main\n"
               "main()\n")
    preset_folder(tmp_path / "tiny")
    for value in ("resnet_50_imagenet", "./tiny"):
        (tmp_path / "spec.yaml").write_text(SPEC.replace("MODEL", f"preset: {value}"))
        done = subprocess.run([sys.executable, "-c", blocked, "validate", "--no-cache", str(tmp_path / "spec.yaml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert (done.stdout + done.stderr).strip() == (f"{tmp_path / 'spec.yaml'}:10:11: model.preset: KerasHub presets "
                                                       "need the keras-hub package, which is not installed (pip "
                                                       "install 'dlpipe[hub]')")


def test_validating_a_preset_imports_neither_keras_hub_nor_tensorflow(tmp_path):
    import json
    import subprocess
    import sys

    preset_folder(tmp_path / "tiny")
    specs = []
    for i, value in enumerate(("resnet_50_imagenet", "resnet_50_imagenett", "./tiny")):
        specs.append(tmp_path / f"spec{i}.yaml")
        specs[-1].write_text(SPEC.replace("MODEL", f"preset: {value}"))
    code = ("import json, sys\n"
            "from dlpipe.cli import main\n"
            "try:\n"
            "    main(['validate', '--no-cache', *sys.argv[1:]])\n"
            "except SystemExit as exit:\n"
            "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'keras_hub'})\n"
            "    print(json.dumps([exit.code, heavy]))\n")
    done = subprocess.run([sys.executable, "-c", code, *map(str, specs)], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1, []], done.stdout + done.stderr
    assert "did you mean 'resnet_50_imagenet'?" in done.stdout + done.stderr
