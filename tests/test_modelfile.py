"""Model files from elsewhere (dlpipe/modelfile.py): an archive that would unzip to gigabytes
is refused before Keras reads it, and a tampered one fails in one line naming the file (through `dlpipe predict`: test_reliability.py)."""

from __future__ import annotations

import copy
import json
import sys
import zipfile
from pathlib import Path

import pytest
from dlpipe.errors import DlpipeError
from dlpipe.modelfile import check_archive, load_keras_model


def archive(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as out:
        for name, data in members.items():
            out.writestr(name, data)
    return path


def test_a_config_that_unzips_beyond_the_cap_is_refused_without_importing_keras(tmp_path):
    # 65 MiB of JSON (spaces around an object) deflate to about 64 KiB: a small zip bomb.
    config = b" " * (65 << 20) + b"{}"
    bomb = archive(tmp_path / "bomb.keras", {"metadata.json": b"{}", "config.json": config})
    assert bomb.stat().st_size < 200_000
    modules = set(sys.modules)
    with pytest.raises(DlpipeError) as info:
        load_keras_model(bomb)
    assert str(info.value) == (f"{bomb}: cannot load the model: its config.json unzips to 68,157,442 bytes, more "
                               "than the 64 MiB a model's description needs")
    assert not {"keras", "tensorflow"} & (set(sys.modules) - modules)


def test_a_member_that_inflates_far_beyond_its_compressed_size_is_refused(tmp_path):
    weights = archive(tmp_path / "weights.keras", {"config.json": b"{}", "model.weights.h5": bytes(80 << 20)})
    with pytest.raises(DlpipeError, match=r"its model.weights.h5 unzips to 83,886,080 bytes from [\d,]+ \(a zip bomb\?\)$"):
        check_archive(weights)
    stored = archive(tmp_path / "stored.keras", {"config.json": b"{}", "model.weights.h5": bytes(80 << 20)},
                     zipfile.ZIP_STORED)
    check_archive(stored)  # as Keras writes them: stored, not compressed


def test_a_file_that_is_not_a_zip_is_left_to_keras(tmp_path):
    (tmp_path / "text.keras").write_text("not a zip")
    check_archive(tmp_path / "text.keras")
    check_archive(tmp_path)  # a SavedModel folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    import keras

    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(hidden)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    keras.Model(inputs, outputs).save(path)
    with zipfile.ZipFile(path) as source:
        config = json.loads(source.read("config.json"))
    return path, config


def tampered(original: Path, target: Path, config_text: str) -> Path:
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            out.writestr(item, config_text if item.filename == "config.json" else source.read(item.filename))
    return target


def edited(config: dict, change) -> str:
    config = copy.deepcopy(config)
    change(config)
    return json.dumps(config)


TAMPERED = {
    # Cut inside the model's name: the position depends on the name's length, so the reason is
    # what the standard library says of the very same text.
    "truncated": (lambda c: json.dumps(c)[:200], None),
    "a list": (lambda c: "[1, 2]", "list indices must be integers or slices, not str"),
    "unknown class": (lambda c: edited(c, lambda d: d["config"]["layers"][1].update(class_name="NoSuch")),
                      "Could not deserialize 'keras.layers.NoSuch' because it is not a KerasSaveable subclass"),
    "inbound nodes": (lambda c: edited(c, lambda d: d["config"]["layers"][2].update(inbound_nodes=[{"args": 3}])),
                      "KeyError: 'kwargs'"),
    "dtype": (lambda c: edited(c, lambda d: d["config"]["layers"][1]["config"].update(
        dtype={"class_name": "X", "config": 1})), "AttributeError: 'str' object has no attribute 'quantization_mode'"),
    "output": (lambda c: edited(c, lambda d: d["config"].update(output_layers=[["nope", 0, 0]])),
               "RuntimeError: Internal error: could not find layer nope."),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_config_is_one_line_naming_the_file(saved, tmp_path, case):
    original, config = saved
    text, reason = TAMPERED[case]
    path = tampered(original, tmp_path / "model.keras", text(config))
    if reason is None:
        with pytest.raises(json.JSONDecodeError) as decoding:
            json.loads(text(config))
        reason = str(decoding.value)
    with pytest.raises(DlpipeError) as info:
        load_keras_model(path)
    assert str(info.value) == f"{path}: cannot load the model: {reason}"
