"""Stage caching: rerunning a spec into its run directory redoes only what changed.

Each stage of a pipeline has a key: a SHA-256 of the spec sections and inputs it depends
on, chained, so a stage's key changes whenever an earlier stage's does:

    data      every top-level section except model/training/evaluation/export/tuning/name/
              description/tracking/distillation (so: task, seed, data, prepare, and any section
              added later),
              training.sample_weight, dlpipe's version, and the bytes of the pretrained
              vector files features name (read when the model is built)
    train     data + the prepared data's fingerprint (a hash of the values read: a changed
              file the spec names the same way retrains) + model + training + distillation
              (and the bytes of the teacher's model file)
    evaluate  train + evaluation (but evaluation.explain)
    export    evaluate + export + name + description (the model card carries the metrics, the
              run's name and its description)
    explain   train + evaluation.explain (explanations read the model and the data only)

The files the data stage reads are not in its key: the stage cannot know them before it
reads. It records them instead (`RunDir.stage(..., reads=True)`, dlpipe/readlog.py: every
file a loader opened with its SHA-256, every folder it listed), and `RunDir.reusable(...,
reads=True)` reuses it only when each of them hashes the same now and each folder lists
the same; otherwise run.json says which (`stages.data.changed`) and the stage runs again.

run.json records `stages.<name>.key` and `.reused`. A stage is reused when the run the
folder held completed it with the same key and its outputs still exist
(`RunDir.reusable`); `dlpipe run --no-cache` reuses nothing. A task adopts it by listing
`rerun` in its commands (dlpipe/tasks/; the runner refuses to rerun into a folder for a task
without it) and its pipeline by a few lines per stage (pipelines/supervised.py shows them):

    keys = stage_keys(spec, ctx.base_dir)
    reuse = run_dir.reusable("data", keys["data"], DATA_OUTPUTS, reads=True)
    with run_dir.stage("data", key=keys["data"], reused=reuse, reads=True):
        data = load_data(run_dir) if reuse else prepare(...)   # and save_data(run_dir, data)
    keys = stage_keys(spec, ctx.base_dir, data.fingerprint)     # train, evaluate, export

The prepared data is kept in cache/data.json + cache/data.npz: a JSON tree whose arrays
live in the NumPy archive, loaded with allow_pickle=False. Only dataclasses defined in
dlpipe's own modules are rebuilt from it, so a tampered cache cannot run code. An object
that does not fit (a type this format does not know, or over 2 GiB of arrays) is simply not
cached: the stage runs again next time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.version import __version__
from dlpipe.rundir import atomic_path, atomic_write_text, to_json

NOT_DATA = ("model", "training", "compression", "evaluation", "export", "tuning", "name", "description",
            "allow_unsafe_deserialization", "tracking", "distillation")
DATA_OUTPUTS = ("data.json", "splits.json", "cache/data.json", "cache/data.npz")
MODEL_OUTPUTS = ("model.keras", "history.csv")
EVALUATION_OUTPUTS = ("metrics.json",)
EXPORT_OUTPUTS = ("export/verification.json", "export/model_card.json")
EXPLAIN_OUTPUTS = ("explanations/explanations.json",)
CACHED_DATA_LIMIT = 2 << 30
"""Prepared data larger than this (its arrays' bytes) is not copied into the run directory."""


def digest(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(to_json(obj).encode()).hexdigest()


def stage_keys(spec, base_dir: Path, data_fingerprint: str | None = None) -> dict[str, str]:
    """The cache key of each stage of a supervised-style pipeline (see the module doc).
    Without `data_fingerprint` (before the data stage), only the data key is final: the
    others chain on the prepared data, so take them after it with its fingerprint."""
    dump = spec.model_dump(mode="json")
    section = dump.get("data") or {}
    vectors = [f["pretrained"] for f in section.get("features", []) if f.get("pretrained")]
    data = digest({"dlpipe": __version__, **{k: v for k, v in dump.items() if k not in NOT_DATA},
                   "sample_weight": (dump.get("training") or {}).get("sample_weight"),
                   # Pretrained vector files are read when the model is built: a changed file
                   # must retrain (only specs that name one get this key, others keep theirs).
                   **({"vectors": files_fingerprint(vectors, Path(base_dir))} if vectors else {})})
    train = digest({"data": data, "prepared": data_fingerprint, "model": dump.get("model"),
                    "training": dump.get("training"),
                    # Only specs that compress get this key: the others keep their cached stages.
                    **({"compression": dump["compression"]} if dump.get("compression") else {}),
                    # Quantization-aware training takes its input ranges from the int8 export's
                    # calibration draw (pipelines/supervised.py: calibrate_quantization).
                    **({"calibration": dump["export"]["tflite"]["representative_samples"]}
                       if (dump.get("compression") or {}).get("quantization_aware") else {}),
                    # A teacher retrained in place must train the student again.
                    **({"distillation": dump["distillation"], "teacher": teacher_fingerprint(
                        dump["distillation"]["teacher"], Path(base_dir))} if dump.get("distillation") else {})})
    evaluation = {k: v for k, v in (dump.get("evaluation") or {}).items() if k != "explain"}
    evaluate = digest({"train": train, "evaluation": evaluation})
    export = digest({"evaluate": evaluate, "export": dump.get("export"), "name": dump.get("name"),
                     "description": dump.get("description")})
    explain = digest({"train": train, "explain": (dump.get("evaluation") or {}).get("explain")})
    return {"data": data, "train": train, "evaluate": evaluate, "export": export, "explain": explain}


def teacher_fingerprint(teacher: str, base_dir: Path) -> dict[str, Any]:
    """The SHA-256 of a distillation teacher's model file (a run directory's model.keras)."""
    path = Path(teacher).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return files_fingerprint(str(path / "model.keras" if path.is_dir() else path), base_dir)


def files_fingerprint(value: Any, base_dir: Path) -> dict[str, Any]:
    """Every string in `value` naming an existing file, relative to `base_dir`, mapped to
    the SHA-256 of its bytes (whatever its size: size and time are no evidence)."""
    from dlpipe.readlog import digest as file_digest

    found: dict[str, Any] = {}
    for text in _strings(value):
        if not text or len(text) > 4096 or "\n" in text:
            continue
        path = Path(text).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            if path.is_file():
                found[text] = file_digest(path)
        except OSError:
            continue
    return found


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


# Saving and loading objects (the prepared data) without pickle ---------------------------

class NotCacheable(Exception):
    """The object holds something this format does not store."""


def save(obj: Any, folder: Path, name: str) -> str | None:
    """Write `obj` as folder/NAME.json + folder/NAME.npz; None when written, else why not."""
    arrays: list[np.ndarray] = []
    try:
        tree = _encode(obj, arrays)
    except NotCacheable as err:
        return str(err)
    size = sum(a.nbytes for a in arrays)
    if size > CACHED_DATA_LIMIT:
        return f"{size / 2**30:.1f} GiB of arrays, over the {CACHED_DATA_LIMIT / 2**30:.0f} GiB limit"
    with atomic_path(folder / f"{name}.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **{f"a{i:05d}": a for i, a in enumerate(arrays)})
    # The JSON goes last: with it, the archive it refers to is complete. Keys keep their
    # order (not sorted): the order of a dict of inputs can be the order of a model's inputs.
    atomic_write_text(folder / f"{name}.json", json.dumps({"format": 1, "tree": tree}) + "\n")
    return None


def load(folder: Path, name: str) -> Any:
    tree = json.loads((folder / f"{name}.json").read_text())["tree"]
    with np.load(folder / f"{name}.npz", allow_pickle=False) as archive:
        arrays = [archive[key] for key in sorted(archive.files)]
    return _decode(tree, arrays)


def _encode(obj: Any, arrays: list) -> Any:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return {"float": repr(obj)}  # nan and inf survive; repr round-trips exactly
    if isinstance(obj, np.ndarray):
        entry: dict[str, Any] = {"array": len(arrays)}
        if obj.dtype.kind == "O":
            if not all(isinstance(v, str) for v in obj.ravel()):
                raise NotCacheable("an array of Python objects other than strings")
            obj, entry["object"] = obj.astype(str), True
        arrays.append(obj)
        return entry
    if isinstance(obj, np.generic):
        return {"scalar": obj.dtype.str, "value": _encode(obj.item(), arrays)}
    if isinstance(obj, Path):
        return {"path": str(obj)}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, arrays) for v in obj]
        return {"tuple": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"dict": {k: _encode(v, arrays) for k, v in obj.items()}}
        return {"pairs": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        if not cls.__module__.startswith("dlpipe"):
            raise NotCacheable(f"it holds an object of type {cls.__name__} from {cls.__module__}")
        state = vars(obj) if hasattr(obj, "__dict__") else {f.name: getattr(obj, f.name)
                                                             for f in dataclasses.fields(obj)}
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {k: _encode(v, arrays) for k, v in state.items()}}
    raise NotCacheable(f"it holds an object of type {type(obj).__name__}")


def _decode(tree: Any, arrays: list) -> Any:
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "float" in tree:
        return float(tree["float"])
    if "array" in tree:
        array = arrays[tree["array"]]
        return array.astype(object) if tree.get("object") else array
    if "scalar" in tree:
        return np.dtype(tree["scalar"]).type(_decode(tree["value"], arrays))
    if "path" in tree:
        return Path(tree["path"])
    if "tuple" in tree:
        return tuple(_decode(v, arrays) for v in tree["tuple"])
    if "dict" in tree:
        return {k: _decode(v, arrays) for k, v in tree["dict"].items()}
    if "pairs" in tree:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in tree["pairs"]}
    if "dataclass" in tree:
        module, _, qualname = tree["dataclass"].partition(":")
        if not (module == "dlpipe" or module.startswith("dlpipe.")):
            raise ValueError(f"the cache names a class outside dlpipe: {tree['dataclass']}")
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"the cache names {tree['dataclass']}, which is not a dlpipe dataclass")
        obj = object.__new__(cls)
        for name, value in tree["fields"].items():
            object.__setattr__(obj, name, _decode(value, arrays))
        return obj
    raise ValueError(f"unknown entry in the cache: {sorted(tree)}")


def save_data(run_dir, data) -> None:
    """Keep the prepared data for a later run into this folder (a notice if it cannot)."""
    import sys

    why = save(data, run_dir.path("cache"), "data")
    if why is not None:
        print(f"[dlpipe] notice: the prepared data is not cached ({why}); a rerun prepares it again",
              file=sys.stderr, flush=True)


def load_data(run_dir):
    return load(run_dir.path("cache"), "data")


def load_metrics(run_dir) -> dict:
    """metrics.json as the evaluate stage returned it (undefined metrics, written null, as NaN)."""
    metrics = json.loads(run_dir.path("metrics.json").read_text())
    return {split: {name: float("nan") if value is None else value for name, value in values.items()}
            if isinstance(values, dict) else values for split, values in metrics.items()
            if split != "baselines"}  # the baselines' scores (metrics/baselines.py) are not the model's


def load_model(run_dir, spec):
    """The trained model.keras of an earlier run, loaded safely (as `dlpipe evaluate` does)."""
    from dlpipe.modelfile import load_keras_model

    return load_keras_model(run_dir.path("model.keras"),
                            allow_unsafe=spec.allow_unsafe_deserialization,
                            imports=getattr(spec.model, "allow_imports", None) or ())


