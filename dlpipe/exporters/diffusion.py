"""A diffusion model's export (task generation): its adapter to the one export loop
(exporters/stage.py).

What is exported is the sampler: starting noise x_T (standard normal, one image's shape;
and, when the model is class-conditioned, a class) → an image in the data's units, by DDIM
with `model.sampler.steps` steps over the moving-average denoiser, as one Keras model (the
step loop is one loop op in its graph). DDIM with η = 0 is deterministic, so the registered
`keras` and `saved_model` formats (SavedModel signature `serving_default(noise[, label])`)
are reloaded with their own runtimes, run on `export.samples` fixed, seeded noise images
and compared with the trained sampler's images, against `export.tolerance`. A caller maps a
seed to an image by drawing the noise from it (`architectures/diffusion.py: fixed_noise`).
"""

from __future__ import annotations

from pathlib import Path

from dlpipe.architectures.diffusion import LABEL, NOISE, fixed_noise
from dlpipe.exporters.stage import Subject, export

SCORE_NOTE = ("not scored per export: FID needs thousands of sampled images through a feature extractor; the "
              "export's images match the sampler's within max_abs_diff on the same noise, so metrics.json's "
              "scores stand for it")


def interface(spec, data) -> dict:
    """What a caller sends (standard normal noise of an image's shape, and a class) and gets back."""
    inputs = [{"name": NOISE, "input": NOISE, "type": "noise", "dtype": "float32", "shape": list(data.shape),
               "distribution": "standard normal"}]
    if data.class_names:
        inputs.append({"name": LABEL, "input": LABEL, "type": "class", "dtype": "int32", "shape": [],
                       "classes": data.class_names})
    return {"task": spec.task, "target": spec.data.target.name if spec.data.target else None, "inputs": inputs,
            "sampler": {"method": "ddim", "eta": 0.0, "steps": spec.model.sampler.steps,
                        "timesteps": spec.model.timesteps, "noise_schedule": spec.model.noise_schedule,
                        "guidance": spec.model.sampler.guidance if data.class_names else None},
            "output": {"name": "image", "shape": list(data.shape), "value_range": [data.low, data.high],
                       "meaning": f"an image like the training split's {data.feature!r}, in its units"},
            "class_names": data.class_names}


def subject(sampler, spec, data) -> Subject:
    """The sampler on `export.samples` noise images drawn from seed + 1 (the evaluations draw
    from the seed itself), labels cycling through the classes."""
    from dlpipe.exporters.verify import compare_values

    n_classes = len(data.class_names) if data.class_names else None
    noise, labels = fixed_noise(spec.export.samples, data.shape, n_classes, spec.seed + 1)
    inputs = {NOISE: noise} if labels is None else {NOISE: noise, LABEL: labels}
    return Subject(model=sampler, inputs=inputs,
                   compare=lambda reference, exported: compare_values(reference, exported, classes=False),
                   interface=interface(spec, data), score_note=SCORE_NOTE,
                   data={"origin": data.origin, "fingerprint": data.fingerprint,
                         "split_sizes": {name: len(images) for name, images in data.images.items()}})


def export_sampler(sampler, spec, data, export_dir: Path, *, formats=None, metrics: dict | None = None,
                   keras_file: Path | None = None) -> dict:
    """Every format of `spec.export.formats` (or `formats`) written, reloaded, compared:
    export/verification.json and the model card."""
    return export(subject(sampler, spec, data), spec, export_dir, formats=formats, metrics=metrics,
                  keras_file=keras_file)
