"""dlpipe: one YAML spec → a trained, evaluated, exported Keras model.

The Python API (dlpipe/api.py), loaded on first use so that `import dlpipe` stays light
(no TensorFlow, no Pydantic):

    dlpipe.run(spec, overrides=None, out=None) → Run     train, evaluate, export
    dlpipe.load_spec(path, overrides=None) → Spec        validated, or SpecError
    dlpipe.validate(path, overrides=None) → [Problem]    [] when valid
    dlpipe.predict(model, rows) → [record]               as `dlpipe predict` writes them
    dlpipe.Run.open(run_dir) → Run                       metrics, history, paths
"""

from dlpipe.version import __version__

_API = ("run", "load_spec", "validate", "predict", "Run")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from dlpipe import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'dlpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
