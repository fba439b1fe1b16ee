"""Quantization-aware training (`compression.quantization_aware`): int8 simulated in training.

Keras 3.15 has int8 layers (`model.quantize("int8")`, int8 dtype policies), but they quantize
a trained model: their int8 kernels are not trainable, so they cannot learn around their own
rounding. It does have the fake-quantization op TFLite's converter knows
(`keras.quantizers.fake_quant_with_min_max_vars`, which on TensorFlow is
`tf.quantization.fake_quant_with_min_max_vars`: rounding in the forward pass, a
straight-through gradient). So the model is rebuilt with layers of our own, `QuantizedDense`
and `QuantizedConv2D`, which are Keras's Dense and Conv2D plus, in every call:

- the kernel rounded to the int8 grid TFLite will use: symmetric, 127 steps either side of
  zero, one scale per output channel for a convolution, one per tensor for a dense kernel;
- the input rounded to an 8-bit grid between its running minimum and maximum (exponential
  moving averages, widened in training to hold the batch; fixed at inference), as TFLite
  quantizes activations, with zero exactly representable.

Training therefore sees the int8 model's errors and learns weights robust to them. After
training (`calibrate`), each input range is set to the one TFLite's int8 calibration will
give it, so the metrics of the trained Keras model are those of the int8 file. Before export
(`strip`), the model is rebuilt with plain Dense and Conv2D layers holding the kernels as
rounded to that grid, so that TFLite's full-integer quantization (calibrated on training
examples, dlpipe/exporters/tflite.py) lands on the very weights training saw, and the other
formats are float models with the same weights. Only top-level Dense and Conv2D layers are
quantized in training; layers inside other layers (attention, graph layers from user code)
keep float training and are quantized by TFLite's calibration alone.
"""

from __future__ import annotations

import keras
from keras import ops

EMA_DECAY = 0.99


def _kernel_range(kernel, per_channel: bool):
    reduce = tuple(range(len(kernel.shape) - 1)) if per_channel else None
    bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel), axis=reduce), 1e-8))
    return -bound, bound


def quantize_kernel(kernel, per_channel: bool):
    """The kernel rounded to TFLite's symmetric int8 grid (narrow range: −127..127)."""
    low, high = _kernel_range(kernel, per_channel)
    return keras.quantizers.fake_quant_with_min_max_vars(kernel, low, high, num_bits=8, narrow_range=True,
                                                        axis=-1 if per_channel else None)


class _InputQuantizer:
    """The running range of a layer's input and its 8-bit fake quantization; mixed in before
    the Keras layer it quantizes (Dense, Conv2D), whose own build and config it extends."""

    def __init__(self, *args, ema_decay: float = EMA_DECAY, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_decay = ema_decay

    def build(self, input_shape):
        super().build(input_shape)
        self._build_quantizer()

    def get_config(self):
        return {**super().get_config(), "ema_decay": self.ema_decay}

    def _build_quantizer(self):
        self.input_min = self.add_weight(name="input_min", shape=(), initializer="zeros", trainable=False)
        self.input_max = self.add_weight(name="input_max", shape=(), initializer="zeros", trainable=False)
        self.input_seen = self.add_weight(name="input_seen", shape=(), initializer="zeros", trainable=False)
        # 1: int8 simulated; 0 (the epochs before compression.quantization_aware.start_epoch):
        # float, while the input ranges are tracked already. Set by `QuantizeFrom`.
        self.quantizing = self.add_weight(name="quantizing", shape=(), initializer="ones", trainable=False)

    def _switch(self, quantized, plain):
        # Tensors, not variables: JAX's where takes no Keras variable.
        return ops.where(ops.greater(self.quantizing, 0.0), quantized, ops.convert_to_tensor(plain))

    # Dense and Conv2D save only their kernel and bias (by their quantization modes' lists);
    # Keras's base Layer saves and loads every variable the layer owns, the ranges included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _quantize_input(self, inputs, training):
        if training:
            # The range always holds 0 (exact zero padding and ReLU zeros).
            low = ops.minimum(ops.min(ops.stop_gradient(inputs)), 0.0)
            high = ops.maximum(ops.max(ops.stop_gradient(inputs)), 0.0)
            first = ops.equal(self.input_seen, 0.0)
            self.input_min.assign(ops.where(first, low, self.ema_decay * self.input_min + (1 - self.ema_decay) * low))
            self.input_max.assign(ops.where(first, high, self.ema_decay * self.input_max + (1 - self.ema_decay) * high))
            self.input_seen.assign(1.0)
            # In training the grid spans the batch too: a range that lags behind growing
            # activations would clip them, and the clipped ones get no gradient, so the
            # network could not grow past its initial ranges.
            low, high = ops.minimum(self.input_min, low), ops.maximum(self.input_max, high)
        else:
            low, high = ops.convert_to_tensor(self.input_min), ops.convert_to_tensor(self.input_max)
        high = ops.maximum(high, low + 1e-6)
        return self._switch(keras.quantizers.fake_quant_with_min_max_vars(inputs, low, high, num_bits=8), inputs)


@keras.saving.register_keras_serializable(package="dlpipe")
class QuantizedDense(_InputQuantizer, keras.layers.Dense):
    """Dense with int8-simulated input and kernel (see the module docstring)."""

    def call(self, inputs, training=None):
        kernel = self._switch(quantize_kernel(self.kernel, per_channel=False), self.kernel)
        x = ops.matmul(self._quantize_input(inputs, training), kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x


@keras.saving.register_keras_serializable(package="dlpipe")
class QuantizedConv2D(_InputQuantizer, keras.layers.Conv2D):
    """Conv2D with int8-simulated input and kernel (one scale per output channel)."""

    def call(self, inputs, training=None):
        kernel = self._switch(quantize_kernel(self.kernel, per_channel=True), self.kernel)
        x = self.convolution_op(self._quantize_input(inputs, training), kernel)
        if self.use_bias:
            shape = (1,) * 3 + (self.filters,) if self.data_format == "channels_last" else (1, self.filters, 1, 1)
            x = ops.add(x, ops.reshape(self.bias, shape))
        return self.activation(x) if self.activation is not None else x


class QuantizeFrom(keras.callbacks.Callback):
    """Turns int8 simulation on at the start of epoch `start_epoch` (counting from 1) and off
    before it: the model trains in float first, then learns around int8 rounding. A state of
    the model's own variables, so checkpoints carry it; set again at every epoch's start."""

    def __init__(self, start_epoch: int):
        super().__init__()
        self.start_epoch = start_epoch

    def on_epoch_begin(self, epoch, logs=None):
        value = 1.0 if epoch + 1 >= self.start_epoch else 0.0
        for layer in self.model.layers:
            if isinstance(layer, _InputQuantizer):
                layer.quantizing.assign(value)

    def on_train_end(self, logs=None):
        self.on_epoch_begin(self.start_epoch - 1)  # the trained model simulates int8


_QUANTIZED = {keras.layers.Dense: QuantizedDense, keras.layers.Conv2D: QuantizedConv2D}
_PLAIN = {QuantizedDense: keras.layers.Dense, QuantizedConv2D: keras.layers.Conv2D}


def _rebuild(model, swap, ema_decay: float = EMA_DECAY):
    """`model` with each top-level layer whose exact type is a key of `swap` rebuilt as the
    value's class (same config), the others cloned, and every weight the two share copied."""

    def clone(layer):
        config = layer.get_config()
        target = swap.get(type(layer))
        if target is None:
            return type(layer).from_config(config)
        config.pop("ema_decay", None)
        return target.from_config({**config, "ema_decay": ema_decay} if target in _PLAIN else config)

    rebuilt = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, rebuilt.layers, strict=True):
        values = old.get_weights()
        if type(old) in _PLAIN:  # to plain: the kernel as training rounded it
            values[0] = ops.convert_to_numpy(quantize_kernel(old.kernel, per_channel=type(old) is QuantizedConv2D))
        shared = min(len(values), len(new.weights))  # the quantizers' own variables come last
        for variable, value in zip(new.weights[:shared], values[:shared]):
            variable.assign(value)
    return rebuilt


def quantization_aware(model, ema_decay: float = EMA_DECAY):
    """`model` rebuilt for quantization-aware training (its weights kept)."""
    return _rebuild(model, _QUANTIZED, ema_decay)


def calibrate(model, examples: dict) -> dict[str, list[float]]:
    """Set the input range of each int8-simulating layer of a trained `model` to the one
    TFLite's converter will give that tensor: the minimum (at most 0) and maximum of the layer's
    input over `examples` (the representative training draw of the int8 export), run through
    the float model TFLite calibrates (`strip`: int8-grid kernels, float activations).
    Training's running ranges average each batch's extremes, so they are narrower, and a
    simulation that clipped at them scored the test split up to 2 points apart from the int8
    file; with these ranges the trained model's metrics are those of the file it exports.
    Returns {layer name: [min, max]}."""
    from dlpipe.data.pipeline import predict

    quantizers = [layer for layer in model.layers if type(layer) in _PLAIN]
    if not quantizers:
        return {}
    plain = strip(model)
    probe = keras.Model(plain.inputs, {layer.name: plain.get_layer(layer.name).input for layer in quantizers})
    seen = predict(probe, examples)
    ranges = {}
    for layer in quantizers:
        values = seen[layer.name]
        low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        layer.input_min.assign(low)
        layer.input_max.assign(high)
        layer.input_seen.assign(1.0)
        ranges[layer.name] = [low, high]
    return ranges


def strip(model):
    """A model trained quantization-aware, as plain Keras layers holding int8-grid kernels; any
    other model as it is."""
    if not any(type(layer) in _PLAIN for layer in model.layers):
        return model
    return _rebuild(model, _PLAIN)
