"""Loading `.keras` files safely: the one place dlpipe turns a model file into a model.

A `.keras` file is a zip of a JSON config and weights, and loading it can run code: a
`Lambda` layer stores Python bytecode that runs when the file is loaded. Keras refuses such
layers in safe mode; dlpipe always loads in safe mode (predict, evaluate, export and its
verification, a rerun reusing a trained model) and turns the refusal into one line. Turning
safe mode off runs whatever code the file holds with your permissions: do it only for a
file you made yourself or got from someone you trust. The opt-ins are named for that:
`dlpipe predict --allow-unsafe-deserialization`, and `allow_unsafe_deserialization: true`
at the top of a spec (for `dlpipe evaluate`/`export` on its run, and a rerun into it).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from dlpipe.errors import DlpipeError

UNSAFE_HINT = ("it holds a Lambda layer or other Python code, which would run on loading; "
               "if you trust the file's source, opt in with {opt_in}")


class UnsafeModelError(DlpipeError):
    """A model file that safe mode refuses to load."""


def load_keras_model(path: Path | str, *, allow_unsafe: bool = False, imports: Sequence[str] = (),
                     opt_in: str = "allow_unsafe_deserialization: true in the spec"):
    """Load a `.keras` file uncompiled, in safe mode unless `allow_unsafe`. `imports`: the
    modules a graph model's custom layers come from (model.allow_imports), imported first
    so that their registered classes resolve."""
    import keras

    import dlpipe.architectures.layers  # noqa: F401  registers dlpipe's own layers
    import dlpipe.training.schedules  # noqa: F401  and learning-rate schedules (a compiled model's optimizer)

    for name in imports:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise DlpipeError(f"{path}: cannot import {name!r} for its custom layers: {err}") from None
    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe, compile=False)
    except ValueError as err:
        text = str(err)
        if "safe_mode" in text or "arbitrary code" in text or "unsafe" in text.lower():
            raise UnsafeModelError(f"{path}: refused to load the model: "
                                   + UNSAFE_HINT.format(opt_in=opt_in)) from None
        raise DlpipeError(f"{path}: cannot load the model: {text.splitlines()[0] if text else err}") from None
