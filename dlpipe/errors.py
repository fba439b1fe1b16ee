"""Errors dlpipe shows to people, and the exit codes they map to.

Exit codes (one table, used by the CLI only):

    0  success
    1  the spec is invalid, the data is bad, or a stage failed (one line, no traceback)
    2  usage error (Click's own: unknown option, missing argument)
  130  interrupted by SIGINT (Ctrl-C); 143: by SIGTERM (run.json says `interrupted`)

Everything a user can cause raises a `DlpipeError`; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class DlpipeError(Exception):
    """An error caused by the user's input; printed as one line, exit code 1."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a spec: `FILE:LINE:COL: dotted.path: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class SpecError(DlpipeError):
    """One or more located problems in one or more spec files."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DataError(DlpipeError):
    """Bad data: names the file, row and column where they are known."""


class StageError(DlpipeError):
    """A pipeline stage failed for a reason the user can act on."""

    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(f"{stage}: {message}")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a run: exit code 128 + the signal's number (130, 143).
    A KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int, message: str | None = None):
        import signal

        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'adam'?"` when a choice is close to `word`, else `""`."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""
