"""Remembered results of `dlpipe validate`, so an unchanged spec is checked without Pydantic.

Plain validation is a pure function of the spec's text, its `--set` overrides and the code
of the spec layer: it reads no other file and no environment. So its result — the list of
problems, empty for a valid spec — can be stored under a hash of exactly those inputs and
replayed. Importing Pydantic and building the spec models costs about 0.25 s of a cold
`dlpipe validate` here; a replayed result needs neither.

The key covers: the spec file's bytes, the path as given (it appears in every message),
the overrides, dlpipe's version, the bytes of every module of the spec layer (plus the
registry and the error types), and the installed Pydantic (its files' size and mtime). Any
change to one of them is a miss. Entries live in `$DLPIPE_CACHE_DIR`, else
`$XDG_CACHE_HOME/dlpipe`, else `~/.cache/dlpipe`, under `validate/`. A cache that cannot
be read or written is silently skipped: validation never fails because of it.

This module must stay cheap to import: the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

_FORMAT = b"dlpipe-validate-cache-1"
_PACKAGE = Path(__file__).resolve().parent
# The modules whose code decides what validation says: the whole spec/ and tasks/ packages
# (each task's facts, honoured keys and checks), plus:
_PACKAGES = ("spec", "tasks")
_ALSO = ("__init__.py", "errors.py", "limits.py", "registry.py", "yamlbounds.py")
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
    for part in (spec.encode(), text, "\0".join(overrides).encode()):
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()


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
        if entry is None:
            return None
        try:
            problems = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return problems if isinstance(problems, list) else None

    def put(self, entry: Path | None, problems: list[dict]) -> None:
        if entry is None:
            return
        temporary = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(problems), encoding="utf-8")
            os.replace(temporary, entry)
        except OSError:
            try:
                temporary.unlink()
            except OSError:
                pass
