"""dlpipe: one YAML spec → a trained, evaluated, exported Keras model."""

__version__ = "0.1.0"
