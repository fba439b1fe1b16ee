"""Generation with a diffusion model (`model: {type: diffusion}`), read top to bottom.

    data, setup, features  as in pipelines/generation_stages.py, which the GAN pipeline
              shares: the image column split; seeding; the feature extractor FID and the
              Inception Score read, saved into the run; fid_reference, the floor of every FID
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
from dlpipe.pipelines.generation_stages import data_setup_features, images_per_step, training_data
from dlpipe.rundir import atomic_path, atomic_write_json, atomic_write_text


def run(ctx) -> None:
    spec, run_dir = ctx.spec, ctx.run_dir
    evaluation = spec.evaluation.generation

    prepared = data_setup_features(ctx)  # stages data, setup, features (pipelines/generation_stages.py)
    data, n_classes, count, floor = prepared.data, prepared.n_classes, prepared.count, prepared.floor
    scorer, extractor_info, real = prepared.scorer, prepared.extractor_info, prepared.real

    with run_dir.stage("build"):
        import keras

        from dlpipe.training.compile import make_optimizer
        from dlpipe.training.determinism import resolve_jit
        from dlpipe.training.fit import gpus

        model, denoiser, sampler = build(spec, data, n_classes, ctx.located)
        jit = resolve_jit(spec.training.jit_compile, gpus(), keras.backend.backend())  # auto: always XLA on JAX
        model.compile(make_optimizer(spec.training.optimizer), jit_compile=jit)
        run_dir.update(parameters={"denoiser": int(denoiser.count_params())})

    with run_dir.stage("train"):
        from dlpipe.architectures.diffusion import fixed_noise, sample
        from dlpipe.training.adversarial import Evaluations, history_csv, results
        from dlpipe.training.fit import train

        noise, labels = fixed_noise(max(count, evaluation.grid), data.shape, n_classes, spec.seed)
        monitor = Evaluations(lambda z, y: sample(sampler, z, y), scorer, floor.real_features, noise, labels,
                              count=count, every=evaluation.every, epochs=spec.training.epochs,
                              grid=evaluation.grid, plots=run_dir.path("plots"), class_names=data.class_names)
        images_per_step(spec, data, ctx)
        history = train(model, spec, training_data(data), run_dir=run_dir, located=ctx.located,
                        callbacks=ctx.callbacks, monitors=[monitor], drop_remainder=True, strategy="none")
        evaluations = results(history)
        atomic_write_text(run_dir.path("history.csv"), history_csv(history))
        with atomic_path(run_dir.path("model.keras")) as tmp:
            sampler.save(tmp)
        with atomic_path(run_dir.path("denoiser.keras")) as tmp:
            model.ema.save(tmp)

    with run_dir.stage("evaluate"):
        first, last = evaluations[0], evaluations[-1]
        metrics = {"test": floor.scores(evaluations, spec.evaluation.metrics,
                                        extractor_info.get("inception_score_real"))}
        atomic_write_json(run_dir.path("metrics.json"), metrics)
        atomic_write_json(run_dir.path("evaluation", "generation.json"),
                          {"real_images": int(len(real)), "generated_images": count,
                           "sampler": {"steps": spec.model.sampler.steps,
                                       "guidance": spec.model.sampler.guidance if n_classes else None},
                           "feature_extractor": extractor_info, "fid_reference": floor.describe(),
                           "evaluations": evaluations})
        # The images the last evaluation scored, drawn again from the same noise (the
        # sampler has not changed since): what `python -m dlpipe.metrics.fid RUN` reads.
        floor.save_samples(run_dir.root, sample(sampler, noise[:count], None if labels is None else labels[:count]))
        shown = (f"; Inception Score {first['inception_score']:.2f} → {last['inception_score']:.2f} "
                 f"(real images: {extractor_info['inception_score_real']:.2f})" if "inception_score" in last else "")
        print(f"[dlpipe] FID {first['fid']:.2f} (epoch {first['epoch']}) → {last['fid']:.2f} (epoch "
              f"{last['epoch']}), real against real at the same counts: {floor.value:.2f}"
              f"{shown}", file=sys.stderr, flush=True)

    with run_dir.stage("export"):
        from dlpipe.exporters.diffusion import export_sampler

        export_sampler(sampler, spec, data, run_dir.path("export"), metrics=metrics,
                       keras_file=run_dir.path("model.keras"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report
        from dlpipe.report.plots import fid_curve

        fid_curve(evaluations, run_dir.path("plots", "fid.png"), floor.value)
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
