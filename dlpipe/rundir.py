"""The run directory: its layout, atomic writes, a lock, and run.json.

Every file is written to a temporary name in the same folder and renamed into place, so
a killed run never leaves a half-written file under a final name. run.json is rewritten
each time a stage starts or ends, so it always tells how far a run got.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import fcntl
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlpipe import testhooks
from dlpipe.version import __version__
from dlpipe.errors import DlpipeError

CHANGED_LISTED = 100
"""run.json lists at most this many changed files of a stage (`changed_count` says how many)."""
# A write that fails for one of these reasons is the user's to fix (space, permissions, a
# read-only mount), not a bug: it becomes one line naming the file.
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class WriteError(DlpipeError):
    """A file of the run could not be written (disk full, read-only, permissions)."""


def write_error(err: BaseException) -> WriteError | None:
    """The WriteError an exception (or one it was raised from) amounts to, if any: libraries
    such as Keras wrap the OSError of a full disk in their own exceptions."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, WriteError):
            return err
        if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
            where = err.filename or "a file of the run"
            return WriteError(f"{where}: cannot write: {err.strerror or os.strerror(err.errno)}")
        err = err.__cause__ or err.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path | str, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to a temporary file beside `path` and rename it into place. `durable`:
    fsync before the rename, so that an operating-system crash cannot leave an empty file
    under the final name (a killed process cannot either way)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if err.errno in WRITE_ERRORS:
            raise WriteError(f"{path}: cannot write: {err.strerror}") from None
        raise
    try:
        # mkstemp makes the file private (0600); a run's files are ordinary files, readable
        # as the user's umask allows, like those Keras and TensorFlow write beside them.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        testhooks.point()
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
            raise WriteError(f"{path}: cannot write: {err.strerror or os.strerror(err.errno)}") from None
        raise
    return path


def atomic_write_text(path: Path | str, text: str, *, durable: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def to_json(obj: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, trailing newline (byte-identical reruns)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"


def atomic_write_json(path: Path | str, obj: Any, *, durable: bool = True) -> Path:
    return atomic_write_text(path, to_json(obj), durable=durable)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write with any library; renamed
    into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        testhooks.point()
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in WRITE_ERRORS:
            raise WriteError(f"{path}: cannot write: {err.strerror or os.strerror(err.errno)}") from None
        raise
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return pid > 0


class RunDir:
    """One run's folder. Create with `RunDir.create`, which also takes the lock."""

    LOCK = ".lock"

    def __init__(self, root: Path):
        self.root = root
        self.record: dict[str, Any] = {}
        self.previous_stages: dict[str, Any] = {}
        """The stages of the run this folder held before (a rerun or a resume): their keys."""
        self.rerun = False
        """Running again into a finished run's folder (not --resume): stale outputs go."""
        self.cache = True
        """Stages whose key is unchanged are reused (False with --no-cache)."""
        self.current_stage: str | None = None
        self._lock_fd: int | None = None
        self._changed: dict[str, list[str]] = {}
        """Per stage: the files read last time that changed (found by `reusable`)."""
        self._checked: dict[str, dict] = {}

    @classmethod
    def default_path(cls, name: str, base: Path | str = "runs") -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(base) / f"{name}-{stamp}"

    @classmethod
    def create(cls, root: Path | str) -> "RunDir":
        """A new run's folder (made if missing; an empty one is fine), locked. Several
        processes started at once on one folder: one gets it, the others one line each."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise DlpipeError(f"{root}: exists and is not a directory")
        cls._check_empty(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DlpipeError(f"{root}: cannot create the run directory: {err.strerror}") from None
        run_dir = cls(root)
        run_dir.lock()
        try:
            # Again under the lock: a process that looked before another one's run began
            # and locks after it ended must not write over that run.
            cls._check_empty(root)
        except DlpipeError:
            run_dir.unlock()
            raise
        return run_dir

    @classmethod
    def _check_empty(cls, root: Path) -> None:
        try:
            taken = root.is_dir() and any(p.name != cls.LOCK for p in root.iterdir())
        except OSError as err:
            raise DlpipeError(f"{root}: cannot read the run directory: {err.strerror}") from None
        if taken:
            raise DlpipeError(f"{root}: already holds a run; choose another --out or remove it")

    @classmethod
    def holds_run(cls, root: Path | str) -> bool:
        return (Path(root) / "run.json").is_file()

    @classmethod
    def reopen(cls, root: Path | str, *, rerun: bool = False) -> "RunDir":
        """A run's folder, locked again, with its run.json loaded: an interrupted run to
        continue (--resume), or with `rerun` any earlier run, to run again into with its
        unchanged stages reused. Temporary files a killed run left behind are removed."""
        root = Path(root)
        run_dir = cls(root)
        run_dir.lock()
        try:
            run_dir.record = json.loads((root / "run.json").read_text())
        except (OSError, ValueError) as err:
            run_dir.unlock()
            raise DlpipeError(f"{root}: cannot {'run into' if rerun else 'resume'}: run.json is unreadable "
                              f"({err})") from None
        if run_dir.record.get("status") == "completed" and not rerun:
            run_dir.unlock()
            raise DlpipeError(f"{root}: the run already completed; nothing to resume")
        run_dir.previous_stages = dict(run_dir.record.get("stages") or {})
        run_dir.rerun = rerun
        run_dir._remove_temporary_files()
        return run_dir

    def _remove_temporary_files(self) -> None:
        """The temporary names of atomic writes (`.NAME.*.tmp*`) a killed run left."""
        import shutil

        for path in sorted(self.root.rglob(".*.tmp*"), reverse=True):
            if ".tmp" in path.name and path.name.startswith("."):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def lock(self) -> None:
        """Take the run directory's lock for this process's life, or fail in one line.

        An OS lock (`flock`) on `.lock`, held through a descriptor kept open until `unlock`
        (or the process's end: a killed run's lock frees itself, so there is no stale lock to
        judge). The pid inside is information for the message only; the file is never
        removed, so every process locks the same file. After locking, the file must still
        be the one at `.lock` (someone may have removed the folder's contents meanwhile)."""
        path = self.root / self.LOCK
        for _ in range(8):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as err:
                raise DlpipeError(f"{self.root}: cannot write: {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise DlpipeError(self._held_message()) from None
            except OSError as err:  # a filesystem without locks
                os.close(fd)
                raise DlpipeError(f"{self.root}: cannot lock the run directory: {err.strerror}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file that is no longer .lock: lock the one that is
        else:
            raise DlpipeError(f"{self.root}: cannot lock the run directory: {self.LOCK} keeps being replaced")
        with contextlib.suppress(OSError):  # only information: a full disk must not stop the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _held_message(self) -> str:
        pid = self.lock_holder(self.root, probe=False)
        who = f"another dlpipe process (pid {pid})" if pid else "another dlpipe process"
        return f"{self.root}: {who} is using this run directory"

    @classmethod
    def lock_holder(cls, root: Path | str, *, probe: bool = True) -> int | None:
        """The pid written in `root`'s lock (None if unreadable). With `probe`, None also
        when no process holds the lock (it is tried, and released at once)."""
        path = Path(root) / cls.LOCK
        if probe:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                pass  # held
            else:
                return None
            finally:
                os.close(fd)
        # The holder writes its pid just after locking: a reader may come in between and
        # find the file empty, or still naming a killed process.
        for attempt in range(20):
            try:
                text = path.read_text().strip()
            except OSError:
                return None
            if text.isdigit() and _alive(int(text)):
                return int(text)
            time.sleep(0.005)
        return None

    def unlock(self) -> None:
        """Release the lock (the file stays: removing it would let two processes lock two files)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock

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

    def restart(self, *, seed: int, command: list[str], spec_file: str) -> None:
        """Mark a reopened finished run as running again, for a rerun into its folder (a
        changed spec, perhaps): run.json keeps earlier stages' keys until each stage is
        reached again, and lists the earlier attempts under `reruns`."""
        reruns = self.record.get("reruns") or []
        reruns.append({"at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command,
                       "previous_status": self.record.get("status"), "previous_error": self.record.get("error")})
        self.update(status="running", finished=None, error=None, reruns=reruns, seed=seed, command=command,
                    spec_file=spec_file, interrupted_stage=None)

    def update(self, **fields: Any) -> None:
        self.record.update(fields)
        self.save_record()

    def save_record(self) -> None:
        atomic_write_json(self.path("run.json"), self.record)

    def reusable(self, name: str, key: str, outputs: tuple[str, ...] = (), *, reads: bool = False) -> bool:
        """Whether stage `name` can be reused instead of run: caching is on, the run this
        folder held completed the stage with the same key, and its `outputs` still exist.
        With `reads` (a stage run with `reads=True`), also every file it read then is
        unchanged now, hashed again (dlpipe/readlog.py); what changed is kept for `stage`
        to record in run.json and say. A stage without its read log is run again."""
        before = self.previous_stages.get(name) or {}
        if not (self.cache and before.get("status") == "completed" and before.get("key") == key
                and all(self.path(output).exists() for output in outputs)):
            return False
        if not reads:
            return True
        from dlpipe import readlog

        try:
            log = readlog.ReadLog.from_json(json.loads(self.reads_path(name).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return False
        begun = time.perf_counter()
        changed = readlog.changes(log)
        self._checked[name] = {"files_read": len(log.files),
                               "check_seconds": round(time.perf_counter() - begun, 3)}
        if changed:
            self._changed[name] = changed
        return not changed

    def reads_path(self, name: str) -> Path:
        """The read log of stage `name`: the files it read, with their SHA-256."""
        return self.path("cache", f"{name}.reads.json")

    @contextlib.contextmanager
    def stage(self, name: str, *, key: str | None = None, reused: bool = False,
              stale: tuple[str, ...] = (), reads: bool = False) -> Iterator[None]:
        """Time a stage into run.json and announce it on stderr. `key` (the stage cache key)
        and `reused` (the body loads the stage's earlier outputs instead of computing them)
        are recorded. `stale`: outputs of an earlier run removed before the stage runs
        again in a rerun (not a resume, which continues from them). `reads`: the files the
        body reads are recorded (its read log, for `reusable(..., reads=True)` next time)."""
        import shutil

        from dlpipe import readlog

        changed = self._changed.pop(name, None)
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            print(f"[dlpipe] {name}: {changed[0]}{more} changed since the last run; running the stage again",
                  file=sys.stderr, flush=True)
        print(f"[dlpipe] {name} {'reused (unchanged)' if reused else '...'}", file=sys.stderr, flush=True)
        stages = self.record.setdefault("stages", {})
        cached = {"key": key, "reused": reused} if key is not None else {"reused": reused}
        cached.update(self._checked.pop(name, {}))
        if changed:
            cached.update(changed=changed[:CHANGED_LISTED], changed_count=len(changed))
        stages[name] = {"status": "running", "seconds": None, **cached}
        self.save_record()
        if self.rerun and not reused:
            for output in stale:
                target = self.path(output)
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        begun = time.perf_counter()
        self.current_stage = name
        testhooks.enter_stage(name)
        try:
            with readlog.recording() if reads and not reused else contextlib.nullcontext() as log:
                yield
            if log is not None:
                # Before the stage is marked completed: a completed stage always has its log.
                atomic_write_json(self.reads_path(name), log.to_json())
                cached["files_read"] = len(log.files)
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            stages[name] = {"status": status, "seconds": round(time.perf_counter() - begun, 3), **cached}
            with contextlib.suppress(OSError, DlpipeError):  # a full disk must not hide the reason
                self.save_record()
            raise
        finally:
            testhooks.enter_stage(None)
        seconds = round(time.perf_counter() - begun, 3)
        stages[name] = {"status": "completed", "seconds": seconds, **cached}
        self.current_stage = None
        self.save_record()
        if not reused:
            print(f"[dlpipe] {name} done in {seconds:.1f} s", file=sys.stderr, flush=True)

    def finish(self, status: str, error: str | None = None, **fields: Any) -> None:
        """Record the outcome. Best effort when the run failed: the disk may be full."""
        try:
            self.update(status=status, error=error, **fields,
                        finished=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))
        except (OSError, DlpipeError):
            if status == "completed":
                raise
            self._save_record_in_place()

    def _save_record_in_place(self) -> None:
        """The outcome when a full disk refused the atomic write (whose temporary file needs
        new space): run.json rewritten over the space it already holds, compact (without the
        indentation it is about a third smaller; a longer error is shortened to fit). Not
        atomic, so only this last resort does it; a stage still marked running is marked as
        the run ended. A disk that refuses even this (read-only) leaves run.json as it was."""
        path = self.path("run.json")
        record = json.loads(json.dumps(self.record, allow_nan=True))
        for stage in (record.get("stages") or {}).values():
            if isinstance(stage, dict) and stage.get("status") == "running":
                stage["status"] = record.get("status")
        try:
            room = path.stat().st_size
            data = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()
            over = len(data) + 1 - room
            error = record.get("error")
            if over > 0 and isinstance(error, str) and len(error) > over + 40:
                record["error"] = error[: len(error) - over - 3] + "..."
                data = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()
            if len(data) + 1 > room:
                return  # writing past its end could tear it: leave the last whole version
            with open(path, "r+b") as handle:
                handle.write(data + b"\n")
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            pass


def read_history(path: Path | str) -> dict[str, list[float]]:
    """history.csv as columns of floats (an empty cell, where an epoch did not log a name: NaN)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return {}
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                number = float(value) if value not in (None, "") else math.nan
            except ValueError:
                number = math.nan
            columns.setdefault(key, []).append(number)
    return columns
