"""The training environment: seeds, op determinism, precision, XLA, distribution.

Everything here must happen before the model is built, and the distribution strategy
before TensorFlow starts its runtime (a multi-worker process joins its cluster then).
"""

from __future__ import annotations

import os


def configure(seed: int, training=None) -> dict:
    """Seed Python, NumPy and the backend; set op determinism, the precision policy and the
    distribution strategy from the `training` section (defaults without one). Returns what
    was chosen, for run.json."""
    # TensorFlow's C++ start-up chatter (CUDA probing, graph attribute notices) is not
    # actionable for a user; Python exceptions still surface. Set the variable to see it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
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


def resolve_precision(value: str, gpus=None) -> str:
    """`auto`: float32 on a CPU (mixed precision runs several times slower there); on GPUs,
    bfloat16 where all of them support it (compute capability 8.0+), else float16."""
    if value != "auto":
        return value
    if not gpus:
        return "float32"
    import tensorflow as tf

    capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
    return "mixed_bfloat16" if all(tuple(c) >= (8, 0) for c in capabilities) else "mixed_float16"


def resolve_deterministic(value, jit: bool) -> bool:
    """`auto`: op determinism unless the step is compiled with XLA (Keras turns XLA off
    under determinism: not every XLA op has a deterministic kernel)."""
    return not jit if value == "auto" else bool(value)


def resolve_jit(value, gpus=None) -> bool:
    """`auto`: XLA on a GPU only (it was 2–3× slower than plain TensorFlow on these CPUs)."""
    return bool(gpus) if value == "auto" else bool(value)
