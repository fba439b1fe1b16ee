"""Checks that span several fields (task ↔ loss ↔ metrics ↔ monitor ↔ split).

Each check returns (path, message) pairs; all of them are collected, none stops the others.
"""

from __future__ import annotations

from collections.abc import Iterator

from dlpipe import registry, tasks
from dlpipe.spec.backends import check_backend
from dlpipe.spec.spec import Spec

Found = Iterator[tuple[tuple, str]]

FEATURE_TYPES = ("numerical", "image", "sequence", "tokens")


def check_split(spec: Spec) -> Found:
    split = spec.data.split
    total = split.train + split.validation + split.test
    if abs(total - 1.0) > 1e-9:
        yield (("data", "split"),
               f"train + validation + test must be 1, got {split.train:g} + "
               f"{split.validation:g} + {split.test:g} = {total:g}")
    target = tasks.get(spec.task).target
    if split.stratify and target not in ("classes", "optional_classes"):
        yield (("data", "split", "stratify"), f"stratify needs classes to stratify by; the {spec.task} task has none")
    elif split.stratify and target == "optional_classes" and spec.data.target is None:
        yield (("data", "split", "stratify"), "stratify needs data.target: the classes to keep in proportion")


def check_target(spec: Spec) -> Found:
    task = tasks.get(spec.task)
    if spec.data.target is None and task.target in ("classes", "values"):
        yield (("data",), f"missing required key 'target' (task {spec.task} learns from labels)")
    names = [f.name for f in spec.data.features]
    for i, name in enumerate(names):
        if name in names[:i]:
            yield (("data", "features", i, "name"), f"feature {name!r} is listed twice")
        if spec.data.target is not None and name == spec.data.target.name:
            yield (("data", "features", i, "name"), f"{name!r} is the target; it cannot also be a feature")


def check_labeling(spec: Spec) -> Found:
    target = spec.data.target
    if target is None:
        return
    path = ("data", "target")
    modes = [key for key in ("label_map", "order", "threshold") if getattr(target, key) is not None]
    for key in modes[1:]:
        yield ((*path, key), f"{key} and {modes[0]} cannot be combined; give one way of reading labels")
    if target.order is not None and target.class_names is not None:
        yield ((*path, "order"), "order names the classes itself; drop class_names")
    if target.threshold is not None and target.class_names is not None and len(target.class_names) != 2:
        yield ((*path, "class_names"), f"a threshold makes two classes; class_names lists {len(target.class_names)}")
    if target.multi_label and (target.threshold is not None or target.order is not None):
        key = "threshold" if target.threshold is not None else "order"
        yield ((*path, key), f"{key} makes one class per example; it cannot be combined with multi_label")
    if target.delimiter is not None and not target.multi_label:
        yield ((*path, "delimiter"), "delimiter splits a multi-label value; set multi_label: true")
    if target.delimiter == "":
        yield ((*path, "delimiter"), "the delimiter cannot be empty")
    for i, name in enumerate(target.order or []):
        if name in target.order[:i]:
            yield ((*path, "order", i), f"{name!r} is listed twice")
    for i, name in enumerate(target.class_names or []):
        if name in target.class_names[:i]:
            yield ((*path, "class_names", i), f"{name!r} is listed twice")
    if isinstance(target.label_map, dict) and target.class_names is not None:
        for raw, name in target.label_map.items():
            if name not in target.class_names:
                yield ((*path, "label_map", raw), f"{name!r} is not one of class_names")


def _sources(fact: str) -> tuple[str, ...]:
    return tuple(name for name in registry.names("source") if getattr(registry.entry("source", name), fact))


def check_split_modes(spec: Spec) -> Found:
    split, path = spec.data.split, ("data", "split")
    modes = [key for key in ("files", "time_column", "folds") if getattr(split, key) is not None]
    for key in modes[1:]:
        yield ((*path, key), f"{key} and {modes[0]} are two ways of splitting; choose one")
    if split.files is not None and spec.data.source.type not in _sources("split_files"):
        yield ((*path, "files"), f"split files need a file source ({', '.join(_sources('split_files'))}), "
               f"not {spec.data.source.type}")
    if split.folds is not None and split.fold >= split.folds:
        yield ((*path, "fold"), f"fold {split.fold} does not exist: folds are 0..{split.folds - 1}")
    if split.time_column is not None:
        target = spec.data.target
        if target is not None and split.time_column == target.name:
            yield ((*path, "time_column"), f"{split.time_column!r} is the target; it cannot order the rows")


def check_streaming(spec: Spec) -> Found:
    data = spec.data
    if data.streaming is None:
        return
    path = ("data", "streaming")
    if data.source.type not in _sources("streams"):
        yield (path, f"streaming reads {', '.join(_sources('streams'))} files, not a {data.source.type} source")
    modes = [key for key in ("files", "time_column", "folds") if getattr(data.split, key) is not None]
    if modes:
        yield (path, f"streaming splits by seeded fractions (a hash of the row; for images, of the "
               f"file list); it cannot be combined with data.split.{modes[0]}")
    images = data.source.type in ("image_folder", "image_csv")  # streamed by file: data/image_streaming.py
    texts = data.source.type == "text_folder"  # streamed by file: data/text_streaming.py
    for i, feature in enumerate(data.features):
        if images and (i > 0 or feature.type != "image"):
            yield (("data", "features", i, "type"), f"streaming an {data.source.type} source reads one image "
                   f"feature (the images) and the label, not {'a second feature' if i else feature.type}")
        elif texts and (i > 0 or feature.type != "text"):
            yield (("data", "features", i, "type"), "streaming a text_folder source reads one text feature "
                   f"(the texts) and the label, not {'a second feature' if i else feature.type}")
        elif not images and not texts and feature.type not in ("numerical", "categorical", "text"):
            yield (("data", "features", i, "type"), f"streaming reads numerical, categorical and text features, "
                   f"not {feature.type}")
    if spec.prepare.imputation:
        yield (("prepare", "imputation"), "imputation is not available with data.streaming")
    if spec.training.sample_weight is not None:
        yield (("training", "sample_weight"), "sample weights are not available with data.streaming")
    if spec.prepare.augmentation and not images:
        yield (("prepare", "augmentation"), "augmentation is not available with data.streaming of a table "
               "(it is of images: image_folder, image_csv)")
    if spec.training.strategy == "multi_worker":
        yield (("training", "strategy"), "multi_worker training does not read streamed data")
    target = data.target
    if target is not None and (target.multi_label or any(getattr(target, k) is not None
                                                         for k in ("label_map", "order", "threshold"))):
        yield (("data", "target"), "streaming reads one label per row, as is or by class_names")
    if getattr(spec.model, "return_sequences", False):
        yield (path, "streaming serves one label per row, not one per step")


IMPUTED_TYPES = ("numerical", "categorical", "ordinal", "text")
"""Feature types prepare.imputation fills (by a feature's name, or by its type for all of them)."""


def check_imputation(spec: Spec) -> Found:
    features = {f.name: f for f in spec.data.features}
    for key, imputer in spec.prepare.imputation.items():
        path = ("prepare", "imputation", key)
        if imputer.type == "constant" and imputer.value is None:
            yield ((*path, "type"), "a constant imputation needs value")
        if imputer.type != "constant" and imputer.value is not None:
            yield ((*path, "value"), f"value is the constant of type constant; {imputer.type} computes its own")
        if key in features:
            kinds, covered = {features[key].type}, [features[key]]
        elif key in IMPUTED_TYPES:
            kinds, covered = {key}, [f for f in features.values() if f.type == key]
        elif spec.data.features:
            from dlpipe.errors import did_you_mean

            hint = did_you_mean(key, [*features, *IMPUTED_TYPES])
            yield (path, f"{key!r} is neither a feature nor a feature type ({', '.join(IMPUTED_TYPES)}){hint}")
            continue
        else:  # features inferred from the data: the key is checked against its columns
            continue
        if not kinds <= set(IMPUTED_TYPES):
            yield (path, f"{key!r} is {features[key].type}; only {_either(list(IMPUTED_TYPES))} features are imputed")
            continue
        numerical = kinds == {"numerical"}
        if not numerical and imputer.type in ("mean", "median"):
            yield ((*path, "type"), f"{key!r} holds {next(iter(kinds))} values: a {imputer.type} needs numbers; "
                   "use most_frequent or constant")
        if imputer.type == "constant" and imputer.value is not None:
            if numerical and isinstance(imputer.value, str):
                yield ((*path, "value"), f"{key!r} is numerical: the constant must be a number, got {imputer.value!r}")
            elif not numerical and not isinstance(imputer.value, str):
                yield ((*path, "value"), f"{key!r} holds {next(iter(kinds))} values: the constant must be text, "
                       f"got {imputer.value!r} (quote it)")
            else:
                for feature in covered:
                    if feature.type == "ordinal" and imputer.value not in feature.order:
                        hint = did_you_mean_text(imputer.value, feature.order)
                        yield ((*path, "value"), f"{imputer.value!r} is not in the order of ordinal feature "
                               f"{feature.name!r}{hint}")


def did_you_mean_text(value: str, known) -> str:
    from dlpipe.errors import did_you_mean

    return did_you_mean(value, list(known)) or f"; it lists {', '.join(known)}"


def check_loss(spec: Spec) -> Found:
    loss, task = spec.training.loss, tasks.get(spec.task)
    if loss == "auto" or loss in task.losses:
        return
    if not task.losses:
        yield (("training", "loss"), f"loss {loss!r} does not fit task {spec.task}; use auto ({task.own_loss})")
    else:
        yield (("training", "loss"), f"loss {loss!r} does not fit task {spec.task}; use auto or one of "
               f"{', '.join(sorted(task.losses))}")


_TARGET_KINDS = {"label": "one target per example", "per_step": "per-step targets (model.return_sequences)",
                 "multi_label": "multi-label targets (data.target.multi_label)"}


def target_kind(spec: Spec) -> str:
    """Which of registry.TARGETS the spec's target is (multi-label: classification only,
    check_architecture refuses it for other tasks)."""
    if tasks.get(spec.task).target == "classes" and spec.data.target is not None and spec.data.target.multi_label:
        return "multi_label"
    return "per_step" if getattr(spec.model, "return_sequences", False) else "label"


def known_classes(spec: Spec) -> tuple[int, str] | None:
    """(number of classes, where the spec says so), when the spec alone tells."""
    target = spec.data.target
    if target is None or tasks.get(spec.task).target != "classes":
        return None
    if target.threshold is not None:
        return 2, "data.target.threshold makes"
    if target.order is not None:
        return len(target.order), "data.target.order lists"
    if target.class_names is not None:
        return len(target.class_names), "data.target.class_names lists"
    return None


def check_metrics(spec: Spec) -> Found:
    kind = f"metric:{spec.task}"
    fitting = registry.names(kind)
    shape = target_kind(spec)
    for i, name in enumerate(spec.evaluation.metrics or []):
        if name not in fitting:
            yield (("evaluation", "metrics", i),
                   f"metric {name!r} does not fit task {spec.task}; choose from {', '.join(fitting)}")
        elif shape not in registry.entry(kind, name).targets:
            scoring = [other for other in fitting if shape in registry.entry(kind, other).targets]
            yield (("evaluation", "metrics", i),
                   f"metric {name!r} does not score {_TARGET_KINDS[shape]}; choose from {', '.join(scoring)}")
    known = known_classes(spec)
    if known is not None:
        yield from check_metric_classes(spec, *known)


def check_metric_classes(spec: Spec, n_classes: int | None, where: str = "the data has") -> Found:
    """Metrics of one class of two (precision, recall, f1) against the number of classes.
    `dlpipe validate` runs it when the spec names the classes; the data stage, before
    TensorFlow is imported, when only the data does."""
    if tasks.get(spec.task).target != "classes" or n_classes is None or n_classes == 2 or target_kind(spec) == "multi_label":
        return
    kind = "metric:classification"
    for i, name in enumerate(spec.evaluation.metrics or []):
        if name in registry.names(kind) and registry.entry(kind, name).binary:
            averaged = [other for other in registry.names(kind) if other.startswith(f"{name}_")]
            instead = f"; use {_either(averaged)} instead" if averaged else ""
            yield (("evaluation", "metrics", i), f"metric {name!r} scores the positive class of a two-class "
                   f"target; {where} {n_classes} classes{instead}")


def check_early_stopping(spec: Spec) -> Found:
    stopping = spec.training.early_stopping
    if stopping is not None and tasks.get(spec.task).honoured("training.early_stopping"):
        yield from _check_monitor(spec, stopping.monitor, ("training", "early_stopping", "monitor"))


def _check_monitor(spec: Spec, monitor: str, path: tuple) -> Found:
    metric = tasks.get(spec.task).training_metric
    known = ["loss", *([metric] if metric else [])]
    known += [f"val_{name}" for name in known]
    if monitor not in known:
        from dlpipe.errors import did_you_mean

        hint = did_you_mean(monitor, known) or f"; choose from {', '.join(known)}"
        yield (path, f"cannot monitor {monitor!r}{hint}")
    elif monitor.startswith("val_") and spec.data.split.validation == 0:
        yield (path, f"monitoring {monitor!r} needs a validation split; data.split.validation is 0")


def check_optimizer(spec: Spec) -> Found:
    optimizer = spec.training.optimizer
    clipping = [key for key in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(optimizer, key) is not None]
    if len(clipping) > 1:
        yield (("training", "optimizer", clipping[1]),
               f"set one of clipnorm, clipvalue, global_clipnorm; {clipping[0]} is set too")


def check_schedule(spec: Spec) -> Found:
    schedule = spec.training.schedule
    path = ("training", "schedule")
    if schedule is None:
        return
    if schedule.type == "piecewise" and len(schedule.factors) != len(schedule.boundaries):
        yield (path + ("factors",), f"expected one factor per boundary ({len(schedule.boundaries)}), "
               f"got {len(schedule.factors)}")
    if schedule.type == "cosine" and schedule.restarts is not None and schedule.decay_epochs is None:
        yield (path + ("restarts",), "restarts need decay_epochs (the length of the first cycle)")
    if schedule.type == "reduce_on_plateau" and tasks.get(spec.task).honoured("training.schedule"):
        yield from _check_monitor(spec, schedule.monitor, path + ("monitor",))


def check_checkpoints(spec: Spec) -> Found:
    monitor = spec.training.checkpoints.monitor
    if monitor != "auto" and tasks.get(spec.task).honoured("training.checkpoints.monitor"):
        yield from _check_monitor(spec, monitor, ("training", "checkpoints", "monitor"))


def check_jit_compile(spec: Spec) -> Found:
    # On JAX every op is XLA's, and determinism is XLA's own flag (dlpipe/backend.py).
    if spec.training.jit_compile is True and spec.training.deterministic is True and spec.backend == "tensorflow":
        yield (("training", "jit_compile"), "XLA cannot compile under op determinism (Keras turns it off): "
               "set training.deterministic to false or auto, or jit_compile to false or auto")


def check_sample_weight(spec: Spec) -> Found:
    column = spec.training.sample_weight
    if column is None:
        return
    if spec.data.target is not None and column == spec.data.target.name:
        yield (("training", "sample_weight"), f"{column!r} is the target; it cannot also be the sample weight")
    if column in [f.name for f in spec.data.features]:
        yield (("training", "sample_weight"), f"{column!r} is listed in data.features; a weight column "
               "cannot also be a feature")


def check_normalization(spec: Spec) -> Found:
    if not spec.data.features:
        return  # features are inferred from the data; names are checked when it is read
    names = {f.name for f in spec.data.features}
    for key in spec.prepare.normalization:
        if key not in names and key not in FEATURE_TYPES:
            from dlpipe.errors import did_you_mean

            hint = did_you_mean(key, [*names, *FEATURE_TYPES])
            yield (("prepare", "normalization", key),
                   f"{key!r} is neither a feature nor a feature type{hint}")


def _either(names) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_architecture(spec: Spec) -> Found:
    model, features = spec.model, spec.data.features
    architecture = registry.entry("architecture", model.type)
    kinds = architecture.reads  # the feature types it reads itself; the rest join in the head
    # A forecasting window is one sequence, built from the numerical features.
    if features and kinds and not (spec.data.windows and "sequence" in kinds):
        read = [f for f in features if f.type in kinds]
        if (len(read) != 1) if architecture.single else not read:
            wanted = "exactly one feature" if architecture.single else "at least one feature"
            yield (("model", "type"), f"a {model.type} reads {wanted} of type {_either(kinds)}; "
                   f"data.features has {len(read)} of that type")
    if "text" in kinds:  # it reads text as a sequence of tokens: a bag of n-grams has no order
        for i, feature in enumerate(features or []):
            if feature.type == "text" and feature.encoding != "sequence":
                yield (("data", "features", i, "encoding"), f"{feature.encoding} makes {feature.name!r} a bag of "
                       f"n-grams (one vector per example); model type {model.type} reads sequences: use encoding: "
                       "sequence, or model type mlp")
    if model.type == "autoencoder" and model.encoder == "conv" and features:
        images = [f for f in features if f.type == "image"]
        if len(images) != 1:
            yield (("model", "encoder"), "a conv autoencoder reads exactly one feature of type image; "
                   f"data.features has {len(images)} of that type")
    if spec.data.target is not None and spec.data.target.multi_label and spec.training.loss not in (
            "auto", "binary_crossentropy", "binary_focal_crossentropy"):
        yield (("training", "loss"), f"multi-label targets need a binary loss (one sigmoid per class), "
               f"not {spec.training.loss!r}; use auto, binary_crossentropy or binary_focal_crossentropy")
    per_step = getattr(model, "return_sequences", False)
    if per_step and spec.data.target is not None and spec.data.target.multi_label:
        yield (("data", "target", "multi_label"), "multi_label and model.return_sequences cannot be combined")
    if spec.data.split.stratify and (per_step or (spec.data.target and spec.data.target.multi_label)):
        yield (("data", "split", "stratify"), "stratify needs one class per example; "
               "the target holds several (per step or multi-label)")
    if model.type == "graph":
        from dlpipe.spec.model import graph_problems

        names = [f.name for f in features] if features else None
        for path, message in graph_problems(model, names):
            yield ("model", *path), message


def check_backbone(spec: Spec) -> Found:
    """A backbone starts from one network (an application, a KerasHub preset or an earlier
    run), reads the image as stored, and trains the way its fine-tune schedule says. A
    preset is looked up in spec/datacheck.py, which sees the installed packages."""
    model = spec.model
    if model.type != "backbone":
        return
    given = [key for key in ("application", "preset", "from_run") if getattr(model, key) is not None]
    if not given:
        yield ("model",), ("a backbone starts from a network: give application (a Keras application), preset (a "
                           "KerasHub preset) or from_run")
    elif len(given) > 1:
        yield ("model", given[-1]), (f"{' and '.join(given)} cannot be combined; give one network to start from")
    elif model.from_run is not None:
        for key, default in (("weights", "imagenet"), ("pooling", "avg")):
            if getattr(model, key) != default:
                yield ("model", key), f"{key} belongs to an application; a run's body keeps its own weights and pooling"
    elif model.application is not None and model.input_size is not None:
        smallest = registry.entry("application", model.application).min_size
        if min(model.input_size) < smallest:
            yield (("model", "input_size"), f"{model.application} needs images of at least {smallest}×{smallest}, "
                   f"got {model.input_size[0]}×{model.input_size[1]}")
    for i, feature in enumerate(spec.data.features):
        for key in ("size", "channels"):
            if feature.type == "image" and getattr(feature, key) is not None:
                yield (("data", "features", i, key), f"a backbone adapts the image to its network itself "
                       f"(model.input_size, 1 ↔ 3 channels); remove {key}")
    images = [f.name for f in spec.data.features if f.type == "image"]
    for key in spec.prepare.normalization:
        if key == "image" or key in images:
            yield (("prepare", "normalization", key), "a backbone reads raw pixels and normalizes them as its "
                   "network expects (the application's preprocessing, or the earlier run's own layers); remove it")
    tune = model.fine_tune
    if spec.training.strategy == "multi_worker" and (tune.freeze_epochs or tune.learning_rate_factor != 1.0):
        yield ("model", "fine_tune"), "a fine-tune schedule is not supported under the multi_worker strategy yet"


def check_categorical(spec: Spec) -> Found:
    for i, feature in enumerate(spec.data.features):
        if feature.type in ("text", "ordinal") and feature.name in spec.prepare.normalization:
            what = "tokenized" if feature.type == "text" else "placed by its order"
            yield (("prepare", "normalization", feature.name), f"{feature.name!r} is {feature.type}: it is {what}, "
                   "not normalized")
        if feature.type == "ordinal":
            for j, value in enumerate(feature.order):
                if value in feature.order[:j]:
                    yield (("data", "features", i, "order", j), f"{value!r} is listed twice")
        if feature.type != "categorical":
            continue
        if feature.pretrained is not None and feature.encoding != "embedding":
            yield (("data", "features", i, "pretrained"), f"pretrained vectors need encoding embedding, "
                   f"not {feature.encoding}")
        if feature.embedding_dim is not None and feature.encoding != "embedding":
            yield (("data", "features", i, "embedding_dim"),
                   f"embedding_dim needs encoding embedding, not {feature.encoding}")
        for j, value in enumerate(feature.vocabulary or []):
            if value in feature.vocabulary[:j]:
                yield (("data", "features", i, "vocabulary", j), f"{value!r} is listed twice")
        if feature.name in spec.prepare.normalization:
            yield (("prepare", "normalization", feature.name),
                   f"{feature.name!r} is categorical: it is encoded ({feature.encoding}), not normalized")


# Graph layers that are one of the model kinds an exporter may not convert (registry
# Exporter.cannot_convert): Keras's recurrent layers are the `rnn` architecture's loop.
_RECURRENT_LAYERS = frozenset({"SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D"})


def _model_kinds(model, cannot_convert) -> list[tuple[str, str]]:
    """(kind, how to name it) for what the model is built of, in the terms of an exporter's
    `cannot_convert`: the model type (or `type/scan` where only one scan converts), and for a
    graph each node that is a recurrent layer or a MambaBlock."""
    kind = getattr(model, "type", None)
    if getattr(model, "scan", None):  # one choice of a type converts, the other not
        kind = kind if kind in cannot_convert else f"{kind}/{model.scan}"
    what = model.type if kind == model.type else f"{model.type} with scan {model.scan}"
    kinds = [(kind, f"a model of type {what}")]
    for node in getattr(model, "nodes", None) or ():
        if node.layer in _RECURRENT_LAYERS:
            kinds.append(("rnn", f"the graph node {node.name!r} ({node.layer}, a recurrent layer)"))
        elif node.layer == "MambaBlock":
            scan = node.args.get("scan", "sequential")
            kinds.append((f"ssm/{scan}", f"the graph node {node.name!r} (MambaBlock with scan {scan})"))
    return kinds


def check_export(spec: Spec) -> Found:
    from dlpipe.spec.export import tolerance_problem

    export = spec.export
    exporters = {name: registry.entry("exporter", name) for name in registry.names("exporter")}
    takes_all = " or ".join(name for name, exporter in exporters.items() if not exporter.cannot_take)
    for i, fmt in enumerate(export.formats):
        unfit = [f for f in spec.data.features if f.type in exporters[fmt].cannot_take]
        if unfit and fmt not in export.formats[:i]:
            yield (("export", "formats", i),
                   f"{fmt} cannot take the {unfit[0].type} feature {unfit[0].name!r}: its processing runs inside "
                   f"the model, which {fmt} cannot run; use {takes_all}")
        if unfit or fmt in export.formats[:i]:
            continue
        for kind, what in _model_kinds(spec.model, exporters[fmt].cannot_convert):
            reason = exporters[fmt].cannot_convert.get(kind)
            if reason:
                others = " or ".join(name for name, exporter in exporters.items()
                                     if kind not in exporter.cannot_convert)
                yield (("export", "formats", i), f"{fmt} cannot export {what}: {reason}; use {others}")
                break
    for field, values in (("formats", export.formats), ("quantization", export.tflite.quantization)):
        path = ("export", field) if field == "formats" else ("export", "tflite", field)
        for i, value in enumerate(values):
            if value in values[:i]:
                yield ((*path, i), f"{value!r} is listed twice")
    task = tasks.get(spec.task)
    for key, tolerance in export.tolerance.items():
        if tolerance.max_abs_diff is None and tolerance.agreement is None:
            yield (("export", "tolerance", key), "give max_abs_diff, agreement or both")
        elif tolerance.agreement is not None and not task.has_classes:
            yield (("export", "tolerance", key, "agreement"), f"agreement compares classes; a {spec.task} model "
                   "gives none: use max_abs_diff")
    for key in dict.fromkeys(export.keys()):
        problem = tolerance_problem(export, key, task)
        if problem:
            yield problem


def check_task_owned(spec: Spec) -> Found:
    """Models and sources that belong to one task are refused for the others."""
    task = tasks.get(spec.task)
    for owner in (tasks.get(name) for name in tasks.names()):
        if owner is task:
            continue
        if spec.model.type in owner.models:
            yield (("model", "type"), f"model {spec.model.type!r} needs task {owner.name}, not {spec.task}")
        if spec.data.source.type in owner.sources:
            yield (("data", "source", "type"), f"source {spec.data.source.type!r} holds what task {owner.name} "
                   f"learns: it needs task {owner.name}, not {spec.task}")
    if task.models and spec.model.type not in task.models:
        yield (("model", "type"), f"task {spec.task} needs a model of type {' or '.join(task.models)}, "
               f"not {spec.model.type!r}")
    if task.sources and spec.data.source.type not in task.sources:
        yield (("data", "source", "type"), f"task {spec.task} reads a source of type "
               f"{' or '.join(task.sources)}, not {spec.data.source.type!r}")


def check_honoured(spec: Spec) -> Found:
    """What validates is what runs: a key the task's pipeline does not read, set to anything
    but its default, is refused (the task declares what it honours: dlpipe/tasks/)."""
    yield from _unhonoured(tasks.get(spec.task), spec, ())


def _unhonoured(task, model, path: tuple) -> Found:
    from pydantic import BaseModel

    for name, field in type(model).model_fields.items():
        key_path = (*path, name)
        key = ".".join(key_path)
        value = getattr(model, name)
        default = _REQUIRED if field.is_required() else field.get_default(call_default_factory=True)
        if task.refused(key):
            if value != default:
                yield key_path, task.refusal(key)
            continue
        if isinstance(value, BaseModel) and any(k.startswith(key + ".") for k in (*task.honours, *task.refusals)):
            yield from _unhonoured(task, value, key_path)  # partly read: look at each key inside
        elif value != default and not task.honoured(key):
            users = [other.name for other in map(tasks.get, tasks.names()) if other.honoured(key)
                     and not other.refused(key)]
            used = (f" (task {users[0]} does)" if len(users) == 1
                    else f" (tasks {' and '.join(users)} do)" if len(users) == 2 else "")
            yield key_path, f"the {task.name} task does not use this key{used}; remove it"


_REQUIRED = object()


TABULAR_TYPES = ("numerical", "categorical", "ordinal")
"""Feature types with one value per example: what permutation importance and SHAP shuffle."""


def check_explain(spec: Spec) -> Found:
    """evaluation.explain: one decision per example to explain, methods that fit the inputs
    (when the spec lists its features; the data stage checks the features it found)."""
    explain = spec.evaluation.explain
    if explain is None:
        return
    path = ("evaluation", "explain")
    kind = target_kind(spec)
    if kind != "label":
        what = "a multi-label target" if kind == "multi_label" else "an output per step (return_sequences)"
        yield path, f"explanations cover one label or value per example; {what} is not covered yet"
    if spec.data.streaming is not None:
        yield path, "explanations need the splits in memory; data.streaming holds only a sample of them"
    for i, method in enumerate(explain.methods or []):
        if method in explain.methods[:i]:
            yield (*path, "methods", i), f"{method!r} is listed twice"
    if isinstance(explain.rows, list):
        for i, row in enumerate(explain.rows):
            if row in explain.rows[:i]:
                yield (*path, "rows", i), f"row {row} is listed twice"
    if spec.data.features:
        yield from check_explain_features(spec, [(f.name, f.type) for f in spec.data.features])


def check_explain_features(spec: Spec, features: list[tuple[str, str]]) -> Found:
    """The explain methods the spec names against the features (name, type) the model reads."""
    explain = spec.evaluation.explain
    if explain is None or not explain.methods:
        return
    for i, method in enumerate(explain.methods):
        where = ("evaluation", "explain", "methods", i)
        if method == "saliency" and not any(kind == "image" for _, kind in features):
            yield where, "saliency maps are drawn over an image input; the model reads no image feature"
        if method in ("permutation", "shap"):
            other = [(name, kind) for name, kind in features if kind not in TABULAR_TYPES]
            if other:
                yield where, (f"{method} shuffles tabular features (one {', '.join(TABULAR_TYPES)} value each); "
                              f"feature {other[0][0]!r} is {other[0][1]}: use integrated_gradients")


_NEEDS = {"image": "an image", "sequence": "a sequence", "numerical": "a numerical"}


def check_augmentation(spec: Spec) -> Found:
    from dlpipe.spec.prepare import IMAGE_AUGMENTATIONS, SEQUENCE_AUGMENTATIONS

    kinds = {f.type for f in spec.data.features}
    if spec.data.windows is not None:
        kinds = {"sequence"}
    known = bool(spec.data.features) or spec.data.windows is not None
    if spec.prepare.augmentation and spec.training.strategy == "multi_worker":
        yield (("prepare", "augmentation"), "augmentation is not supported under training.strategy multi_worker yet")
    for i, step in enumerate(spec.prepare.augmentation):
        path = ("prepare", "augmentation", i)
        wanted = ("image" if step.type in IMAGE_AUGMENTATIONS else "sequence" if step.type in SEQUENCE_AUGMENTATIONS
                  else "numerical" if step.type == "gaussian_noise" else None)
        if wanted and known and wanted not in kinds:
            yield (path + ("type",), f"{step.type} changes {_NEEDS[wanted]} feature; data.features has none")
        if step.type == "mixup":
            blocked = sorted(kinds & {"categorical", "ordinal", "text", "tokens"})
            if blocked:
                yield (path + ("type",), f"mixup blends numbers; {', '.join(blocked)} features cannot be blended")
        if step.type in [s.type for s in spec.prepare.augmentation[:i]]:
            yield (path + ("type",), f"{step.type} is listed twice")


def check_distillation(spec: Spec) -> Found:
    """What distillation cannot be combined with (dlpipe/distillation.py); the teacher file
    itself is looked at by spec/datacheck.py (plain validate) and the teacher stage."""
    section = spec.distillation
    if section is None:
        return
    if spec.data.streaming is not None:
        yield (("distillation",), "distillation keeps the teacher's outputs beside each training example; "
               "data.streaming holds none: leave out one or the other")
    if spec.training.strategy == "multi_worker":
        yield (("training", "strategy"), "distillation trains with Keras fit; multi_worker's own loop does not "
               "read the teacher's outputs")
    if tasks.get(spec.task).output != "classes" and section.temperature != type(section).model_fields["temperature"].default:
        yield (("distillation", "temperature"), "temperature softens class probabilities; a teacher's values "
               "are matched as they are: leave it out")
    if getattr(spec.model, "return_sequences", False):
        yield (("distillation",), "distillation matches one output per example; model.return_sequences gives "
               "one per step")


def check_compression(spec: Spec) -> Found:
    from dlpipe.spec.compression import compression_problems

    yield from compression_problems(spec)


CHECKS = (check_task_owned, check_honoured, check_split, check_target, check_labeling, check_split_modes,
          check_imputation, check_streaming, check_loss, check_metrics, check_early_stopping,
          check_normalization, check_architecture, check_backbone, check_categorical, check_export,
          check_optimizer, check_schedule, check_checkpoints, check_sample_weight,
          check_jit_compile, check_augmentation, check_explain, check_compression, check_distillation,
          check_backend)


def run_checks(spec: Spec) -> list[tuple[tuple, str]]:
    """The keys the task does not use and the task's own checks (dlpipe/tasks/<task>.py), then
    the generic checks. A key those speak of gets their line only: a generic check of its
    value would be noise."""
    first = [*check_honoured(spec), *(found for check in tasks.get(spec.task).checks for found in check(spec))]
    said = [path for path, _ in first]
    rest = [(path, message) for check in CHECKS if check is not check_honoured
            for path, message in check(spec) if not any(path[:len(p)] == p for p in said)]
    return first + rest
