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
    _import_keras_lean()
    _tensorflow_only_when_imported()
    if name == "torch":
        _autograd_in_train_steps()


def inference():
    """A context in which a run's model calls keep no autograd graph: on torch, `torch.no_grad`
    (Keras' torch backend records one for every eager call, which then cannot become a NumPy
    array and costs time and memory), where the train step turns autograd back on
    (`_autograd_in_train_steps`); elsewhere nothing. The runner runs the pipeline in it."""
    import contextlib

    if current() != "torch":
        return contextlib.nullcontext()
    import torch

    return torch.no_grad()


def _autograd_in_train_steps() -> None:
    """Keras' torch trainer runs its train step with autograd as the caller left it; dlpipe's
    pipelines run under `inference()`, so the train function (`fit`, `train_on_batch`, a GAN's
    or diffusion model's own `train_step`) is wrapped to run with autograd on."""
    import functools

    import torch
    from keras.src.backend.torch.trainer import TorchTrainer

    make = TorchTrainer.make_train_function
    if getattr(make, "_dlpipe_autograd", False):
        return

    @functools.wraps(make)
    def make_train_function(self, force=False):
        make(self, force)  # sets self.train_function
        original = self.train_function
        if original is not None and not getattr(original, "_dlpipe_autograd", False):

            def with_autograd(data):
                with torch.enable_grad():
                    return original(data)

            with_autograd._dlpipe_autograd = True
            self.train_function = with_autograd
        return self.train_function

    make_train_function._dlpipe_autograd = True
    TorchTrainer.make_train_function = make_train_function


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


DEFERRED = ("keras.wrappers", "keras.visualization", "keras.src.wrappers", "keras.src.visualization",
            "keras._tf_keras.keras.wrappers", "keras._tf_keras.keras.visualization", "requests", "h5py")
"""Modules that `import keras` loads only at their first use: the scikit-learn wrappers (they
import scikit-learn, ~1.3 s CPU here), the image-gallery plots (matplotlib.pyplot, ~0.5 s),
`requests` (for the RemoteMonitor callback) and h5py (for legacy .h5 files; `.keras` weights
load it when saved or read). `keras.wrappers.SKLearnClassifier` still works: the module loads
at that attribute."""

SPLASH = "jax.experimental.pallas.ops.tpu.splash_attention"
"""Keras' JAX backend imports TPU splash-attention kernels (Pallas, ~0.13 s CPU here) for its
TPU flash attention; elsewhere it never calls them."""


def _import_keras_lean() -> None:
    """`import keras` on jax or torch without what its `__init__` imports for every backend
    and a run does not use before its first training step (on this CPU `import keras` on jax
    3.3 s → 1.4 s CPU):

    - `DEFERRED` load at first use (`importlib.util.LazyLoader`);
    - `SPLASH`'s two modules are imported at their first attribute use;
    - pandas, which Keras imports only to accept DataFrames in `fit`, is taught to Keras when
      something imports it (dlpipe hands Keras NumPy arrays; a CSV source imports pandas).

    The hooks are removed once Keras is imported; `DLPIPE_LEAN_KERAS=0` imports Keras as
    usual."""
    if "keras" in sys.modules or os.environ.get("DLPIPE_LEAN_KERAS") == "0":
        import keras  # noqa: F401

        return
    import importlib.util

    deferring = _Deferring()
    sys.meta_path.insert(0, deferring)
    hide_pandas = "pandas" not in sys.modules and importlib.util.find_spec("pandas") is not None
    if hide_pandas:
        sys.modules["pandas"] = None  # `import pandas` raises ImportError while this is in place
    stand_ins = {}
    if os.environ.get("KERAS_BACKEND") == "jax":
        import types

        if SPLASH not in sys.modules:
            splash = stand_ins[SPLASH] = types.ModuleType(SPLASH, "imported at first use (dlpipe.backend)")
            for name in ("splash_attention_kernel", "splash_attention_mask"):
                setattr(splash, name, _AtFirstUse(f"{SPLASH}.{name}"))
        sys.modules.update(stand_ins)
    try:
        import keras  # noqa: F401
    finally:
        sys.meta_path.remove(deferring)
        if hide_pandas and sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]  # the next `import` of it imports the real module
    if hide_pandas:
        if "pandas" in sys.modules:  # imported meanwhile by another thread: tell Keras now
            _teach_keras_pandas()
        else:
            sys.meta_path.insert(0, _PandasWatch())


class _AtFirstUse:
    """Stands for a module: imports it when one of its attributes is first asked for."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute):
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


class _Deferring:
    """Finds the `DEFERRED` modules (not yet imported) with a lazy loader, executed at first
    attribute use."""

    def find_spec(self, name, path, target=None):
        if name not in DEFERRED:
            return None
        import importlib.util

        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


class _PandasWatch:
    """Waits for the first `import pandas`; once pandas is loaded, tells Keras about it and
    leaves `sys.meta_path`."""

    def find_spec(self, name, path, target=None):
        if name != "pandas":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec("pandas")
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenTeach(spec.loader)
        return spec


class _ThenTeach:
    """A loader that runs pandas' own, then `_teach_keras_pandas`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _teach_keras_pandas(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... as pandas' loader
        return getattr(self.loader, name)


def _teach_keras_pandas(pandas=None) -> None:
    """What Keras' array adapter sets when pandas is importable at its own import."""
    try:
        from keras.src.trainers.data_adapters import array_slicing
    except ImportError:
        return
    pandas = pandas if pandas is not None else sys.modules["pandas"]
    if getattr(array_slicing, "pandas", 0) is None:
        array_slicing.pandas = pandas
        array_slicing.ARRAY_TYPES = tuple(array_slicing.ARRAY_TYPES) + (pandas.Series, pandas.DataFrame)


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


def of_saved(path) -> str:
    """The backend to load a saved model with: the backend of the run it belongs to (its
    run.json, in `path` or up to two folders above it: a run, its export folder, one format's
    folder or a file in them), if that backend's package is installed; else `KERAS_BACKEND`,
    else tensorflow. `.keras` files carry no backend and load on any, so a JAX run is
    evaluated, exported, predicted and served on JAX without importing TensorFlow."""
    import importlib.util
    import json
    from pathlib import Path

    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    for candidate in (folder, *list(folder.parents)[:2]):
        try:
            record = json.loads((candidate / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        name = record.get("backend") if isinstance(record, dict) else None
        if name in BACKENDS and (name in sys.modules or importlib.util.find_spec(PACKAGE[name]) is not None):
            return name
        break
    name = os.environ.get("KERAS_BACKEND", "tensorflow")
    return name if name in BACKENDS else "tensorflow"


def activate_for(path) -> str:
    """Import Keras for a command that loads a saved model (`of_saved(path)`): on tensorflow
    with its notices silenced, on another backend without TensorFlow. Returns the backend.
    Keras already imported in this process (the Python API, a notebook) is used as it is."""
    before = current()
    if before is not None:
        return before
    name = of_saved(path)
    activate(name)
    if name == "torch":  # these commands never train: no autograd graph for any call
        import torch

        torch.set_grad_enabled(False)
    return name

