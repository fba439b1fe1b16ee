"""The run directory: its layout, atomic writes, a lock, and run.json.

Every file is written to a temporary name in the same folder and renamed into place, so
a killed run never leaves a half-written file under a final name. run.json is rewritten
each time a stage starts or ends, so it always tells how far a run got.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlpipe import __version__
from dlpipe.errors import DlpipeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); a run's files are ordinary files, readable
        # as the user's umask allows, like those Keras and TensorFlow write beside them.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, trailing newline (byte-identical reruns)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write with any library; renamed
    into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """One run's folder. Create with `RunDir.create`, which also takes the lock."""

    LOCK = ".lock"

    def __init__(self, root: Path):
        self.root = root
        self.record: dict[str, Any] = {}

    @classmethod
    def default_path(cls, name: str, base: Path | str = "runs") -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(base) / f"{name}-{stamp}"

    @classmethod
    def create(cls, root: Path | str) -> "RunDir":
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise DlpipeError(f"{root}: exists and is not a directory")
        if root.is_dir() and any(p.name != cls.LOCK for p in root.iterdir()):
            raise DlpipeError(f"{root}: already holds a run; choose another --out or remove it")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DlpipeError(f"{root}: cannot create the run directory: {err.strerror}") from None
        run_dir = cls(root)
        run_dir._lock()
        return run_dir

    @classmethod
    def holds_run(cls, root: Path | str) -> bool:
        return (Path(root) / "run.json").is_file()

    @classmethod
    def reopen(cls, root: Path | str) -> "RunDir":
        """An interrupted run's folder, locked again, with its run.json loaded (for --resume)."""
        root = Path(root)
        run_dir = cls(root)
        run_dir._lock()
        try:
            run_dir.record = json.loads((root / "run.json").read_text())
        except (OSError, ValueError) as err:
            run_dir.unlock()
            raise DlpipeError(f"{root}: cannot resume: run.json is unreadable ({err})") from None
        if run_dir.record.get("status") == "completed":
            run_dir.unlock()
            raise DlpipeError(f"{root}: the run already completed; nothing to resume")
        return run_dir

    def _lock(self) -> None:
        lock = self.root / self.LOCK
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                raise DlpipeError(f"{self.root}: another dlpipe process (pid {pid}) is using it") from None
            lock.unlink(missing_ok=True)  # left behind by a killed run
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as err:
            raise DlpipeError(f"{self.root}: cannot write: {err.strerror}") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))

    def unlock(self) -> None:
        (self.root / self.LOCK).unlink(missing_ok=True)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # run.json -------------------------------------------------------------------------

    def start(self, *, seed: int, command: list[str], spec_file: str) -> None:
        self.record = {
            "status": "running",
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished": None,
            "command": command,
            "spec_file": spec_file,
            "seed": seed,
            "stages": {},
            "versions": {"dlpipe": __version__, "python": platform.python_version()},
            "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "error": None,
        }
        self.save_record()

    def resume(self, *, command: list[str]) -> None:
        """Mark a reopened run as running again; run.json keeps what earlier attempts wrote."""
        resumed = self.record.get("resumed") or []
        resumed.append({"at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command,
                        "previous_status": self.record.get("status"), "previous_error": self.record.get("error")})
        self.update(status="running", finished=None, error=None, resumed=resumed)

    def update(self, **fields: Any) -> None:
        self.record.update(fields)
        self.save_record()

    def save_record(self) -> None:
        atomic_write_json(self.path("run.json"), self.record)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage into run.json and announce it on stderr."""
        print(f"[dlpipe] {name} ...", file=sys.stderr, flush=True)
        stages = self.record.setdefault("stages", {})
        stages[name] = {"status": "running", "seconds": None}
        self.save_record()
        begun = time.perf_counter()
        try:
            yield
        except BaseException:
            stages[name] = {"status": "failed", "seconds": round(time.perf_counter() - begun, 3)}
            self.save_record()
            raise
        seconds = round(time.perf_counter() - begun, 3)
        stages[name] = {"status": "completed", "seconds": seconds}
        self.save_record()
        print(f"[dlpipe] {name} done in {seconds:.1f} s", file=sys.stderr, flush=True)

    def finish(self, status: str, error: str | None = None) -> None:
        self.update(status=status, error=error,
                    finished=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
