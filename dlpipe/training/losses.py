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
