"""dlpipe's version, in a module of its own: the modules that record it (run.json, the model
card, the stage cache's keys, `dlpipe --version`) read it from here rather than from the
package, whose lazy Python API (dlpipe/__init__.py) would otherwise make an import circle
with the runner they belong to."""

__version__ = "0.1.0"
