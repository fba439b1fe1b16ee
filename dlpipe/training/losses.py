"""Loss adapters."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="dlpipe")
class OneHotLabels(keras.losses.Loss):
    """A categorical loss (cross-entropy, focal) on integer class labels: dlpipe keeps labels
    as indices (the metrics and exports use them), so they are one-hot encoded here."""

    def __init__(self, loss, classes: int, reduction="sum_over_batch_size", name=None, dtype=None):
        loss = keras.losses.deserialize(loss) if isinstance(loss, dict) else loss
        super().__init__(name=name or f"one_hot_{loss.name}", reduction=reduction, dtype=dtype)
        self.loss, self.classes = loss, int(classes)

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        return self.loss.call(keras.ops.one_hot(labels, self.classes, dtype=y_pred.dtype), y_pred)

    def get_config(self):
        return {**super().get_config(), "loss": keras.losses.serialize(self.loss), "classes": self.classes}


@keras.saving.register_keras_serializable(package="dlpipe")
def reconstruction_error(y_true, y_pred):
    """Each example's mean squared error over all its values — an image's rows, columns and
    channels, where Keras' mean_squared_error averages the last axis only and leaves a map that
    the example weights (one number an example) cannot multiply."""
    y_true = keras.ops.cast(y_true, y_pred.dtype)
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=tuple(range(1, len(y_pred.shape))))


@keras.saving.register_keras_serializable(package="dlpipe")
class ReconstructionError(keras.losses.Loss):
    """`reconstruction_error` as a loss: the batch's mean of its examples' errors (weighted)."""

    def __init__(self, reduction="sum_over_batch_size", name="reconstruction_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return reconstruction_error(y_true, y_pred)
