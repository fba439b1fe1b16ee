"""Remembered results of `dlpipe validate`, so an unchanged spec is checked without Pydantic.

Plain validation is a function of the spec's text, its `--set` overrides, the code of the
spec layer and — since it also looks cheaply at the data (dlpipe/spec/datacheck.py: files
exist, headers hold the named columns) — of what it observed of the files the spec names.
So its result (the list of problems, empty for a valid spec) is stored under a hash of the
first group, together with every observation of the second (`Observations`: each file's
type, size and mtime_ns, the digest of the header bytes read, a folder's entries, a glob's
matches), and replayed only when each observation, made again, gives the same answer. A
file that disappeared, changed or appeared since is a miss, so a remembered "valid" can
never hide it. Making those observations again costs a stat and a read of the header line
per file. Importing Pydantic and building the spec models costs about 0.25 s of a cold
`dlpipe validate` here; a replayed result needs neither.

The key covers: the spec file's bytes, the path as given (it appears in every message) and
the folder it lies in (relative data paths are resolved against it), the overrides,
dlpipe's version, the bytes of every module of the spec layer (plus the registry and the
error types), and the installed Pydantic (its files' size and mtime). Any change to one of
them is a miss. Entries live in `$DLPIPE_CACHE_DIR`, else `$XDG_CACHE_HOME/dlpipe`, else
`~/.cache/dlpipe`, under `validate/`. A cache that cannot be read or written is silently
skipped: validation never fails because of it.

This module must stay cheap to import: the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

_FORMAT = b"dlpipe-validate-cache-2"
_PACKAGE = Path(__file__).resolve().parent
# The modules whose code decides what validation says: the whole spec/ and tasks/ packages
# (each task's facts, honoured keys and checks), plus:
_PACKAGES = ("spec", "tasks")
_ALSO = ("__init__.py", "version.py", "errors.py", "limits.py", "registry.py", "yamlbounds.py",
         "validation_cache.py", "kerashub.py")  # its observations of the data files and packages too
_code_hash: bytes | None = None


def cache_dir() -> Path:
    if os.environ.get("DLPIPE_CACHE_DIR"):
        return Path(os.environ["DLPIPE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dlpipe"


def fingerprinted_files() -> list[Path]:
    """The source files whose bytes are part of every key."""
    files = [path for package in _PACKAGES for path in sorted((_PACKAGE / package).glob("*.py"))]
    return files + [_PACKAGE / name for name in _ALSO]


def _code_fingerprint() -> bytes:
    """The spec layer's source and the installed Pydantic's identity, hashed once per process."""
    global _code_hash
    if _code_hash is None:
        digest = hashlib.sha256(_FORMAT)
        for path in fingerprinted_files():
            digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        from importlib.util import find_spec  # finds, does not import

        for package in ("pydantic", "pydantic_core"):
            found = find_spec(package)
            origin = Path(found.origin) if found and found.origin else None
            if origin is None:
                digest.update(package.encode() + b":missing")
                continue
            for path in sorted(origin.parent.iterdir()):
                if path.suffix in (".py", ".so", ".pyd"):
                    stat = path.stat()
                    digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        _code_hash = digest.digest()
    return _code_hash


def _key(spec: str, text: bytes, overrides: Sequence[str]) -> str:
    digest = hashlib.sha256(_code_fingerprint())
    folder = os.path.dirname(os.path.abspath(spec))  # the same bytes elsewhere name other data files
    for part in (spec.encode(), folder.encode(), text, "\0".join(overrides).encode()):
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()


LINE_LIMIT = 8 << 20
"""The most bytes read for a header line (a CSV header, a JSON-lines file's first object)."""


class Observations:
    """What validation looked at in the file system, each observation kept as
    (kind, path, digest of the answer), so that `unchanged` can ask again. Each method
    returns the answer itself to the check that asked."""

    def __init__(self):
        self.made: list[list] = []

    def _keep(self, kind: str, path: str, answer) -> None:
        self.made.append([kind, path, _digest(answer)])

    def stat(self, path: str) -> tuple | None:
        """(kind: file, folder or other; size; mtime_ns), or None when nothing is there."""
        answer = _OBSERVE["stat"](path)
        self._keep("stat", path, answer)
        return answer

    def first_line(self, path: str) -> bytes | None:
        """The first line that is not empty, with its newline (None: over LINE_LIMIT bytes)."""
        self.stat(path)  # size and mtime first: a file written meanwhile is then a miss
        answer = _OBSERVE["first_line"](path)
        self._keep("first_line", path, answer)
        return answer

    def parquet_footer(self, path: str) -> bytes | None:
        """A Parquet file's metadata block (None: not a Parquet file)."""
        self.stat(path)
        answer = _OBSERVE["parquet_footer"](path)
        self._keep("parquet_footer", path, answer)
        return answer

    def zip_names(self, path: str) -> list[str] | None:
        self.stat(path)
        answer = _OBSERVE["zip_names"](path)
        self._keep("zip_names", path, answer)
        return answer

    def keras_head(self, path: str) -> dict | None:
        """A .keras file's input names and output layers (class, units, activation), read
        from the archive's config.json (None: not a readable .keras file)."""
        self.stat(path)
        answer = _OBSERVE["keras_head"](path)
        self._keep("keras_head", path, answer)
        return answer

    def small_json(self, path: str):
        """A small JSON file's value (None: absent, over 1 MiB or not JSON)."""
        self.stat(path)
        answer = _OBSERVE["small_json"](path)
        self._keep("small_json", path, answer)
        return answer

    def listing(self, path: str) -> list[str] | None:
        answer = _OBSERVE["listing"](path)
        self._keep("listing", path, answer)
        return answer

    def glob(self, pattern: str) -> list[str]:
        answer = _OBSERVE["glob"](pattern)
        self._keep("glob", pattern, answer)
        return answer

    def hub_presets(self) -> list[str] | None:
        """The preset names KerasHub lists for its image classifiers (None: not installed)."""
        answer = _OBSERVE["hub_presets"]("")
        self._keep("hub_presets", "", answer)
        return answer

    def module(self, name: str) -> bool:
        """Whether a top-level package is installed (looked up, not imported)."""
        answer = _OBSERVE["module"](name)
        self._keep("module", name, answer)
        return answer


def unchanged(observations: list) -> bool:
    """Whether every observation, made again now, gives the answer it gave."""
    try:
        return all(kind in _OBSERVE and _digest(_OBSERVE[kind](path)) == digest
                   for kind, path, digest in observations)
    except (TypeError, ValueError):  # a malformed entry: check afresh
        return False


def _digest(answer) -> str:
    if isinstance(answer, bytes):
        return "b:" + hashlib.sha256(answer).hexdigest()
    return "j:" + hashlib.sha256(json.dumps(answer).encode()).hexdigest()


def _stat(path: str):
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    import stat

    kind = "file" if stat.S_ISREG(found.st_mode) else "folder" if stat.S_ISDIR(found.st_mode) else "other"
    return [kind, found.st_size, found.st_mtime_ns]


def _first_line(path: str):
    try:
        with open(path, "rb") as handle:
            read = 0
            while True:
                line = handle.readline(LINE_LIMIT - read)
                read += len(line)
                if not line:
                    return b""
                if line.strip():
                    return line if line.endswith(b"\n") or read < LINE_LIMIT else None
                if read >= LINE_LIMIT:
                    return None
    except OSError:
        return None


def _parquet_footer(path: str):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size < 12:
                return None
            handle.seek(size - 8)
            tail = handle.read(8)
            length = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or length > min(size - 12, 64 << 20):
                return None
            handle.seek(size - 8 - length)
            return handle.read(length)
    except OSError:
        return None


def _zip_names(path: str):
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return sorted(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


KERAS_CONFIG_LIMIT = 64 << 20
"""The largest config.json read (dlpipe/modelfile.py refuses larger JSON members too)."""


def _keras_head(path: str):
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > KERAS_CONFIG_LIMIT:
                return None
            config = json.loads(archive.read(info))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, RuntimeError):
        return None
    try:
        inner = config["config"]
        layers = {layer["config"]["name"]: layer for layer in inner["layers"]}

        def heads(named):  # ["name", 0, 0], a list of them, or a dict of them
            if isinstance(named, dict):
                return [item for value in named.values() for item in heads(value)]
            return [named[0]] if named and isinstance(named[0], str) else [n for item in named for n in heads(item)]

        def activation(value):
            if isinstance(value, dict):  # a serialized function: {"class_name": "function", "config": "softmax"}
                value = value.get("config")
            return value if isinstance(value, str) else None

        outputs = [{"class_name": layers[name]["class_name"], "units": layers[name]["config"].get("units"),
                    "activation": activation(layers[name]["config"].get("activation"))}
                   for name in heads(inner["output_layers"])]
        return {"inputs": heads(inner["input_layers"]), "outputs": outputs}
    except (KeyError, TypeError, IndexError, AttributeError):
        return None


def _small_json(path: str):
    try:
        if os.stat(path).st_size > 1 << 20:
            return None
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None


def _listing(path: str):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def _glob(pattern: str):
    import glob

    return sorted(glob.glob(pattern))


def _module(name: str) -> bool:
    import importlib.util
    import sys

    try:
        return name in sys.modules or importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _hub_presets(_: str):
    from dlpipe.kerashub import image_preset_names

    names = image_preset_names()
    return None if names is None else list(names)


_OBSERVE = {"module": _module, "hub_presets": _hub_presets, "stat": _stat, "first_line": _first_line, "parquet_footer": _parquet_footer,
            "zip_names": _zip_names, "keras_head": _keras_head, "small_json": _small_json, "listing": _listing,
            "glob": _glob}


class ValidationCache:
    """`entry` names the stored result for exactly these bytes; `get` it (None on a miss),
    `put` it after checking those same bytes."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.folder = cache_dir() / "validate"

    def entry(self, spec: str, text: bytes, overrides: Sequence[str]) -> Path | None:
        if not self.enabled:
            return None
        try:
            return self.folder / f"{_key(spec, text, overrides)}.json"
        except OSError:  # the spec layer's own files unreadable: no caching
            return None

    def get(self, entry: Path | None) -> list[dict] | None:
        """The remembered problems, if the entry exists and every file observation it holds
        still gives the same answer (None otherwise: check afresh)."""
        if entry is None:
            return None
        try:
            stored = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or not isinstance(stored.get("problems"), list):
            return None
        if not unchanged(stored.get("observed") or []):
            return None
        return stored["problems"]

    def put(self, entry: Path | None, problems: list[dict], observed: Observations | None = None) -> None:
        if entry is None:
            return
        temporary = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        stored = {"problems": problems, "observed": observed.made if observed is not None else []}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(stored), encoding="utf-8")
            os.replace(temporary, entry)
        except OSError:
            try:
                temporary.unlink()
            except OSError:
                pass
