"""The training environment: seeds, op determinism, precision, XLA, distribution.

Everything here must happen before the model is built, and the distribution strategy
before TensorFlow starts its runtime (a multi-worker process joins its cluster then).
"""

from __future__ import annotations

import os
import sys


def configure(seed: int, training=None) -> dict:
    """Seed Python, NumPy and the backend; set op determinism, the precision policy and the
    distribution strategy from the `training` section (defaults without one). Returns what
    was chosen, for run.json. Keras must be imported already, on the run's backend
    (dlpipe/backend.py); only the TensorFlow backend imports TensorFlow here."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return _configure_without_tensorflow(seed, training)
    # TensorFlow's C++ start-up chatter (CUDA probing, graph attribute notices) is not
    # actionable for a user; Python exceptions still surface. Set the variable to see it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from dlpipe.training import distribute

    gpus = tf.config.list_physical_devices("GPU")
    kind = distribute.resolve(training.strategy if training else "none", len(gpus))
    strategy = distribute.strategy(kind)

    keras.utils.set_random_seed(seed)
    jit = resolve_jit(training.jit_compile if training else False, gpus)
    deterministic = resolve_deterministic(training.deterministic if training else "auto", jit)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        # No public switch back; a process may run several specs (tests, tuning).
        tf_config.disable_op_determinism()
    precision = resolve_precision(training.precision if training else "float32", gpus)
    keras.mixed_precision.set_global_policy(precision)
    return {
        "seed": seed,
        "deterministic": bool(tf_config.is_op_determinism_enabled()),
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "backend": keras.backend.backend(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "training": {
            "precision": precision,
            "jit_compile": jit,
            "strategy": kind,
            "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
            "workers": distribute.cluster().tasks if kind == "multi_worker" else 1,
        },
    }


def _configure_without_tensorflow(seed: int, training=None) -> dict:
    """`configure` on JAX or torch: one device, no tf.distribute. JAX on a CPU is
    deterministic as it is; on a GPU, determinism is XLA's `--xla_gpu_deterministic_ops`, which
    dlpipe/backend.py sets before JAX starts when `training.deterministic` is true. torch on a
    CPU is deterministic as it is (a run repeats its bits; unseeded randomness, a Dropout's,
    is seeded per step: training/callbacks.py TorchBatchSeed); `training.deterministic: true`
    turns on `torch.use_deterministic_algorithms`."""
    import keras

    backend = keras.backend.backend()
    found = gpus()
    _set_random_seed(seed)
    jit = resolve_jit(training.jit_compile if training else False, found, backend)
    precision = resolve_precision(training.precision if training else "float32", found)
    keras.mixed_precision.set_global_policy(precision)
    if backend == "jax":
        import jax

        deterministic = not found or "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", "")
        versions = {"jax": jax.__version__, "jaxlib": getattr(sys.modules.get("jaxlib"), "__version__", None)}
    else:
        import torch

        deterministic = not found
        if training is not None and training.deterministic is True:
            torch.use_deterministic_algorithms(True)
            deterministic = True
        versions = {"torch": torch.__version__}
    return {
        "seed": seed,
        "deterministic": bool(deterministic),
        "device": f"GPU x{len(found)}" if found else "CPU",
        "backend": backend,
        "versions": {**versions, "keras": keras.__version__},
        "training": {"precision": precision, "jit_compile": jit, "strategy": "none", "replicas": 1, "workers": 1},
    }


def _set_random_seed(seed: int) -> None:
    """Python, NumPy and Keras' seed generators. Keras would also seed TensorFlow whenever it is
    installed, importing it; dlpipe/backend.py makes Keras see TensorFlow only once imported."""
    import keras

    keras.utils.set_random_seed(seed)


def gpus() -> list:
    """The GPUs the run's backend sees (TensorFlow's physical devices; JAX's gpu devices)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        try:
            return [d for d in jax.devices() if d.platform == "gpu"]
        except RuntimeError:  # no GPU platform initialised
            return []
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def _capability(gpu) -> tuple:
    """A GPU's compute capability, (major, minor)."""
    capability = getattr(gpu, "compute_capability", None)  # a JAX device: "8.0"
    if isinstance(capability, str):
        return tuple(int(part) for part in capability.split(".")[:2])
    if isinstance(gpu, str) and gpu.startswith("cuda:"):
        import torch

        return tuple(torch.cuda.get_device_capability(int(gpu.split(":")[1])))
    import tensorflow as tf

    return tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))


def resolve_precision(value: str, gpus=None) -> str:
    """`auto`: float32 on a CPU (mixed precision runs several times slower there); on GPUs,
    bfloat16 where all of them support it (compute capability 8.0+), else float16."""
    if value != "auto":
        return value
    if not gpus:
        return "float32"
    return "mixed_bfloat16" if all(_capability(g) >= (8, 0) for g in gpus) else "mixed_float16"


def resolve_deterministic(value, jit: bool) -> bool:
    """`auto`: op determinism unless the step is compiled with XLA (Keras turns XLA off
    under determinism: not every XLA op has a deterministic kernel)."""
    return not jit if value == "auto" else bool(value)


def resolve_jit(value, gpus=None, backend: str = "tensorflow") -> bool:
    """`auto`: on TensorFlow, XLA on a GPU only (it was 2–3× slower than plain TensorFlow on
    these CPUs); on JAX always (JAX runs every op through XLA: a compiled step is its fast path);
    on torch never (`torch.compile` traces and compiles for each new shape, with a C++ compiler
    on a CPU: `jit_compile: true` asks for it)."""
    if value == "auto":
        return {"jax": True, "torch": False}.get(backend, bool(gpus))
    return bool(value)
