"""Architectures: spec `model` section → Keras layers. Importing this package imports no Keras."""

from __future__ import annotations


class BuildProblem(Exception):
    """A spec that validates but cannot be built (shapes that do not fit, a layer argument
    Keras refuses). `path` points into the spec; the build stage turns it into a located
    SpecError."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = tuple(path)
        self.message = message
