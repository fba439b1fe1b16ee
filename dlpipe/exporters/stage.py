"""The export stage, one loop for every task: each format written, loaded back with its own
runtime, run on held-out inputs and compared with the trained model (within the spec's
`export.tolerance`, on `export.samples` inputs, as `export.verify` says), then scored with
that same runtime (exporters/scoring.py: the spec's metrics on the test split, bytes, gzip
bytes, single-example latency); then export/verification.json and the model card
(model_card.json, model_card.md).

What differs between tasks comes in a `Subject`, built by the task's adapter: the held-out
inputs (test examples; test images; seeded latent vectors), how two outputs compare
(exporters/verify.py) and the interface the card describes. `export_model` builds the
subject of a model with one output of classes, values or an embedding (the supervised and
embedding pipelines); exporters/detection.py and exporters/generator.py build theirs.

`dlpipe run` exports after training; `dlpipe export RUN_DIR` calls the task's `reexport`
hook, which loads model.keras and rebuilds the inputs from the run's spec.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlpipe import progress, registry, tasks
from dlpipe.errors import StageError
from dlpipe.exporters.base import ExportJob
from dlpipe.rundir import atomic_write_json, atomic_write_text

VERIFICATION = "verification.json"
CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
NATIVE_LOG = "native.log"
"""What TensorFlow, TFLite and tf2onnx printed while converting and verifying (appended)."""


@dataclass
class Subject:
    """A trained model and what the export loop needs to verify and describe it."""

    model: Any
    inputs: dict[str, np.ndarray]
    """Held-out inputs by input name, each export is run on."""
    compare: Callable[[Any, Any], dict]
    """(trained model's output, export's output) → max_abs_diff, mean_abs_diff, [agreement]."""
    interface: dict[str, Any]
    """What a caller sends and gets back (task, inputs, output, class names): the card's
    core, and assets/dlpipe_interface.json of a SavedModel."""
    data: dict[str, Any]
    """What it learned from, for the card: origin, fingerprint, split_sizes."""
    representative: dict[str, np.ndarray] = field(default_factory=dict)
    """Training examples by input name that calibrate int8 (only formats that quantize read it)."""
    score: Callable[[Any], dict] | None = None
    """The export's own runner (a format's `load`) → its metrics on the test split
    (exporters/scoring.py); None where the task's metrics are not computed per export."""
    score_note: str | None = None
    """What the score leaves out and why (verification.json's `test_metrics_note`)."""


def check_available(formats: Sequence[str], stage: str = "setup") -> None:
    """Fail before training when a format's extra is not installed (its registry entry says
    which modules it needs; nothing is imported to find out)."""
    import importlib.util

    problems = []
    for name in formats:
        exporter = registry.entry("exporter", name)
        missing = [module for module in exporter.requires if importlib.util.find_spec(module) is None]
        if missing:
            problems.append(f"export format {name} needs the {exporter.extra} extra: "
                            f"pip install 'dlpipe[{exporter.extra}]' (cannot import {', '.join(missing)})")
    if problems:
        raise StageError(stage, "; ".join(problems))


def held_out(spec, data) -> dict[str, np.ndarray]:
    """The first `export.samples` test-split examples, by input name."""
    test = data.splits["test"]
    count = min(spec.export.samples, len(test))
    return {name: values[:count] for name, values in test.x.items()}


def representative(spec, data) -> dict[str, np.ndarray]:
    """A seeded draw of training-split examples (never validation or test) for int8 calibration."""
    train = data.splits["train"]
    held = len(next(iter(train.x.values()))) if train.x else 0  # a streamed split holds a sample
    count = min(spec.export.tflite.representative_samples, held)
    rows = np.sort(np.random.default_rng(spec.seed).permutation(held)[:count])
    return {name: values[rows] for name, values in train.x.items()}


def export_model(model, spec, data, export_dir: Path, *, formats: Sequence[str] | None = None,
                 metrics: dict | None = None, keras_file: Path | None = None) -> dict:
    """Export a model with one output (classes, values or an embedding) trained on the
    prepared `data` (dlpipe.data.prepare): the test examples are its held-out inputs."""
    from dlpipe.architectures.quantization import strip
    from dlpipe.exporters import scoring
    from dlpipe.exporters.model_card import describe_interface
    from dlpipe.exporters.verify import compare_values

    calibration = representative(spec, data)
    task = tasks.get(spec.task)
    if task.output == "embedding":  # the encoder alone: scored by its neighbours
        score, note = scoring.embedding(spec, data)
    else:
        score, note = scoring.supervised(spec, data), None
    plain = strip(model)  # quantization-aware training: plain layers holding the int8-grid kernels
    if plain is not model:
        model, keras_file = plain, None  # model.keras holds the fake-quantizing layers
        note = " ".join(filter(None, [note, quantized_note(calibration)]))
    subject = Subject(model=model, inputs=held_out(spec, data),
                      compare=lambda reference, exported: compare_values(reference, exported, task.has_classes),
                      interface=describe_interface(spec, data, model), data=data_summary(data),
                      representative=calibration, score=score, score_note=note)
    return export(subject, spec, export_dir, formats=formats, metrics=metrics, keras_file=keras_file)


def quantized_note(calibration: dict[str, np.ndarray]) -> str:
    """What each export of a quantization-aware run computes, beside the trained model."""
    count = len(next(iter(calibration.values()))) if calibration else 0
    return ("Quantization-aware training: the trained model's metrics (metrics.json) simulate int8 as "
            "tflite/int8 computes: kernels on the int8 grid, each quantized layer's input rounded to 8 bits "
            f"between the minimum and maximum that int8 calibration finds on the same {count} training "
            "examples. The other exports hold the same int8-grid kernels but compute in float (inputs not "
            "rounded), so their scores may differ from the trained model's. Verification compares every export "
            "with that float model (the trained kernels in plain layers), not with the int8 simulation.")


def data_summary(data) -> dict:
    """The card's `data`: a prepared data set's origin, fingerprint and split sizes."""
    return {"origin": data.origin, "fingerprint": data.fingerprint,
            "split_sizes": {name: len(split) for name, split in data.splits.items()}}


def export(subject: Subject, spec, export_dir: Path, *, formats: Sequence[str] | None = None,
           metrics: dict | None = None, keras_file: Path | None = None) -> dict:
    """Export `subject.model` to `formats` (default: the spec's) under `export_dir`; returns
    the verification results. Entries of formats not exported this time are kept when their
    files still exist (`dlpipe export --format` re-exports some). Raises StageError when a
    format cannot be written, or (verify: error) when an export is outside its tolerance.
    `keras_file`: the model as saved already (the run's model.keras), copied for the keras format."""
    from dlpipe.data.pipeline import predict
    from dlpipe.exporters.model_card import build_card, render_markdown
    from dlpipe.spec.export import tolerance_problem
    from dlpipe.spec.loader import format_path

    options, task = spec.export, tasks.get(spec.task)
    formats = list(dict.fromkeys(options.formats if formats is None else formats))
    check_available(formats, "export")
    for key in options.keys(formats):
        problem = tolerance_problem(options, key, task)
        if problem:
            raise StageError("export", f"{format_path(problem[0])}: {problem[1]}")
    export_dir = Path(export_dir)
    reference = predict(subject.model, subject.inputs, compiled=True)
    job = ExportJob(options, subject.representative, subject.interface, keras_file=keras_file)

    results = {key: entry for key, entry in _previous(export_dir).items()
               if key.split("/")[0] not in formats and entry.get("path") and (export_dir / entry["path"]).exists()}
    unwritten = []
    try:
        with _native_logs(export_dir / NATIVE_LOG) as console:
            for name in formats:
                export_format = registry.load("exporter", name)
                try:
                    with progress.task(f"export {name}", stream=console) as step:  # shown when it takes a while
                        artifacts = export_format.write(subject.model, export_dir / name, job)
                        step.finish("written: " + ", ".join(a.path.relative_to(export_dir).as_posix()
                                                            for a in artifacts))
                except StageError as err:
                    message = str(err).removeprefix("export: ")
                    results[name] = {"format": name, "path": None, "passed": False, "error": message}
                    unwritten.append(message)
                    continue
                for artifact in artifacts:
                    entry = {"format": name, "path": artifact.path.relative_to(export_dir).as_posix(), **artifact.notes}
                    if options.verify != "off":
                        with progress.task(f"verify {artifact.key}", stream=console) as step:
                            verified, predict = _verify(export_format, artifact, subject, reference,
                                                        options.tolerance_for(artifact.key, task.output))
                            entry.update(verified)
                            step.finish(_verdict(entry))
                        if predict is not None:
                            with progress.task(f"score {artifact.key}", stream=console) as step:
                                entry.update(_score(predict, artifact, subject, options.latency_calls))
                                step.finish(_scored(entry))
                    results[artifact.key] = entry
    finally:
        job.cleanup()

    atomic_write_json(export_dir / VERIFICATION, results)
    card = build_card(spec, subject.interface, subject.data, metrics, results, int(subject.model.count_params()))
    atomic_write_json(export_dir / CARD_JSON, card)
    atomic_write_text(export_dir / CARD_MARKDOWN, render_markdown(card))

    failures = [f"{key}: {'; '.join(entry['problems'])}" for key, entry in results.items()
                if entry.get("problems") and key.split("/")[0] in formats]
    failures += [f"{key}: {entry['error']}" for key, entry in results.items()
                 if entry.get("error") and entry.get("path") and key.split("/")[0] in formats]
    for key, entry in results.items():
        if entry.get("test_metrics_error") and key.split("/")[0] in formats:
            print(f"[dlpipe] warning: export {key}: not scored on the test split: {entry['test_metrics_error']}",
                  file=sys.stderr, flush=True)
    if unwritten or (failures and options.verify == "error"):
        raise StageError("export", "; ".join(unwritten + failures) + f" (see {export_dir / VERIFICATION})")
    for failure in failures:
        print(f"[dlpipe] warning: export {failure}", file=sys.stderr, flush=True)
    return results


@contextlib.contextmanager
def _native_logs(path: Path):
    """TensorFlow's, TFLite's and tf2onnx's own log lines during conversion and verification
    (C++ lines written straight to file descriptor 2: "Reading SavedModel from", "Created
    TensorFlow Lite XNNPACK delegate", ...) go to `path`, export/native.log, not to the
    terminal. Yields the stream for dlpipe's progress lines: the terminal's stderr, kept.
    `DLPIPE_TF_LOGS=1` leaves them on stderr (as for the import, dlpipe/backend_import.py)."""
    try:
        ours = sys.stderr.fileno() == 2  # not when a test runner has replaced sys.stderr
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        ours, saved = False, None
    if saved is None or os.environ.get("DLPIPE_TF_LOGS"):
        if saved is not None:
            os.close(saved)
        yield sys.stderr
        return
    console = os.fdopen(saved, "w", encoding=sys.stderr.encoding or "utf-8", errors="replace",
                        buffering=1) if ours else sys.stderr
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield console
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            if ours:
                console.close()  # closes `saved`
            else:
                os.close(saved)


def _verdict(entry: dict) -> str:
    if entry.get("error"):
        return f"does not run: {entry['error']}"
    diff = entry.get("max_abs_diff")
    shown = f"max abs diff {diff:.3g}, " if isinstance(diff, (int, float)) else ""
    return shown + ("passed" if entry.get("passed") else "outside its tolerance")


def _previous(export_dir: Path) -> dict:
    try:
        return json.loads((export_dir / VERIFICATION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _verify(export_format, artifact, subject: Subject, reference, tolerance) -> tuple[dict, Any]:
    """(the verification entry, the loaded runner) — the runner is None when it does not run."""
    from dlpipe.exporters.verify import judge, run_and_compare

    entry = {"tolerance": tolerance.model_dump(exclude_none=True)}
    try:
        predict = export_format.load(artifact.path)
        result = run_and_compare(predict, subject.inputs, reference, subject.compare)
    except Exception as err:  # whatever the runtime raises: the artifact does not run
        _remove(artifact.path)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return {**entry, "passed": False,
                "error": f"fails when run ({type(err).__name__}: {first}); the file was removed"}, None
    problems = judge(result, tolerance)
    return {**entry, **result, "passed": not problems, "problems": problems}, predict


def _score(predict, artifact, subject: Subject, latency_calls: int) -> dict:
    """The export as a user judges it (exporters/scoring.py): its metrics on the test split
    from its own runtime, bytes and gzip bytes, single-example latency."""
    from dlpipe.exporters.scoring import finite, footprint, latency

    entry = dict(footprint(artifact.path))
    if subject.score is not None:
        try:
            entry["test_metrics"] = finite(subject.score(predict))
        except Exception as err:  # the runtime failed on a batch verification did not try
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            entry["test_metrics_error"] = f"{type(err).__name__}: {first}"
    if subject.score_note:
        entry["test_metrics_note"] = subject.score_note
    example = {name: values[:1] for name, values in subject.inputs.items()}
    timed = latency(predict, example, latency_calls)
    if timed is not None:
        entry["latency"] = timed
    return entry


def _scored(entry: dict) -> str:
    parts = [f"{name} {value:.4g}" for name, value in (entry.get("test_metrics") or {}).items()
             if isinstance(value, float)]
    parts.append(f"{entry['bytes']:,} bytes ({entry['gzip_bytes']:,} gzipped)")
    if "latency" in entry:
        parts.append(f"{entry['latency']['median_ms']:.3g} ms per example")
    return "test: " + ", ".join(parts)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
