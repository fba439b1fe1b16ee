"""TensorFlow is imported without its start-up notices; anything else it prints still shows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROBE = "from dlpipe.backend_import import import_tensorflow; import_tensorflow(); print('imported')"
NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795325769.545386   25816 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors.",
    "I0000 00:00:1795325769.545982   25816 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "E0000 00:00:1795326592.736924    6880 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
]


def fake_tensorflow(tmp_path, lines: list[str], fail: bool) -> dict:
    """A `tensorflow` and `keras` on PYTHONPATH that write `lines` to file descriptor 2, as
    native code does, and optionally fail to import."""
    payload = "\n".join(lines) + "\n"
    (tmp_path / "tensorflow.py").write_text(textwrap.dedent(f"""
        import os
        os.write(2, {payload!r}.encode())
        if {fail!r}:
            raise ImportError("libcudnn.so.9: cannot open shared object file")
        class config:
            @staticmethod
            def list_physical_devices():
                return []
    """), encoding="utf-8")
    (tmp_path / "keras.py").write_text("", encoding="utf-8")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}


def test_known_notices_are_dropped_and_other_lines_kept(tmp_path):
    env = fake_tensorflow(tmp_path, [*NOTICES, "W0000 00:00:1.0  1 something.cc:1] a real warning"], fail=False)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "imported\n"
    assert done.stderr == "W0000 00:00:1.0  1 something.cc:1] a real warning\n"


def test_a_failed_import_shows_everything_it_printed(tmp_path):
    env = fake_tensorflow(tmp_path, NOTICES, fail=True)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("\n".join(NOTICES) + "\n")
    assert "ImportError: libcudnn.so.9" in done.stderr


def test_dlpipe_tf_logs_keeps_the_notices(tmp_path):
    env = {**fake_tensorflow(tmp_path, NOTICES, fail=False), "DLPIPE_TF_LOGS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE + "; import tensorflow"], env=env,
                          capture_output=True, text=True)
    assert done.stderr == "\n".join(NOTICES) + "\n"


@pytest.mark.slow
def test_the_real_tensorflow_imports_silently():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stderr == ""


def fake_tensorflow_reading_jax(tmp_path) -> dict:
    """A `tensorflow` that imports `jax` if it can (as TensorFlow 2.21's TFLite utilities do),
    and a `jax` beside it."""
    (tmp_path / "tensorflow.py").write_text(textwrap.dedent("""
        try:
            import jax
            HAS_JAX = True
        except ImportError:
            HAS_JAX = False
        class config:
            @staticmethod
            def list_physical_devices():
                return []
    """), encoding="utf-8")
    (tmp_path / "keras.py").write_text("", encoding="utf-8")
    (tmp_path / "jax.py").write_text("NAME = 'jax'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "DLPIPE_TF_LOGS")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}


JAX_PROBE = PROBE + "; import sys, tensorflow; print(tensorflow.HAS_JAX, 'jax' in sys.modules); import jax; print(jax.NAME)"


def test_tensorflow_imports_without_jax_and_jax_still_imports_after(tmp_path):
    env = fake_tensorflow_reading_jax(tmp_path)
    done = subprocess.run([sys.executable, "-c", JAX_PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported\nFalse False\njax\n"


def test_jax_is_left_alone_when_keras_runs_on_jax(tmp_path):
    env = {**fake_tensorflow_reading_jax(tmp_path), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", JAX_PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported\nTrue True\njax\n"


@pytest.mark.slow
def test_the_real_tensorflow_imports_without_jax():
    probe = PROBE + "; import sys; print('jax' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported\nFalse\n"

