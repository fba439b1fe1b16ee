"""The hand-written Keras script that dlpipe's breast_cancer run is measured against.

The same work as `dlpipe run benchmarks/specs/breast-cancer-e2e.yaml`: load, 70/10/20
stratified split, z-score fitted on train (inside the model), MLP 2×64 ReLU with dropout
0.1, Adam 1e-3, batch 32, 50 epochs, test accuracy, save model.keras, export a SavedModel
(not with --keras-only, the comparison with `backend: jax` in benchmarks/e2e.py).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

args = [a for a in sys.argv[1:] if a != "--keras-only"]
keras_only = "--keras-only" in sys.argv  # write model.keras alone (no SavedModel)
out = args[0] if args else "/tmp/handwritten-bc"
os.makedirs(out, exist_ok=True)
keras.utils.set_random_seed(42)
x, y = load_breast_cancer(return_X_y=True)
x = x.astype("float32")
x_train, x_rest, y_train, y_rest = train_test_split(x, y, train_size=0.7, stratify=y, random_state=42)
x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=2 / 3, stratify=y_rest, random_state=42)

inputs = keras.Input(shape=(30,))
h = keras.layers.Normalization(mean=x_train.mean(0), variance=x_train.var(0))(inputs)
for _ in range(2):
    h = keras.layers.Dense(64, activation="relu")(h)
    h = keras.layers.Dropout(0.1)(h)
model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=50, batch_size=32, verbose=2)
accuracy = float(((model.predict(x_test, verbose=0)[:, 0] >= 0.5) == y_test).mean())
model.save(os.path.join(out, "model.keras"))
if not keras_only:
    model.export(os.path.join(out, "saved_model"), verbose=False)
with open(os.path.join(out, "accuracy.txt"), "w") as handle:
    handle.write(repr(accuracy))
print(f"test accuracy {accuracy:.4f}")
