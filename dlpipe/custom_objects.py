"""Every Keras object dlpipe defines for its model files, registered in one place.

A `.keras` file names its custom layers by their registered name (`dlpipe>Impute`); Keras
finds the class only if the module that registers it was imported first (`keras.saving`
imports only Keras's own modules). Importing this module imports every module of dlpipe
that registers objects with `keras.saving.register_keras_serializable`, so a fresh process
that imports it can load any model dlpipe wrote. dlpipe/modelfile.py, the one loader of
`.keras` files, imports it before loading.

A module that registers a Keras object must be imported here: tests/test_custom_objects.py
finds every registration in dlpipe/ and fails otherwise, and loads every kind of model dlpipe
writes in a fresh process.
"""

from __future__ import annotations

import dlpipe.architectures.adapt  # noqa: F401  ResizeImage, ImagePreprocess, ScaleImage (a backbone's input adaptation)
import dlpipe.architectures.centernet  # noqa: F401  DecodeDetections (a detector's decoding)
import dlpipe.architectures.diffusion  # noqa: F401  TimestepEmbedding, DDIMSampler (a diffusion model's sampler)
import dlpipe.architectures.layers  # noqa: F401  PositionEmbedding, ClassToken, ReconstructionLoss, Impute, ...
import dlpipe.architectures.quantization  # noqa: F401  QuantizedDense, QuantizedConv2D (quantization-aware training)
import dlpipe.architectures.ssm  # noqa: F401  MambaBlock (a state-space model's blocks)
import dlpipe.training.distillation  # noqa: F401  Distillation, HardTargets (a distilled student's loss, metric)
import dlpipe.training.losses  # noqa: F401  OneHotLabels (a compiled classifier's loss)
import dlpipe.training.schedules  # noqa: F401  Warmup, Piecewise, PlateauRate (a compiled model's optimizer)

