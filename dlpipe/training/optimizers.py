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


def set_learning_rate(optimizer, rate) -> None:
    """Give `optimizer` a learning rate (a float or a schedule) after it was made.

    Keras's setter, given a schedule, stops tracking the optimizer's rate variable by
    removing it from a list TensorFlow tracks; `model.export` (SavedModel, and every format
    made from it) then refuses to save that list ("A list element was replaced"). A schedule
    is therefore set beside the variable, which stays tracked and unused."""
    import keras

    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        optimizer._learning_rate = rate
    else:
        optimizer.learning_rate = rate
