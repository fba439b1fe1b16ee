"""Generation with a diffusion model (`model: {type: diffusion}`), read top to bottom.

    data      read the image column, check it, split; the training split's value range
    setup     import TensorFlow, seed everything, turn on op determinism
    features  the network FID and the Inception Score read, as for a GAN (pipelines/adversarial.py:
              a small classifier trained here, an earlier run's classifier, or InceptionV3),
              saved as feature_extractor.keras (+ .json); the real images' features, and
              fid_reference: FID of as many training images as are generated against the
              held-out test images — the floor of every FID here
    build     the denoiser U-Net, its moving-average copy, the DDIM sampler around that copy
    train     DDPM noise prediction (training/diffusion.py) trained by the shared `fit.train`:
              schedule, augmentation of the real images, shuffle buffer, TensorBoard,
              checkpoints/ each epoch, resumed from when present; every
              `evaluation.generation.every` epochs the sampler draws images from fixed
              seeded noise → FID and IS against the held-out test images and a sample grid
              (plots/samples_epoch_NNN.png); history.csv; model.keras (the sampler: noise
              [and class] → image) and denoiser.keras (the moving-average denoiser alone)
    evaluate  metrics.json: FID and IS of the last evaluation, and of the first (`_first`),
              fid_reference and the sample counts; evaluation/generation.json: every
              evaluation; evaluation/fid_samples.npz: the images the last FID and
              fid_reference read (`python -m dlpipe.metrics.fid RUN` recomputes both)
    export    the sampler through the one export loop: each format written, reloaded, compared
              on fixed seeded noise → export/verification.json, model card
    report    loss curve, FID curve, sample grids → report.html

Hooks: `reexport` (dlpipe export: the sampler), `deep_build` (dlpipe validate --deep).
"""

from __future__ import annotations

import sys

from dlpipe import stages
from dlpipe.rundir import atomic_path, atomic_write_json, atomic_write_text


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir
    evaluation = spec.evaluation.generation

    with run_dir.stage("data"):
        from dlpipe.data.images import prepare_images

        data = prepare_images(spec, ctx.base_dir, ctx.located)
        atomic_write_json(run_dir.path("data.json"), data.describe())
        stages.write_splits(run_dir, data.splits)
        run_dir.update(data_fingerprint=data.fingerprint)
        n_classes = len(data.class_names) if data.class_names else None
        real = data.images["test"]

    with run_dir.stage("setup"):
        stages.setup(run_dir, spec)

    count = evaluation.samples or len(real)  # generated images per evaluation
    with run_dir.stage("features"):
        from dlpipe.metrics.fid import fid_reference, reference_images
        from dlpipe.metrics.generative import inception_score
        from dlpipe.pipelines.adversarial import feature_extractor

        scorer, extractor_info = feature_extractor(spec, data, ctx)
        extractor_info.update(scorer.save(run_dir.root))
        real_features, real_probabilities = scorer(real)
        if real_probabilities is not None:
            extractor_info["inception_score_real"] = inception_score(real_probabilities)
        references = reference_images(data.images["train"], count, spec.seed)
        reference = {"fid_reference": fid_reference(scorer, real_features, references),
                     "real_images": int(len(real)), "training_images": int(len(references))}
        print(f"[dlpipe] fid_reference {reference['fid_reference']:.3f}: {len(references)} training images "
              f"against the {len(real)} test images (the floor of FID at these counts)", file=sys.stderr, flush=True)

    with run_dir.stage("build"):
        from dlpipe.training.compile import make_optimizer
        from dlpipe.training.determinism import resolve_jit
        from dlpipe.training.fit import gpus

        model, denoiser, sampler = build(spec, data, n_classes, ctx.located)
        model.compile(make_optimizer(spec.training.optimizer), jit_compile=resolve_jit(spec.training.jit_compile,
                                                                                         gpus()))
        run_dir.update(parameters={"denoiser": int(denoiser.count_params())})

    with run_dir.stage("train"):
        from dlpipe.architectures.diffusion import fixed_noise, sample
        from dlpipe.pipelines.adversarial import training_data
        from dlpipe.training.adversarial import Evaluations, history_csv, results
        from dlpipe.training.fit import train

        noise, labels = fixed_noise(max(count, evaluation.grid), data.shape, n_classes, spec.seed)
        monitor = Evaluations(lambda z, y: sample(sampler, z, y), scorer, real_features, noise, labels,
                              count=count, every=evaluation.every, epochs=spec.training.epochs,
                              grid=evaluation.grid, plots=run_dir.path("plots"), class_names=data.class_names)
        if len(data.images["train"]) < spec.training.batch_size:
            raise ctx.located(("training", "batch_size"), f"the training split holds {len(data.images['train'])} "
                              f"images, fewer than one batch of {spec.training.batch_size}")
        history = train(model, spec, training_data(data), run_dir=run_dir, located=ctx.located,
                        callbacks=ctx.callbacks, monitors=[monitor], drop_remainder=True, strategy="none")
        evaluations = results(history)
        atomic_write_text(run_dir.path("history.csv"), history_csv(history))
        with atomic_path(run_dir.path("model.keras")) as tmp:
            sampler.save(tmp)
        with atomic_path(run_dir.path("denoiser.keras")) as tmp:
            model.ema.save(tmp)

    with run_dir.stage("evaluate"):
        from dlpipe.metrics.fid import save_samples

        first, last = evaluations[0], evaluations[-1]
        scores = {"fid": last["fid"], "fid_first": first["fid"], "fid_reference": reference["fid_reference"],
                  "fid_samples": count, "fid_real_samples": int(len(real))}
        if "inception_score" in last:
            scores.update(inception_score=last["inception_score"], inception_score_first=first["inception_score"],
                          inception_score_real=extractor_info["inception_score_real"])
        wanted = spec.evaluation.metrics
        scores = {name: value for name, value in scores.items()
                  if name.removesuffix("_first") in wanted
                  or name in ("fid_reference", "fid_samples", "fid_real_samples") and "fid" in wanted
                  or name == "inception_score_real" and "inception_score" in wanted}
        metrics = {"test": scores}
        atomic_write_json(run_dir.path("metrics.json"), metrics)
        atomic_write_json(run_dir.path("evaluation", "generation.json"),
                          {"real_images": int(len(real)), "generated_images": count,
                           "sampler": {"steps": spec.model.sampler.steps,
                                       "guidance": spec.model.sampler.guidance if n_classes else None},
                           "feature_extractor": extractor_info, "fid_reference": reference,
                           "evaluations": evaluations})
        # The images the last evaluation scored, drawn again from the same noise (the
        # sampler has not changed since): what `python -m dlpipe.metrics.fid RUN` reads.
        generated = sample(sampler, noise[:count], None if labels is None else labels[:count])
        save_samples(run_dir.root, real, generated, references)
        shown = (f"; Inception Score {first['inception_score']:.2f} → {last['inception_score']:.2f} "
                 f"(real images: {extractor_info['inception_score_real']:.2f})" if "inception_score" in last else "")
        print(f"[dlpipe] FID {first['fid']:.2f} (epoch {first['epoch']}) → {last['fid']:.2f} (epoch "
              f"{last['epoch']}), real against real at the same counts: {reference['fid_reference']:.2f}"
              f"{shown}", file=sys.stderr, flush=True)

    with run_dir.stage("export"):
        from dlpipe.exporters.diffusion import export_sampler

        export_sampler(sampler, spec, data, run_dir.path("export"), metrics=metrics,
                       keras_file=run_dir.path("model.keras"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report
        from dlpipe.report.plots import fid_curve

        fid_curve(evaluations, run_dir.path("plots", "fid.png"), reference["fid_reference"])
        write_report(run_dir.root, model=sampler)


def build(spec, data, n_classes, located):
    """(the training model, its denoiser, the sampler over the moving-average denoiser)."""
    import keras

    from dlpipe.architectures import BuildProblem
    from dlpipe.architectures.diffusion import LABEL, NOISY, TIMESTEP, build_denoiser, build_sampler, noise_schedule
    from dlpipe.architectures.gan import IMAGE
    from dlpipe.training.diffusion import DiffusionModel

    diffusion = spec.model
    try:
        denoiser = build_denoiser(diffusion, data.shape, n_classes)
    except BuildProblem as problem:
        raise located(problem.path, problem.message) from None
    ema = keras.models.clone_model(denoiser)
    ema.name = "denoiser_ema"
    model = DiffusionModel(denoiser, ema, alphas=noise_schedule(diffusion.noise_schedule, diffusion.timesteps),
                           n_classes=n_classes, label_dropout=diffusion.label_dropout,
                           ema_decay=diffusion.ema, low=data.low, high=data.high, noisy=NOISY,
                           timestep=TIMESTEP, label=LABEL, image=IMAGE, seed=spec.seed)
    sampler = build_sampler(ema, diffusion, data.shape, n_classes, data.low, data.high)
    return model, denoiser, sampler


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR [--format F] [--set export.K=V]`: model.keras (the sampler)
    exported again, verified on the same seeded noise as in the run."""
    from dlpipe.data.images import prepare_images
    from dlpipe.exporters.diffusion import export_sampler

    return stages.reexport(run, formats, prepare=prepare_images, export=export_sampler)


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: the sampler (what is exported), over a freshly built
    denoiser sized from the training images, so a misfit of the U-Net is reported."""
    from dlpipe.architectures import BuildProblem
    from dlpipe.architectures.diffusion import build_denoiser, build_sampler
    from dlpipe.data.images import prepare_images

    data = prepare_images(spec, base_dir, located)
    n_classes = len(data.class_names) if data.class_names else None
    try:
        denoiser = build_denoiser(spec.model, data.shape, n_classes)
    except BuildProblem as problem:
        raise located(problem.path, problem.message) from None
    return build_sampler(denoiser, spec.model, data.shape, n_classes, data.low, data.high)
