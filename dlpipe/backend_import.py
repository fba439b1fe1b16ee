"""Import TensorFlow without its start-up chatter on the terminal.

TensorFlow 2.21 prints a handful of C++ log lines when it is imported and first looks for
devices — absl's "All log messages before absl::InitializeLog()" warning, oneDNN and
CUDA-driver notices, the CPU instruction notice, "failed call to cuInit" without a GPU —
and `TF_CPP_MIN_LOG_LEVEL` no longer silences them (they are written before TensorFlow's
own logging is set up). They drown dlpipe's one-line messages. So the
first import runs with file descriptor 2 pointed at a temporary file; afterwards every
captured line that is not one of those known notices is written to stderr as it was. If the
import fails, everything captured is shown. `DLPIPE_TF_LOGS=1` turns this off.

Standard library only: the CLI imports this module before it needs TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# One C++ log line: severity, MMDD, time, thread id, file:line] message.
_NOTICES = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:.]+\s+\d+ (port|cudart_stub|cpu_feature_guard|cuda_executor|gpu_device)\.cc:\d+\] .*"
    rb"|E\d{4} [\d:.]+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
    rb"|To enable the following instructions: .*in other operations, rebuild TensorFlow with the "
    rb"appropriate compiler flags\.")


def import_tensorflow() -> None:
    """Import tensorflow (and keras) once, keeping only the lines worth reading."""
    if "tensorflow" in sys.modules or os.environ.get("DLPIPE_TF_LOGS"):
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr to redirect (embedded interpreters)
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            with _without_jax():
                import tensorflow
                import keras  # noqa: F401

            tensorflow.config.list_physical_devices()  # the device probe logs too (cuInit)

            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines()
                    if failed or (line.strip() and not _NOTICES.fullmatch(line.strip()))]
            if kept:
                stream = getattr(sys.stderr, "buffer", None)
                text = b"\n".join(kept) + b"\n"
                stream.write(text) if stream is not None else sys.stderr.write(text.decode(errors="replace"))
                sys.stderr.flush()


@contextlib.contextmanager
def _without_jax():
    """Hide JAX while TensorFlow imports, when Keras will not run on JAX.

    `import tensorflow` imports `jax` whenever it is installed (tensorflow/lite/python/util.py
    keeps `jax.jit` for `TFLiteConverter.experimental_from_jax`, which dlpipe never calls):
    about 1.3 s and 100 MB on this CPU for a library the run does not use. Afterwards `jax`
    imports as usual for whoever asks for it."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow" or "jax" in sys.modules:
        yield
        return
    sys.modules["jax"] = None  # `import jax` raises ImportError while this is in place
    try:
        yield
    finally:
        if sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]

