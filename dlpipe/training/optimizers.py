"""The optimizers a model trains with: built from the spec, and listed for checkpoints."""

from __future__ import annotations

from dlpipe import registry


def make_optimizer(spec):
    options = spec.model_dump(exclude={"type"}, exclude_none=True)
    return registry.load("optimizer", spec.type)(**options)


def optimizers(model) -> list[tuple[object, int]]:
    """Each optimizer of a compiled `model` with the updates it makes per training step: the
    model's one, or those of a model that trains several networks and lists them in
    `optimizer_updates` (the GAN: the generator's once, the discriminator's
    `discriminator_steps` times)."""
    several = getattr(model, "optimizer_updates", None)
    if several is not None:
        return list(several)
    return [(model.optimizer, 1)] if model.optimizer is not None else []
