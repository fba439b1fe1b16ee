"""Seeds and op determinism: the same spec on the same CPU gives the same bits."""

from __future__ import annotations

import os


def configure(seed: int) -> dict:
    """Seed Python, NumPy and the backend; turn on TensorFlow's op determinism."""
    # TensorFlow's C++ start-up chatter (CUDA probing, graph attribute notices) is not
    # actionable for a user; Python exceptions still surface. Set the variable to see it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "seed": seed,
        "deterministic": True,
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "backend": keras.backend.backend(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
