"""`dlpipe predict --explain`: the features that moved each prediction most.

Integrated gradients of the predicted class's probability (or the predicted value), from the
same baselines as `dlpipe explain`, summed per feature; a text feature is named with its
token (`review: great`). Images have no features to name: their maps are `dlpipe explain`'s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlpipe.errors import DlpipeError

TOP = 3
"""Features named per prediction."""
STEPS = 64


def keras_file(path: Path, kind: str) -> Path:
    """The .keras file beside MODEL (gradients need the Keras model, not a SavedModel)."""
    path = Path(path)
    if kind == "keras":
        return path
    for candidate in (path.parent / "keras" / "model.keras", path.parent.parent / "model.keras",
                      path / "keras" / "model.keras"):
        if candidate.is_file():
            return candidate
    raise DlpipeError(f"{path}: --explain needs the Keras model (model.keras or export/keras/); this is a "
                      "SavedModel without one")


class TopFeatures:
    """Callable: (model inputs, model output) → for each example, its TOP features."""

    def __init__(self, model, interface: dict, output: str):
        from dlpipe.explain.attribution import Attributor

        # A multi-label classifier or a forecaster is refused by the caller
        # (dlpipe/prediction.py, which reads those from the interface).
        if output not in ("classes", "values"):
            raise DlpipeError(f"--explain explains classes or values; this model gives {output}")
        features = interface["inputs"]
        images = [f["name"] for f in features if f["type"] == "image"]
        if images:
            raise DlpipeError(f"--explain names features; {images[0]!r} is an image: draw its maps with "
                              "`dlpipe explain RUN --data IMAGES`")
        self.classes = output == "classes"
        binary = self.classes and int(np.prod(model.output.shape[1:])) == 1
        self.attributor = Attributor(model, features, expand_binary=binary)

    def __call__(self, inputs: dict[str, np.ndarray], output: np.ndarray) -> list[list[dict]]:
        from dlpipe.explain.attribution import per_feature, per_position
        from dlpipe.explain.methods import integrated_gradients
        from dlpipe.explain.stage import SEQUENCE_TYPES, _tokens

        output = np.asarray(output).reshape(len(output), -1)
        if self.classes:
            columns = output.argmax(axis=1) if output.shape[1] > 1 else (output[:, 0] >= 0.5).astype(int)
        else:
            columns = np.zeros(len(output), dtype=int)
        result = integrated_gradients(self.attributor, inputs, columns, steps=STEPS)
        points = self.attributor.points
        per = per_feature(result.attributions, points)
        candidates = [[(p.feature, None, float(per[i, j])) for j, p in enumerate(points) if p.type not in SEQUENCE_TYPES]
                      for i in range(len(columns))]
        for point in points:
            if point.type in SEQUENCE_TYPES:
                positions = per_position(result.attributions[point.feature])
                tokens = _tokens(point, inputs[point.input])
                for i in range(len(columns)):
                    candidates[i] += [(point.feature, token, float(v)) for token, v in zip(tokens[i], positions[i])]
        out = []
        for found in candidates:
            found.sort(key=lambda c: -abs(c[2]))
            out.append([{"feature": name, **({"token": token} if token is not None else {}), "attribution": value}
                        for name, token, value in found[:TOP]])
        return out


def describe(explanation: list[dict]) -> str:
    """One CSV cell: `x3 +0.644; review: great +0.21`."""
    return "; ".join(f"{e['feature']}{': ' + e['token'] if 'token' in e else ''} {e['attribution']:+.4g}"
                     for e in explanation)
