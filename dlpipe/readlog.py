"""The files a stage read, kept so that a rerun can tell whether any of them changed.

The data loaders call `opened(path)` before they read a file, `walk(folder)` to list the
files below a folder and `glob(pattern)` to expand a pattern. While a stage runs inside
`recording()` (RunDir.stage(..., reads=True)), each opened file's SHA-256 is taken at once,
before the loader reads it, so a file that changes between the two is seen as changed by
the next rerun and never the other way round; each listing and expansion is kept as well.
Outside `recording()` they cost nothing beyond the walk itself.

`changes(log)` hashes every recorded file again and lists every recorded folder and pattern
again: a file whose bytes differ, a file or folder entry that appeared or went, a path that
now leads somewhere else. Size and modification time decide nothing (`cp -p`, `rsync -a`
and `tar x` keep them while changing the bytes): every file is read in full, at the disk's
speed (SHA-256 here: ~1.5 GB/s on a CPU with SHA instructions).

Symbolic links are followed, folders included (`Path.rglob` on Python 3.11 does not follow
linked folders); a link back to a folder above it (a loop) is not entered.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob as _glob
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dlpipe.errors import DataError

UNREADABLE = "unreadable"
"""The digest recorded for a file that could not be hashed: it equals nothing, so a rerun
prepares the data again."""


@dataclass
class ReadLog:
    files: dict[str, dict] = field(default_factory=dict)
    """Absolute path as the loader named it → {"sha256", "real": the path it led to}."""
    folders: dict[str, dict] = field(default_factory=dict)
    """Folder → {"listing": relative paths below it (folders end in /), "real"}."""
    globs: dict[str, list[str]] = field(default_factory=dict)
    """Pattern → the paths it matched."""

    def to_json(self) -> dict:
        return {"format": 1, "files": self.files, "folders": self.folders, "globs": self.globs}

    @classmethod
    def from_json(cls, document: dict) -> "ReadLog":
        if not isinstance(document, dict) or document.get("format") != 1:
            raise ValueError("not a read log of this version")
        return cls(dict(document["files"]), dict(document["folders"]), dict(document["globs"]))


_log: contextvars.ContextVar[ReadLog | None] = contextvars.ContextVar("dlpipe_readlog", default=None)


@contextlib.contextmanager
def recording() -> Iterator[ReadLog]:
    """Record what the block reads (nested recordings each get everything read inside them)."""
    log = ReadLog()
    outer = _log.get()
    token = _log.set(log)
    try:
        yield log
    finally:
        _log.reset(token)
        if outer is not None:
            outer.files.update({k: v for k, v in log.files.items() if k not in outer.files})
            outer.folders.update({k: v for k, v in log.folders.items() if k not in outer.folders})
            outer.globs.update({k: v for k, v in log.globs.items() if k not in outer.globs})


def _key(path: Path | str) -> str:
    """The path as given, made absolute but not normalized: `link/..` is left for the
    system to resolve, as it does when the file is opened."""
    path = os.fspath(path)
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def opened(path: Path | str) -> None:
    """A loader is about to read `path` (a file)."""
    log = _log.get()
    if log is None:
        return
    key = _key(path)
    if key not in log.files and os.path.isfile(key):
        log.files[key] = {"sha256": digest(key), "real": os.path.realpath(key)}


def named(text: str, base_dir: Path | str) -> None:
    """A path as the spec names it (relative to `base_dir`), recorded as named: loaders
    resolve links to report absolute paths, and a link on the way that is later made to
    lead elsewhere must count as a change. A file is hashed, a folder listed."""
    if _log.get() is None:
        return
    path = Path(text).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    with contextlib.suppress(OSError, DataError):  # a missing path is the loader's to report
        if path.is_file():
            opened(path)
        elif path.is_dir():
            walk(path)


def digest(path: Path | str) -> str:
    """SHA-256 of the file's bytes (UNREADABLE if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return UNREADABLE


def walk(folder: Path | str) -> list[Path]:
    """Every file below `folder` (links followed, loops not entered), sorted as
    `sorted(folder.rglob("*"))` sorts; the listing is recorded."""
    root = Path(folder)
    files, listing = _walk(root)
    log = _log.get()
    if log is not None:
        key = _key(root)
        log.folders.setdefault(key, {"listing": listing, "real": os.path.realpath(key)})
    return files


def _walk(root: Path) -> tuple[list[Path], list[str]]:
    """(files, relative listing of files and folders). Iterative: any depth."""
    try:
        top = os.stat(root)
    except OSError as err:
        raise DataError(f"{root}: cannot read the folder: {err.strerror}") from None
    files: list[tuple[tuple[str, ...], Path]] = []
    listing: list[str] = []
    # Each entry: (folder, its parts relative to root, (device, inode) of it and its ancestors).
    pending = [(root, (), frozenset({(top.st_dev, top.st_ino)}))]
    while pending:
        folder, parts, above = pending.pop()
        try:
            with os.scandir(folder) as entries:
                children = sorted(entries, key=lambda entry: entry.name)
        except OSError as err:
            raise DataError(f"{folder}: cannot read the folder: {err.strerror}") from None
        for entry in children:
            relative = (*parts, entry.name)
            try:
                if entry.is_dir():  # follows a link
                    stat = os.stat(entry.path)
                    identity = (stat.st_dev, stat.st_ino)
                    if identity in above:
                        continue  # a link back to a folder above: a loop
                    listing.append("/".join(relative) + "/")
                    pending.append((Path(entry.path), relative, above | {identity}))
                elif entry.is_file():  # follows a link; a broken link is neither
                    files.append((relative, Path(entry.path)))
                    listing.append("/".join(relative))
            except OSError:
                continue  # vanished or unreadable while listing: as if absent
    files.sort(key=lambda item: item[0])
    return [path for _, path in files], sorted(listing)


def glob(pattern: str) -> list[str]:
    """The sorted paths `pattern` matches; the expansion is recorded."""
    matches = sorted(_glob.glob(pattern))
    log = _log.get()
    if log is not None:
        log.globs.setdefault(pattern, matches)
    return matches


def changes(log: ReadLog) -> list[str]:
    """What differs now from what `log` recorded, one path each (sorted): files whose bytes
    changed or that went, entries that appeared in or went from a listed folder, folders
    and files that now lead elsewhere, patterns that match other files."""
    changed: set[str] = set()
    for path, entry in log.files.items():
        if (not os.path.isfile(path) or os.path.realpath(path) != entry.get("real")
                or entry.get("sha256") == UNREADABLE or digest(path) != entry.get("sha256")):
            changed.add(path)
    for folder, entry in log.folders.items():
        if os.path.realpath(folder) != entry.get("real"):
            changed.add(folder)
            continue
        try:
            _, listing = _walk(Path(folder))
        except DataError:
            changed.add(folder)
            continue
        before = set(entry.get("listing") or ())
        changed.update(os.path.join(folder, relative.rstrip("/")) for relative in before.symmetric_difference(listing))
    for pattern, matches in log.globs.items():
        changed.update(set(matches).symmetric_difference(_glob.glob(pattern)))
    return sorted(changed)
