"""A backbone's fine-tune schedule (`model.fine_tune`): which of its layers train in which
epoch, and the learning-rate factor once it trains.

    phase 0  epochs [0, freeze_epochs): the nested model named `backbone` is frozen — its
             weights do not train and its batch-norm layers normalize with their moving
             statistics (a non-trainable BatchNormalization runs in inference mode);
    phase 1  from freeze_epochs on: all of it, or its top K layers that hold weights, trains
             (batch norm kept in inference mode unless `batch_norm: train`), at the learning
             rate × `learning_rate_factor` (`FineTuneRate`, a function of the step counter).

What trains is a pure function of the epoch, and the optimizer is built once over every
variable that trains in either phase (a variable frozen for now simply gets no update), so
a checkpoint holds the same variables in both phases and `--resume` on either side of the
unfreeze continues exactly. The callback switches the phase when an epoch begins (Keras
retraces its train step then) and logs `phase` and `trainable_params` for history.csv.

On JAX, Keras' train step hands the optimizer the values of the model's trainable variables
(`stateless_apply`), which must be every variable the optimizer was built with. The
optimizer there gets `_PhaseApply`: the update of just the variables that train now, inside
a stateless scope — what the TensorFlow path does statefully (`optimizer.apply(grads,
those variables)`): a frozen variable's moments and weight decay are left alone, and the
optimizer's variables (so checkpoints) are the same in both phases.

Found by name, not by import: training imports no architecture.
"""

from __future__ import annotations

import keras

BACKBONE = "backbone"
"""The nested model dlpipe/architectures/backbone.py builds."""


def prepare(model, spec, steps_per_epoch: int) -> "FineTuneSchedule | None":
    """Set `model` up for its fine-tune schedule (None for a model without a backbone): the
    learning-rate factor in the optimizer, the optimizer built over both phases' variables,
    the layers as the first epoch wants them. Call before a checkpoint is restored."""
    tune = getattr(spec.model, "fine_tune", None)
    backbone = _backbone(model)
    if tune is None or backbone is None:
        return None
    from dlpipe.training.optimizers import optimizers, set_learning_rate
    from dlpipe.training.schedules import FineTuneRate

    schedule = FineTuneSchedule(backbone, tune)
    schedule.apply(model, 1)
    for optimizer, updates in optimizers(model):
        if tune.learning_rate_factor != 1.0:
            rate = optimizer.learning_rate
            if not isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                rate = float(keras.ops.convert_to_numpy(rate))
            set_learning_rate(optimizer, FineTuneRate(rate, tune.freeze_epochs * steps_per_epoch * updates,
                                                      tune.learning_rate_factor))
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if keras.backend.backend() == "jax":  # TensorFlow's and torch's steps apply to the phase's variables
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's own
            inner.stateless_apply = _PhaseApply(inner, model)
    schedule.apply(model, schedule.phase(0))
    return schedule


class _PhaseApply:
    """`optimizer.stateless_apply` (JAX's train step) for the variables that train in the
    current phase: the model's trainable variables when the step is traced (the schedule
    traces it again at each phase change), a subset of those the optimizer was built with."""

    def __init__(self, optimizer, model):
        self.optimizer, self.model = optimizer, model
        self.whole = type(optimizer).stateless_apply.__get__(optimizer)

    def __call__(self, optimizer_variables, grads, trainable_values):
        optimizer, variables = self.optimizer, self.model.trainable_variables
        if len(variables) != len(trainable_values):
            raise RuntimeError(f"the train step passed {len(trainable_values)} variables, the model trains "
                               f"{len(variables)}")
        if [id(v) for v in variables] == [id(v) for v in optimizer._trainable_variables]:
            return self.whole(optimizer_variables, grads, trainable_values)
        mapping = [*zip(variables, trainable_values), *zip(optimizer.variables, optimizer_variables)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            optimizer.apply(grads, variables)
        return ([scope.get_current_value(v) for v in variables],
                [scope.get_current_value(v) for v in optimizer.variables])


def _backbone(model):
    try:
        return model.get_layer(BACKBONE)
    except ValueError:
        return None


def _layers(layer) -> list:
    """Every layer inside `layer`, nested models walked, in order."""
    found = []
    for inner in getattr(layer, "layers", []):
        found.append(inner)
        found += _layers(inner)
    return found


def trainable_params(model) -> int:
    return int(sum(int(keras.ops.size(v)) for v in model.trainable_variables))


class FineTuneSchedule(keras.callbacks.Callback):
    """Switches the backbone's phase as epochs begin; logs `phase` and `trainable_params`."""

    def __init__(self, backbone, tune):
        super().__init__()
        self.backbone, self.tune = backbone, tune
        self.current: int | None = None

    def phase(self, epoch: int) -> int:
        return 0 if epoch < self.tune.freeze_epochs else 1

    def apply(self, model, phase: int) -> None:
        backbone = self.backbone
        backbone.trainable = phase == 1
        layers = _layers(backbone)
        first = 0  # the first layer that trains; batch norm from there on follows `batch_norm`
        if phase == 1 and self.tune.unfreeze != "all":
            for layer in layers:
                layer.trainable = False
            weighted = [layer for layer in layers if layer.weights and not getattr(layer, "layers", None)
                        and not isinstance(layer, keras.layers.BatchNormalization)]
            top = weighted[-self.tune.unfreeze:]
            for layer in top:
                layer.trainable = True
            first = layers.index(top[0]) if top else len(layers)
        if phase == 1:
            for i, layer in enumerate(layers):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = self.tune.batch_norm == "train" and i >= first
        self.current = phase

    def on_epoch_begin(self, epoch, logs=None):
        wanted = self.phase(epoch)
        if wanted != self.current:
            self.apply(self.model, wanted)
            # The traced train step captured the old trainable variables: trace it again.
            self.model.make_train_function(force=True)
            if wanted == 1:
                print(f"[dlpipe] epoch {epoch + 1}: backbone unfrozen "
                      f"({self.tune.unfreeze if self.tune.unfreeze == 'all' else f'top {self.tune.unfreeze} layers'}; "
                      f"{trainable_params(self.model):,} trainable parameters)", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = float(self.current)
            logs["trainable_params"] = float(trainable_params(self.model))
