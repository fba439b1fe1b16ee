"""A GAN generator's export (task generation): its adapter to the one export loop
(exporters/stage.py).

The generator maps a latent vector (and, for a conditional GAN, a class) to an image in the
data's units. The registered `keras` and `saved_model` formats write it (SavedModel
signature `serving_default(latent[, label])`); each is reloaded with its own runtime, run on
`export.samples` fixed, seeded latent vectors (a few one by one, then all in one batch) and
its images compared with the trained generator's, against `export.tolerance`.

No export is scored with FID or the inception score (its size and latency are recorded):
those need thousands of generated images through a feature extractor, minutes per export
on a CPU, where a classifier's test split takes a second. The export's images equal the generator's within its
verified max abs diff on the same latents, so metrics.json's FID stands for it to that
precision (SCORE_NOTE, in verification.json).
"""

from __future__ import annotations

from pathlib import Path

from dlpipe.architectures.gan import LABEL, LATENT, fixed_latents
from dlpipe.exporters.stage import Subject, export


def interface(spec, data) -> dict:
    """What a caller sends (a standard normal latent vector, and a class) and gets back."""
    inputs = [{"name": LATENT, "input": LATENT, "type": "latent", "dtype": "float32",
               "shape": [spec.model.latent_size], "distribution": "standard normal"}]
    if data.class_names:
        inputs.append({"name": LABEL, "input": LABEL, "type": "class", "dtype": "int32", "shape": [],
                       "classes": data.class_names})
    return {"task": spec.task, "target": spec.data.target.name if spec.data.target else None, "inputs": inputs,
            "output": {"name": "image", "shape": list(data.shape), "value_range": [data.low, data.high],
                       "meaning": f"an image like the training split's {data.feature!r}, in its units"},
            "class_names": data.class_names}


SCORE_NOTE = ("not scored per export: FID and inception score need thousands of generated images through a "
              "feature extractor; the export's images match the generator's within max_abs_diff on the same "
              "latents, so metrics.json's scores stand for it")


def subject(generator, spec, data) -> Subject:
    """The generator on `export.samples` latent vectors drawn from seed + 1 (the evaluations
    draw from the seed itself), labels cycling through the classes."""
    from dlpipe.exporters.verify import compare_values

    n_classes = len(data.class_names) if data.class_names else None
    latents, labels = fixed_latents(spec.export.samples, spec.model.latent_size, n_classes, spec.seed + 1)
    inputs = {LATENT: latents} if labels is None else {LATENT: latents, LABEL: labels}
    return Subject(model=generator, inputs=inputs,
                   compare=lambda reference, exported: compare_values(reference, exported, classes=False),
                   interface=interface(spec, data), score_note=SCORE_NOTE,
                   data={"origin": data.origin, "fingerprint": data.fingerprint,
                         "split_sizes": {name: len(images) for name, images in data.images.items()}})


def export_generator(generator, spec, data, export_dir: Path, *, formats=None, metrics: dict | None = None,
                     keras_file: Path | None = None) -> dict:
    """Every format of `spec.export.formats` (or `formats`) written, reloaded, compared:
    export/verification.json and the model card."""
    return export(subject(generator, spec, data), spec, export_dir, formats=formats, metrics=metrics,
                  keras_file=keras_file)
