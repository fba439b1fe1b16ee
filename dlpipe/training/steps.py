"""One training-step body for every backend, for models that write their own step (a GAN,
a diffusion model).

Keras' TensorFlow trainer calls `train_step(data)` and lets the step change variables in
place; its JAX trainer calls `train_step(state, data)` inside `jax.jit` and wants the new
values of every variable back (the step must be a pure function). A model here writes its
step once, as ordinary stateful Keras code, `body(data, step)`, and asks `step` for each
update:

    loss, aux = step.minimize(optimizer, variables, loss_fn)

`loss_fn()` returns (loss, aux); the optimizer applies the gradient of the loss with respect
to `variables`. On TensorFlow (`Tape`) that is a gradient tape and `apply_gradients`, exactly
what the step did before it was shared. On torch (`Autograd`) the body runs eagerly and
changes variables in place as on TensorFlow; `torch.autograd.grad` gives the gradients. On JAX (`Stateless`) the body runs inside a Keras
`StatelessScope` that maps every variable (the model's, the metrics', every optimizer's) to
its value in `state`: assignments (a moving average, a counter, a random generator's seed
state, a metric) are recorded in the scope instead of made; `minimize` takes the gradient with
`jax.value_and_grad` of `loss_fn` run in an inner scope whose `variables` are the traced
arguments (what the forward pass changes there, batch-norm statistics or a dropout's seed,
is carried out to the outer scope), and the optimizer's `apply_gradients` runs under the
outer scope, so its updates are recorded like any other. The recorded values are the new
state.

Keras' JAX trainer carries one optimizer's variables (`model.optimizer`) through its jitted
steps. `SeveralOptimizers` (a mixin) adds the variables of the model's other optimizers
(`optimizer_updates`, dlpipe/training/optimizers.py) to that part of the state and writes
them back when the trainer writes the state back into the variables (each epoch's end).
"""

from __future__ import annotations

from collections.abc import Callable


def train_step(model, body: Callable, *args):
    """`model.train_step(*args)` on the backend Keras runs: (data) on TensorFlow and torch,
    (state, data) on JAX, with `body(data, step)` → logs."""
    if len(args) == 1:
        import keras

        return body(args[0], Autograd() if keras.backend.backend() == "torch" else Tape())
    state, data = args
    return _stateless_step(model, body, state, data)


class Tape:
    """TensorFlow: the body changes variables in place; gradients from a gradient tape."""

    def minimize(self, optimizer, variables: list, loss_fn: Callable):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = loss_fn()
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, aux


class Autograd:
    """torch: the body changes variables in place, as on TensorFlow; the gradients of the loss
    with respect to `variables` alone come from `torch.autograd.grad` (no `.grad` fields are
    written, so the other network's weights, which the loss also reaches, keep none), and the
    optimizer applies them outside autograd, as Keras' torch trainer does."""

    def minimize(self, optimizer, variables: list, loss_fn: Callable):
        import torch

        loss, aux = loss_fn()
        grads = torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)
        with torch.no_grad():
            optimizer.apply(list(grads), variables)  # a None (an unused variable) is left out, as on TensorFlow
        return loss, aux


class Stateless:
    """JAX: the body runs on values (see the module's docstring); `scope` is the outer
    StatelessScope that holds every variable's current value."""

    def __init__(self, variables: list, scope):
        self.variables, self.scope = variables, scope

    def minimize(self, optimizer, variables: list, loss_fn: Callable):
        import jax
        import keras

        outer = self.scope
        chosen = {id(v) for v in variables}
        others = [v for v in self.variables if id(v) not in chosen]

        def compute(values):
            mapping = [(v, outer.get_current_value(v)) for v in others] + list(zip(variables, values))
            with keras.StatelessScope(state_mapping=mapping) as inner:
                loss, aux = loss_fn()
            return loss, (aux, [inner.get_current_value(v) for v in others])

        (loss, (aux, changed)), grads = jax.value_and_grad(compute, has_aux=True)(
            [outer.get_current_value(v) for v in variables])
        for variable, value in zip(others, changed):
            outer.add_update((variable, value))
        optimizer.apply_gradients(zip(grads, variables))  # recorded in the outer scope
        return loss, aux


def _stateless_step(model, body: Callable, state, data):
    import keras

    trainable, non_trainable, optimizer_values, metrics = state
    optimizer_variables = _optimizer_variables(model)
    parts = [model.trainable_variables, model.non_trainable_variables, optimizer_variables, model.metrics_variables]
    given = [trainable, non_trainable, optimizer_values, metrics]
    for variables, values in zip(parts, given):
        if len(variables) != len(values):  # a programming error: the state does not fit the model
            raise ValueError(f"train step: {len(values)} values for {len(variables)} variables")
    everything = [v for part in parts for v in part]
    with keras.StatelessScope(state_mapping=list(zip(everything, [x for part in given for x in part]))) as scope:
        logs = body(data, Stateless(everything, scope))
    new = [[scope.get_current_value(v) for v in part] for part in parts]
    return logs, tuple(new)


def _optimizer_variables(model) -> list:
    """The optimizer variables Keras' JAX trainer carries in its state for `model`: its
    optimizer's, then (SeveralOptimizers) the others'."""
    return [*model.optimizer.variables, *(v for other in _others(model) for v in other.variables)]


def _others(model) -> list:
    return [optimizer for optimizer, _ in getattr(model, "optimizer_updates", ())
            if optimizer is not model.optimizer]


class SeveralOptimizers:
    """Mixin for a keras.Model that trains with several optimizers (`optimizer_updates`): on
    JAX, their variables travel through the jitted steps with `model.optimizer`'s."""

    def _get_jax_state(self, trainable_variables=False, non_trainable_variables=False, optimizer_variables=False,
                       metrics_variables=False, purge_model_variables=False):
        state = list(super()._get_jax_state(
            trainable_variables=trainable_variables, non_trainable_variables=non_trainable_variables,
            optimizer_variables=optimizer_variables, metrics_variables=metrics_variables,
            purge_model_variables=purge_model_variables))
        if optimizer_variables:
            at = int(bool(trainable_variables)) + int(bool(non_trainable_variables))
            state[at] = [*state[at], *(v.value for other in _others(self) for v in other.variables)]
        return tuple(state)

    def jax_state_sync(self):
        state = getattr(self, "_jax_state", None)
        if state and not self._jax_state_synced and state.get("optimizer_variables"):
            values = state["optimizer_variables"][len(self.optimizer.variables):]
            for variable, value in zip([v for other in _others(self) for v in other.variables], values, strict=True):
                variable.assign(value)
        super().jax_state_sync()
