"""Task generation: hands each command to the pipeline of the model it trains.

    model.type gan        pipelines/adversarial.py  (generator and discriminator)
    model.type diffusion  pipelines/diffusion.py    (a denoising U-Net, DDIM sampling)

Both read the same data (one image column, an optional class), score with the same feature
extractor (FID, Inception Score) and export a model that maps seeded inputs (a latent
vector, or starting noise) and an optional class to an image in the data's units.
"""

from __future__ import annotations

import importlib

PIPELINES = {"gan": "adversarial", "diffusion": "diffusion"}


def _pipeline(spec):
    return importlib.import_module(f"dlpipe.pipelines.{PIPELINES[spec.model.type]}")


def run(ctx) -> None:
    _pipeline(ctx.spec).run(ctx)


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR`: the model's own export (the generator, or the sampler)."""
    return _pipeline(run.spec).reexport(run, formats)


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: the model that is exported (generator or sampler)."""
    return _pipeline(spec).deep_build(spec, base_dir, located)
