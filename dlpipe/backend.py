"""Which Keras backend a run uses (`backend:` in the spec), set before Keras is first imported.

Keras reads `KERAS_BACKEND` once, when `keras` is first imported in a process; after that the
backend cannot change. So the runner calls `activate(spec.backend)` before anything imports
Keras, and a process that already imported Keras with another backend (a notebook that ran a
TensorFlow spec, then a JAX one) is refused in one line rather than silently run on the wrong
backend.

On `jax` (and `torch`) nothing here imports TensorFlow. Keras itself would: a few of its
helpers ask "is TensorFlow installed?" by importing it (`keras.utils.set_random_seed`, saving a
`.keras` file), which costs about 5 s and 500 MB here. `activate` makes those helpers answer
"only if it is already imported": a step that truly needs TensorFlow (string lookup and text
vectorization, the SavedModel, TFLite and ONNX exporters) imports it itself, lazily, and from
then on Keras sees it as usual.

Standard library only: the runner imports this before Keras.
"""

from __future__ import annotations

import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
PACKAGE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
"""The package each backend needs installed (what `pip install` names)."""


def current() -> str | None:
    """The backend Keras was imported with in this process, or None before Keras is imported."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.backend.backend()
    except AttributeError:  # Keras half-imported (an import in progress)
        return os.environ.get("KERAS_BACKEND", "tensorflow")


def activate(name: str, *, deterministic: bool = False) -> None:
    """Import Keras on backend `name` (TensorFlow's start-up notices silenced); refuse in one
    line if Keras was already imported with another. `deterministic` asks XLA for
    deterministic GPU kernels on jax (set before JAX starts; no effect on a CPU)."""
    from dlpipe.errors import DlpipeError

    before = current()
    if before is not None and before != name:
        raise DlpipeError(f"backend: {name}: Keras was already imported in this process with backend {before} "
                          f"(it reads KERAS_BACKEND once, at its first import); run this spec in a new process")
    os.environ["KERAS_BACKEND"] = name
    if name == "tensorflow":
        from dlpipe.backend_import import import_tensorflow

        import_tensorflow()
        import keras  # noqa: F401 (already imported, unless DLPIPE_TF_LOGS is set)

        return
    if deterministic and name == "jax" and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    if name == "jax":
        _compilation_cache()
    import keras  # noqa: F401

    _tensorflow_only_when_imported()


COMPILATION_CACHE_BYTES = 2 << 30
"""The most JAX's compilation cache under dlpipe's cache folder holds, least recently used out
(JAX enforces it only where the filelock package is installed)."""


def _compilation_cache() -> None:
    """JAX's persistent compilation cache: XLA executables kept on disk by a key of the program
    and compiler, so a rerun of the same model (a tuning trial, a benchmark, the same spec
    tomorrow) loads its train, test and predict steps instead of compiling them again (on this
    CPU the breast-cancer MLP's train stage went from 7.2 s to 1.9 s). The same executable, so
    the same bits. Kept under $DLPIPE_CACHE_DIR/jax (default ~/.cache/dlpipe/jax), unless
    JAX_COMPILATION_CACHE_DIR names another folder; DLPIPE_JAX_CACHE=0 turns it off."""
    if os.environ.get("DLPIPE_JAX_CACHE") == "0":
        return
    # As environment variables, before JAX is imported: JAX decides whether it caches at its
    # first compilation (Keras compiles while it imports), and never again.
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        from dlpipe.validation_cache import cache_dir

        folder = cache_dir() / "jax"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:  # an unwritable home: compile every time
            return
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # a CPU's steps compile fast
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    import importlib.util

    if importlib.util.find_spec("filelock") is not None:  # JAX bounds the folder only with it
        os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(COMPILATION_CACHE_BYTES))


def _tensorflow_only_when_imported() -> None:
    """Keras' lazy `tensorflow` module answers `available` by importing TensorFlow; on another
    backend make it answer whether TensorFlow is already imported (by a step that needs it)."""
    try:
        from keras.src.utils import module_utils
    except ImportError:  # another Keras layout: its helpers may import TensorFlow, nothing breaks
        return
    lazy = getattr(module_utils, "tensorflow", None)
    if lazy is None or type(lazy).__name__ == "_ImportedOnly":
        return

    class _ImportedOnly(type(lazy)):
        @property
        def available(self):
            if "tensorflow" not in sys.modules:
                return False
            if not self._available:  # imported since: ask as Keras does
                self._available = None
            return super().available

    lazy.__class__ = _ImportedOnly


def tensorflow_installed() -> bool:
    """Whether TensorFlow could be imported (without importing it)."""
    import importlib.util

    return "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is not None
