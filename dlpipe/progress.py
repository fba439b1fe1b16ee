"""Progress of the long steps other than training: reading a large data file, each export
conversion and its verification, tuning trials, the feature passes of a generative
evaluation. On stderr; the results themselves are printed by the code that owns them.

On a terminal a step is one line redrawn in place: a bar when the total is known, the count,
the elapsed time and an estimate of the time left. A ticker thread keeps the elapsed time
moving while a step blocks (a TFLite conversion), at most ten redraws a second; when the
step ends its line is replaced by a final one. Anywhere else (a log file, a pipe, CI) no
control character is written: a plain line every `PLAIN_EVERY` seconds while a step runs,
then the final line. A step that ends within `SHOWN_AFTER` seconds leaves nothing at all,
so short runs print what they printed before. `dlpipe --quiet` silences all of it.

    with progress.task("reading data.csv", total=size, unit="bytes") as step:
        ...; step.update(done)
        step.finish("230,000 rows")      # the final line: "[dlpipe] reading data.csv: 230,000 rows (4.2 s)"
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

PLAIN_EVERY = 10.0
"""Seconds between two plain lines of one step when stderr is not a terminal."""
SHOWN_AFTER = 2.0
"""A step that ends sooner leaves no line (unless it asks to be shown always)."""
REDRAW_EVERY = 0.1

_state = {"quiet": False}
_lock = threading.RLock()
_open: list[Task] = []  # every step in progress in this process, innermost last
_live: list[Task] = []  # those drawing on a terminal, innermost last
_ticker: list[threading.Thread] = []


def set_quiet(quiet: bool) -> None:
    """`dlpipe --quiet`: no progress at all (set by the CLI for each command)."""
    _state["quiet"] = quiet


def quiet() -> bool:
    return _state["quiet"]


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def _size(value: float, unit: str, scale: float | None = None) -> str:
    """A count as shown; bytes in MB or kB, chosen by `scale` (the total) when given."""
    if unit == "bytes":
        return f"{value / 1e6:,.1f} MB" if (scale or value) >= 1e5 else f"{value / 1e3:,.0f} kB"
    return f"{value:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


class Task:
    """One step's progress; made by `task()`."""

    def __init__(self, label: str, total: float | None, unit: str, stream: TextIO | None,
                 always: bool, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit, self.always = label, total, unit, always
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = is_terminal(self.stream)
        self.clock = clock
        self.done = 0.0
        self.note = ""
        self.summary: str | None = None
        self.started = self.last_shown = self.done_at = clock()
        self.drawn = False  # something of this step is on the screen or in the log

    # What the caller reports -----------------------------------------------------------------

    def update(self, done: float | None = None, *, total: float | None = None, note: str | None = None) -> None:
        if done is not None:
            if done != self.done:
                self.done_at = self.clock()
            self.done = done
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self._show()

    def advance(self, amount: float = 1) -> None:
        self.update(self.done + amount)

    def finish(self, summary: str) -> None:
        """The final line's text (default: the count reached)."""
        self.summary = summary

    # What is shown ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self, bar: bool) -> str:
        elapsed = self.elapsed()
        parts, drawn = [], ""
        if self.total:
            fraction = min(max(self.done / self.total, 0.0), 1.0)
            counted = f"{_size(self.done, self.unit, self.total)}/{_size(self.total, self.unit)}"
            if self.unit and self.unit != "bytes":
                counted += f" {self.unit}"
            if bar:
                filled = int(fraction * 24)
                drawn = "[" + "=" * filled + (">" if filled < 24 else "") + " " * (23 - filled) + "] "
            parts.append(f"{fraction:.0%} {counted}")
        elif self.done:
            parts.append(f"{_size(self.done, self.unit)} {'' if self.unit == 'bytes' else self.unit}".rstrip())
        if self.note:
            parts.append(self.note)
        parts.append(_duration(elapsed))
        if self.total and 0 < self.done < self.total and elapsed >= 1:
            # The pace so far, less the time already spent on the unit under way.
            per_unit = (self.done_at - self.started) / self.done
            left = per_unit * (self.total - self.done) - (self.clock() - self.done_at)
            parts.append(f"ETA {_duration(max(left, 0.0))}")
        return f"[dlpipe] {self.label}: {drawn}" + ", ".join(parts)

    def _show(self, ticking: bool = False) -> None:
        if quiet():
            return
        now = self.clock()
        if self.terminal:
            if (now - self.started >= SHOWN_AFTER / 2 or self.always) and (
                    ticking or now - self.last_shown >= REDRAW_EVERY or not self.drawn):
                with _lock:
                    if _live and _live[-1] is self:
                        self._write("\r" + self._fit(self.line(bar=True)) + "\x1b[K")
                        self.last_shown, self.drawn = now, True
        elif now - self.last_shown >= PLAIN_EVERY:
            self._write(self.line(bar=False) + "\n")
            self.last_shown, self.drawn = now, True

    def _fit(self, text: str) -> str:
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns or 120  # 0: a pty with no size set
        except (AttributeError, OSError, ValueError):
            width = 120
        return text if len(text) < width else text[:max(width - 2, 10)] + "…"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: progress is not worth failing for
            pass

    def _close(self, failed: bool) -> None:
        if quiet():
            return
        elapsed = self.elapsed()
        shown = self.always or elapsed >= SHOWN_AFTER or self.drawn
        summary = self.summary
        if summary is None:
            summary = "stopped" if failed else (
                f"{_size(self.done, self.unit)} {'' if self.unit == 'bytes' else self.unit}".strip()
                if self.done else "done")
        final = f"[dlpipe] {self.label}: {summary} ({elapsed:.1f} s)"
        with _lock:
            if self.terminal and self.drawn:
                self._write("\r\x1b[K")
            if shown and not failed:
                self._write(final + "\n")


def _tick() -> None:
    while True:
        time.sleep(REDRAW_EVERY)
        with _lock:
            if not _live:
                _ticker.clear()
                return
            _live[-1]._show(ticking=True)


@contextlib.contextmanager
def task(label: str, total: float | None = None, unit: str = "", *, stream: TextIO | None = None,
         always: bool = False, clock: Callable[[], float] = time.monotonic) -> Iterator[Task]:
    """A step's progress for the `with` block. `always`: print the final line even when
    the step was quick (tuning trials: one line each)."""
    step = Task(label, total, unit, stream, always, clock)
    live = step.terminal and not quiet()
    if live:
        with _lock:
            if _live:  # an outer step's line gives way to this one
                _live[-1]._write("\r\x1b[K")
            _live.append(step)
            if not _ticker:
                _ticker.append(threading.Thread(target=_tick, name="dlpipe-progress", daemon=True))
                _ticker[0].start()
    _open.append(step)
    failed = True
    try:
        step._show()
        yield step
        failed = False
    finally:
        _open.remove(step)
        if live:
            with _lock:
                _live.remove(step)
        step._close(failed)


def note(text: str) -> None:
    """Name the part of the innermost step now running (a TFLite quantization mode), for
    code that runs inside a step it did not open; nothing when no step is open."""
    if _open:
        _open[-1].update(note=text)


def echo(message: str, stream: TextIO | None = None) -> None:
    """A line of its own (`[dlpipe] message`) that does not tear a step's line on a terminal:
    the live line is cleared first and redrawn by the next tick."""
    stream = stream if stream is not None else sys.stderr
    with _lock:
        for step in _live:
            if step.stream is stream or _same_file(step.stream, stream):
                step._write("\r\x1b[K")
        print(f"[dlpipe] {message}", file=stream, flush=True)


def _same_file(a, b) -> bool:
    try:
        return os.path.sameopenfile(a.fileno(), b.fileno())
    except (AttributeError, OSError, ValueError):
        return False
