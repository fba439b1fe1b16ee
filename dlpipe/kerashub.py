"""KerasHub presets a `backbone` model may start from (`model.preset`), known without
importing KerasHub or TensorFlow: `dlpipe validate` reads what it needs from the files.

A preset value is one of three things:
  - a folder, written as a path (it holds a `/`, or begins with `.` or `~`): a preset as
    KerasHub's `save_to_preset` writes it — config.json (the backbone's class and config),
    metadata.json, model.weights.h5 and image_converter.json (the preset's own resizing and
    rescaling, which dlpipe rebuilds inside the model);
  - a handle KerasHub resolves itself (`kaggle://...`, `hf://...`), fetched when online;
  - a name KerasHub lists (`resnet_50_imagenet`), fetched by KerasHub when online. The
    names are the backbone presets of KerasHub's image classifiers, read from the preset
    tables inside the installed package (`keras_hub/src/models/<family>/*_presets.py`, a
    family that has an `*_image_classifier.py`), parsed, never imported.

The standard library only.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os

PACKAGE = "keras_hub"
INSTALL = "pip install 'dlpipe[hub]'"
HANDLES = ("kaggle://", "hf://", "modelscope://", "gs://", "file://")
"""Prefixes of the handles KerasHub resolves itself (no name check, no folder check)."""

CLASSIFIER_TASK = "ImageClassifier"
"""The task KerasHub's metadata.json lists for an image classifier's backbone."""


def is_handle(value: str) -> bool:
    return value.startswith(HANDLES)


def is_folder(value: str) -> bool:
    """Whether a preset value names a local folder (a path), rather than a name or a handle."""
    if is_handle(value):
        return False
    return "/" in value or os.sep in value or value.startswith((".", "~"))


def installed() -> bool:
    try:
        return importlib.util.find_spec(PACKAGE) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def image_preset_names() -> tuple[str, ...] | None:
    """The backbone presets of KerasHub's image classifiers, sorted (None: not installed)."""
    try:
        found = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    models = os.path.join(list(found.submodule_search_locations)[0], "src", "models")
    names: set[str] = set()
    try:
        families = sorted(os.listdir(models))
    except OSError:
        return ()
    for family in families:
        folder = os.path.join(models, family)
        try:
            files = os.listdir(folder)
        except OSError:
            continue
        if not any(name.endswith("_image_classifier.py") for name in files):
            continue
        for name in files:
            if name.endswith("_presets.py"):
                names.update(_preset_keys(os.path.join(folder, name)))
    return tuple(sorted(names))


def _preset_keys(path: str) -> set[str]:
    """The keys of a presets module's `backbone_presets` dict literal, `**other` spreads of
    dicts assigned earlier in the module followed."""
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return set()
    dicts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    dicts[target.id] = node.value

    def keys(node: ast.Dict, depth: int = 0) -> set[str]:
        found = set()
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.add(key.value)
            elif key is None and isinstance(value, ast.Name) and value.id in dicts and depth < 8:
                found |= keys(dicts[value.id], depth + 1)
        return found

    return keys(dicts["backbone_presets"]) if "backbone_presets" in dicts else set()


def folder_problem(path: str, seen) -> str | None:
    """Why the folder `path` is no image classifier's backbone preset (None when it is one),
    looked at through `seen` (a validation_cache.Observations)."""
    state = seen.stat(path)
    if state is None:
        return f"no such preset folder: {path}"
    if state[0] != "folder":
        return f"{path} is a {state[0]}, not a KerasHub preset folder"
    config = seen.small_json(os.path.join(path, "config.json"))
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        return (f"{path} holds no KerasHub preset (no readable config.json naming a backbone class); "
                "give a folder written by save_to_preset, or a preset name")
    module, name = str(config.get("module", "")), config["class_name"]
    if module.split(".")[0] != PACKAGE or not name.endswith("Backbone"):
        return f"{path}: config.json names {module}.{name}, not a KerasHub backbone"
    metadata = seen.small_json(os.path.join(path, "metadata.json"))
    if not isinstance(metadata, dict):
        return f"{path} holds no readable metadata.json; give a folder written by save_to_preset"
    tasks = metadata.get("tasks")
    if isinstance(tasks, list) and CLASSIFIER_TASK not in tasks:
        return (f"{path}: {name} is not an image classifier's backbone (its tasks: "
                f"{', '.join(map(str, tasks)) or 'none'}); a backbone model reads images")
    if (seen.stat(os.path.join(path, "image_converter.json")) or ("",))[0] != "file":
        return (f"{path} holds no image_converter.json (the preset's resizing and rescaling, which the model "
                "applies to raw images); save the image converter beside it with save_to_preset")
    return None
