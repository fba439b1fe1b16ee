"""A test hook: make a run kill itself at a chosen point, to test what a crash leaves behind.

    DLPIPE_TEST_KILL_AT=<stage>[:<n>]   the run sends itself SIGKILL at the n-th (default:
                                        first) kill point reached in stage <stage>
    DLPIPE_TEST_KILL_SIGNAL=TERM|INT    send that signal instead of KILL (an interruption the
                                        run handles, rather than a crash)

    DLPIPE_TEST_FILL_DISK_AT=<stage>:<path>
                                        at the first kill point of stage <stage>, write
                                        <path> until its disk is full (ENOSPC), then go on:
                                        every later write of the stage meets a full disk

Kill points are the moments a crash is most likely to leave a mess: every atomic write of
the stage, after the temporary file is complete and before it is renamed into place; and
the end of each training batch (so `train:9` stops a 6-batch-per-epoch run in its second
epoch, after the first epoch's checkpoint). Used by tests/test_reliability.py; never set it
otherwise. Reading the environment costs nothing when the variable is unset.
"""

from __future__ import annotations

import os
import signal

_stage: str | None = None
_count = 0


def enter_stage(name: str | None) -> None:
    """RunDir.stage calls this as a stage begins (and with None as it ends)."""
    global _stage, _count
    _stage, _count = name, 0


def point() -> None:
    """A kill point: kill this process here if DLPIPE_TEST_KILL_AT names it (or fill the
    disk, DLPIPE_TEST_FILL_DISK_AT)."""
    global _count
    fill = os.environ.get("DLPIPE_TEST_FILL_DISK_AT")
    if fill and _stage is not None and fill.partition(":")[0] == _stage:
        _fill(fill.partition(":")[2])
    wanted = os.environ.get("DLPIPE_TEST_KILL_AT")
    if not wanted or _stage is None:
        return
    stage, _, n = wanted.partition(":")
    if stage != _stage:
        return
    _count += 1
    if _count == int(n or 1):
        name = os.environ.get("DLPIPE_TEST_KILL_SIGNAL", "KILL").upper().removeprefix("SIG")
        os.kill(os.getpid(), getattr(signal, f"SIG{name}"))


def _fill(path: str) -> None:
    if os.path.exists(path):
        return  # filled already
    try:
        with open(path, "wb") as handle:
            block = b"\0" * (1 << 16)
            while True:
                handle.write(block)
                handle.flush()
    except OSError:
        pass
    try:  # what the buffer held may not have fitted: fill to the last byte
        with open(path, "ab", buffering=0) as handle:
            while handle.write(b"\0"):
                pass
    except OSError:
        pass


def callbacks() -> list:
    """Keras callbacks adding a kill point at each training batch's end (none when unset)."""
    if not os.environ.get("DLPIPE_TEST_KILL_AT"):
        return []
    import keras

    class KillPoint(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            point()

    return [KillPoint()]
