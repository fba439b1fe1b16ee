"""The teacher of a `distillation` spec: opened, checked against the task and the data,
its outputs computed once per example and kept with the prepared data.

`open_teacher(spec, data, ...)` loads the teacher's model file through the one loader
(an earlier run directory's model.keras, whose labels.json names its classes, or a .keras
file) and refuses, at `distillation.teacher`'s line, a teacher whose outputs the student
cannot learn from: another kind of output (values for a classifier, class probabilities
for a regression model, a softmax for a sigmoid), another width (a different number of
classes), other class names (a run's classes are matched by name and reordered to the
student's; a file's are taken by position), or inputs the data does not give.

`Teacher.outputs(split)` is the teacher on a split's examples, in the student's class order;
`cached(...)` keeps them in the run's cache/teacher.npz keyed by the teacher file's SHA-256
and the prepared data's fingerprint, so a resumed or rerun training reads them instead of
running the teacher again. `packed(data)` gives the data whose targets carry them
(dlpipe/training/distillation.py: `pack`). With `prepare.augmentation` every batch differs
from the stored examples, so `augment(...)` runs the teacher on each augmented batch.

`validate --deep` opens the teacher too (pipelines/supervised.py: deep_build); plain
`validate` reads only the model file's configuration (spec/datacheck.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe import tasks
from dlpipe.errors import DlpipeError

WHERE = ("distillation", "teacher")
CACHE = "teacher.npz"
CACHE_RECORD = "teacher.json"


def teacher_files(teacher: str, base_dir: Path | None = None) -> tuple[Path, Path | None]:
    """(the model file, the class-names file or None) a `distillation.teacher` names."""
    path = Path(teacher).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_dir():
        return path / "model.keras", path / "labels.json"
    return path, None


def output_kind(activation: str | None) -> str:
    """What an output layer's activation gives: softmax or sigmoid probabilities, or values."""
    return activation if activation in ("softmax", "sigmoid") else "values"


def student_kind(spec, n_classes: int | None) -> str:
    """What the student's head gives (dlpipe/architectures/head.py): a sigmoid for two classes
    and per label, a softmax over more classes, values otherwise."""
    if tasks.get(spec.task).output != "classes":
        return "values"
    multi_label = spec.data.target is not None and spec.data.target.multi_label
    return "sigmoid" if n_classes == 2 or multi_label else "softmax"


def describe(kind: str, width: int) -> str:
    if kind == "values":
        return f"{width} value{'s' if width != 1 else ''} (no softmax or sigmoid)"
    if kind == "softmax":
        return f"class probabilities (a softmax over {width} classes)"
    return (f"a sigmoid over {width} unit{'s' if width != 1 else ''} "
            f"({'two classes' if width == 1 else 'one per label'})")


@dataclass
class Teacher:
    model: Any
    path: Path
    inputs: list[str]
    """The teacher's input names (each one of the student's)."""
    order: list[int] | None
    """Teacher output columns in the student's class order (None: as they are)."""
    kind: str
    width: int

    def outputs(self, x: dict[str, np.ndarray]) -> np.ndarray:
        from dlpipe.data.pipeline import predict

        out = np.asarray(predict(self.model, {name: x[name] for name in self.inputs}), np.float32)
        out = out.reshape(len(out), -1)
        return out[:, self.order] if self.order is not None else out

    def packed(self, data, outputs: dict[str, np.ndarray]):
        """`data` whose train and validation targets are the labels followed by the teacher's outputs."""
        from dlpipe.training.distillation import pack

        splits = dict(data.splits)
        for name, values in outputs.items():
            splits[name] = replace(splits[name], y=pack(splits[name].y, values))
        return replace(data, splits=splits)

    def augment(self, augment):
        """The batch function for training: `augment` (the spec's augmentation), then the
        teacher on the augmented inputs, whose outputs replace the stored ones in the targets.
        On TensorFlow a tf.data batch function; on another backend one on numpy batches
        (`numpy_augment`: training/fit.py's numpy augmentation, data/augment_numpy.py)."""
        import keras

        if keras.backend.backend() != "tensorflow":
            return self.numpy_augment(augment)
        import tensorflow as tf

        from dlpipe.data.pipeline import as_called

        order = None if self.order is None else tf.constant(self.order, tf.int32)
        width, model, inputs = self.width, self.model, self.inputs

        def apply(x, y, weight, seed):
            x, y, weight = augment(x, y, weight, seed)
            out = model(as_called(model, {name: x[name] for name in inputs}), training=False)
            soft = tf.reshape(tf.cast(out, tf.float32), [-1, width])  # a static width: the losses read it
            if order is not None:
                soft = tf.gather(soft, order, axis=1)
            return x, tf.ensure_shape(tf.concat([y[:, :-width], soft], axis=1), y.shape), weight

        return apply


    def numpy_augment(self, augment):
        """`augment` for numpy batches (x by name, y, weight, seed), then the teacher's outputs on
        the augmented inputs in place of the stored ones (mixup's doubled batch included: the
        teacher sees the blended inputs)."""

        def apply(x, y, weight, seed):
            x, y, weight = augment(x, y, weight, seed)
            soft = self.outputs(x)
            return x, np.concatenate([np.asarray(y, np.float32)[:, :-self.width], soft], axis=1), weight

        return apply


def open_teacher(spec, data, located, base_dir: Path | None = None) -> Teacher:
    """The teacher, loaded and checked against the task and `data` (a PreparedData);
    a mismatch is one line located at `distillation.teacher`."""
    from dlpipe.modelfile import load_keras_model

    named = spec.distillation.teacher
    model_file, labels_file = teacher_files(named, base_dir)

    def refuse(message: str):
        if located is not None:
            return located(WHERE, message)
        return DlpipeError(f"distillation.teacher: {message}")

    if not model_file.is_file():
        raise refuse(f"no such file: {model_file}" if labels_file is None else
                     f"{model_file.parent} holds no model.keras: name an earlier run directory or a .keras file")
    try:
        model = load_keras_model(model_file, allow_unsafe=spec.allow_unsafe_deserialization)
    except DlpipeError as err:
        raise refuse(str(err)) from None
    if len(model.outputs) != 1:
        raise refuse(f"{model_file} gives {len(model.outputs)} outputs; a teacher gives one, as the student does")

    available = list(data.splits["train"].x)
    inputs = [tensor.name for tensor in model.inputs]
    missing = [name for name in inputs if name not in available]
    if missing:
        raise refuse(f"{model_file} takes input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                     f"that the data does not give (its inputs: {', '.join(available[:12])}"
                     f"{', …' if len(available) > 12 else ''})")

    layer = model.outputs[0]._keras_history[0]
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    kind, width = output_kind(activation), int(model.outputs[0].shape[-1] or 1)
    n_classes = len(data.class_names) if data.class_names else None
    wanted_kind = student_kind(spec, n_classes)
    train_y = data.splits["train"].y
    wanted_width = ((1 if n_classes == 2 and not spec.data.target.multi_label else n_classes)
                    if wanted_kind != "values" else int(np.prod(train_y.shape[1:])) if train_y.ndim > 1 else 1)
    if (kind, width) != (wanted_kind, wanted_width):
        about = f"task {spec.task}" + (f" with {n_classes} classes" if n_classes else "")
        raise refuse(f"{model_file} gives {describe(kind, width)}; {about} needs a teacher that gives "
                     f"{describe(wanted_kind, wanted_width)}")

    order = None
    if kind != "values" and labels_file is not None and labels_file.is_file():
        names = [str(n) for n in json.loads(labels_file.read_text(encoding="utf-8"))]
        mine = [str(n) for n in data.class_names]
        if sorted(names) != sorted(mine):
            extra, absent = sorted(set(names) - set(mine)), sorted(set(mine) - set(names))
            raise refuse(f"the teacher's classes differ from the data's: "
                         + "; ".join(part for part in (
                             f"only the teacher has {', '.join(map(repr, extra[:8]))}" if extra else "",
                             f"only the data has {', '.join(map(repr, absent[:8]))}" if absent else "") if part))
        if names != mine:
            if kind == "sigmoid" and not spec.data.target.multi_label:
                raise refuse(f"the teacher's two classes are in the other order ({', '.join(names)}); "
                             f"the student's are {', '.join(mine)}")
            order = [names.index(name) for name in mine]
    return Teacher(model=model, path=model_file, inputs=inputs, order=order, kind=kind, width=width)


def cached(teacher: Teacher, data, cache_dir: Path, splits=("train", "validation")) -> dict[str, np.ndarray]:
    """The teacher's outputs on each split's examples: read from cache_dir/teacher.npz when it
    was computed from this very teacher file and prepared data, else computed and stored."""
    from dlpipe.readlog import digest
    from dlpipe.rundir import atomic_path, atomic_write_json

    record = {"teacher": str(teacher.path), "teacher_sha256": digest(teacher.path),
              "data_fingerprint": data.fingerprint, "order": teacher.order}
    stored, archive = Path(cache_dir) / CACHE_RECORD, Path(cache_dir) / CACHE
    try:
        if json.loads(stored.read_text(encoding="utf-8")) == record:
            with np.load(archive, allow_pickle=False) as found:
                outputs = {name: found[name] for name in splits if name in found}
            if set(outputs) == {name for name in splits if len(data.splits[name])}:
                return outputs
    except (OSError, ValueError, KeyError):
        pass
    outputs = {name: teacher.outputs(data.splits[name].x) for name in splits if len(data.splits[name])}
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(archive) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **outputs)
    atomic_write_json(stored, record)
    return outputs
