"""Export of a GAN's generator: latent vector (and class) → image, in the data's units.

Each format is written with its registered exporter, loaded back with its own runtime
(Keras for `.keras`; `tf.saved_model` for the SavedModel's `serving_default` signature, whose
inputs are `latent` and, for a conditional GAN, `label`) and compared with the trained
generator on fixed, seeded latent vectors (verify.py: one by one, then in one batch),
against `export.tolerance`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlpipe import registry
from dlpipe.architectures.gan import LABEL, LATENT
from dlpipe.errors import StageError
from dlpipe.exporters.base import ExportJob
from dlpipe.exporters.stage import VERIFICATION, _verify
from dlpipe.rundir import atomic_write_json


def export_generator(generator, spec, data, export_dir: Path) -> dict:
    from dlpipe.training.adversarial import fixed_latents, generate

    options = spec.export
    count = min(options.samples, 256)
    n_classes = len(data.class_names) if data.class_names else None
    latents, labels = fixed_latents(count, spec.model.latent_size, n_classes, spec.seed + 1)
    inputs = {LATENT: latents} if labels is None else {LATENT: latents, LABEL: labels}
    reference = generate(generator, latents, labels).reshape(count, -1)
    interface = {"task": "generation",
                 "inputs": [{"name": LATENT, "dtype": "float32", "shape": [spec.model.latent_size],
                             "distribution": "standard normal"}]
                 + ([{"name": LABEL, "dtype": "int32", "shape": [], "classes": data.class_names}] if labels is not None
                    else []),
                 "output": {"name": "image", "shape": list(data.shape), "value_range": [data.low, data.high]}}
    job = ExportJob(options, {}, interface)
    results, problems = {}, []
    try:
        for name in options.formats:
            export_format = registry.load("exporter", name)
            for artifact in export_format.write(generator, Path(export_dir) / name, job):
                entry = {"format": name, "path": artifact.path.relative_to(export_dir).as_posix(), **artifact.notes}
                if options.verify != "off":
                    entry.update(_verify(export_format, artifact, inputs, reference, False,
                                         options.tolerance_for(artifact.key)))
                results[artifact.key] = entry
                problems += [f"{artifact.key}: {p}" for p in entry.get("problems", [])]
                if entry.get("error"):
                    problems.append(f"{artifact.key}: {entry['error']}")
    finally:
        job.cleanup()
    atomic_write_json(Path(export_dir) / "interface.json", interface)
    atomic_write_json(Path(export_dir) / VERIFICATION, results)
    if problems and options.verify == "error":
        raise StageError("export", "; ".join(problems) + f" (see {Path(export_dir) / VERIFICATION})")
    for problem in problems:
        print(f"[dlpipe] warning: export {problem}", file=sys.stderr, flush=True)
    return results
