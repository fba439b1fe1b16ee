"""Generation with a GAN, read top to bottom.

    data, setup, features  as in pipelines/generation_stages.py, which the diffusion pipeline
              shares: the image column split; seeding; the feature extractor FID and the
              Inception Score read, saved into the run; fid_reference, the floor of every FID
    build     generator and discriminator (scaling to and from −1..1 inside), their optimizers
    train     the adversarial model (its train_step: discriminator, then generator) trained by
              the shared `fit.train`: schedules on both optimizers, augmentation of the real
              images, shuffle buffer, TensorBoard, XLA, checkpoints/ each epoch, resumed from
              when present; every `evaluation.generation.every` epochs FID and IS against the
              held-out test images and a sample grid (plots/samples_epoch_NNN.png);
              history.csv; model.keras (the generator) and discriminator.keras
    evaluate  metrics.json: FID and IS of the last evaluation, and of the first (`_first`),
              fid_reference and the sample counts (fid_samples generated, fid_real_samples
              real); evaluation/generation.json: every evaluation; evaluation/fid_samples.npz:
              the images the last FID and fid_reference read (`python -m dlpipe.metrics.fid
              RUN` recomputes both from it and the saved extractor)
    export    the generator through the one export loop: each format written, reloaded,
              compared on fixed latent vectors → export/verification.json, model card
    report    learning curves, FID curve, sample grids → report.html

Hooks: `reexport` (dlpipe export: the generator), `deep_build` (dlpipe validate --deep).
Not done: multi-device training; a rerun into a finished run's folder (no stage cache);
`dlpipe evaluate` (FID needs the feature extractor trained again).
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
    real_features = floor.real_features

    with run_dir.stage("build"):
        import keras

        from dlpipe.architectures import BuildProblem
        from dlpipe.architectures.gan import IMAGE, LABEL, LATENT, build_discriminator, build_generator
        from dlpipe.training.adversarial import AdversarialModel
        from dlpipe.training.compile import make_optimizer
        from dlpipe.training.determinism import resolve_jit
        from dlpipe.training.fit import gpus

        gan, adversarial = spec.model, spec.training.adversarial
        try:
            generator = build_generator(gan, data.shape, n_classes, data.low, data.high)
            discriminator = build_discriminator(gan, data.shape, n_classes, data.low, data.high)
        except BuildProblem as problem:
            raise ctx.located(problem.path, problem.message) from None
        model = AdversarialModel(generator, discriminator, latent=LATENT, label=LABEL, image=IMAGE,
                                 latent_size=gan.latent_size,
                                 conditional=n_classes is not None,
                                 discriminator_steps=adversarial.discriminator_steps,
                                 label_smoothing=adversarial.label_smoothing, seed=spec.seed)
        model.compile(make_optimizer(spec.training.optimizer),
                      make_optimizer(adversarial.discriminator_optimizer or spec.training.optimizer),
                      jit_compile=resolve_jit(spec.training.jit_compile, gpus(), keras.backend.backend()))
        run_dir.update(parameters={"generator": int(generator.count_params()),
                                   "discriminator": int(discriminator.count_params())})

    with run_dir.stage("train"):
        from dlpipe.architectures.gan import fixed_latents, generate
        from dlpipe.training.adversarial import Evaluations, history_csv, results
        from dlpipe.training.fit import train

        latents, labels = fixed_latents(max(count, evaluation.grid), gan.latent_size, n_classes, spec.seed)
        monitor = Evaluations(lambda z, y: generate(generator, z, y), scorer, real_features, latents, labels, count=count,
                              every=evaluation.every, epochs=spec.training.epochs, grid=evaluation.grid,
                              plots=run_dir.path("plots"), class_names=data.class_names)
        # Each step takes `discriminator_steps` full batches of real images, one per
        # discriminator update; a GAN trains on one device.
        history = train(model, spec, training_data(data), run_dir=run_dir, located=ctx.located,
                        callbacks=ctx.callbacks, monitors=[monitor], batch_size=images_per_step(
                            spec, data, ctx, spec.training.batch_size * spec.training.adversarial.discriminator_steps),
                        drop_remainder=True, strategy="none")
        evaluations = results(history)
        atomic_write_text(run_dir.path("history.csv"), history_csv(history))
        with atomic_path(run_dir.path("model.keras")) as tmp:
            generator.save(tmp)
        with atomic_path(run_dir.path("discriminator.keras")) as tmp:
            discriminator.save(tmp)

    with run_dir.stage("evaluate"):
        from dlpipe.architectures.gan import fixed_latents, generate

        first, last = evaluations[0], evaluations[-1]
        metrics = {"test": floor.scores(evaluations, spec.evaluation.metrics,
                                        extractor_info.get("inception_score_real"))}
        atomic_write_json(run_dir.path("metrics.json"), metrics)
        atomic_write_json(run_dir.path("evaluation", "generation.json"),
                          {"real_images": int(len(real)), "generated_images": count,
                           "feature_extractor": extractor_info, "fid_reference": floor.describe(),
                           "evaluations": evaluations})
        # The images the last evaluation scored, drawn again from the same latents (the
        # generator has not changed since): what `python -m dlpipe.metrics.fid RUN` reads.
        latents, labels = fixed_latents(max(count, evaluation.grid), gan.latent_size, n_classes, spec.seed)
        floor.save_samples(run_dir.root, generate(generator, latents, labels))
        shown = (f"; Inception Score {first['inception_score']:.2f} → {last['inception_score']:.2f} "
                 f"(real images: {extractor_info['inception_score_real']:.2f})" if "inception_score" in last else "")
        print(f"[dlpipe] FID {first['fid']:.2f} (epoch {first['epoch']}) → {last['fid']:.2f} (epoch "
              f"{last['epoch']}), real against real at the same counts: {floor.value:.2f}"
              f"{shown}", file=sys.stderr, flush=True)

    with run_dir.stage("export"):
        from dlpipe.exporters.generator import export_generator

        export_generator(generator, spec, data, run_dir.path("export"), metrics=metrics,
                         keras_file=run_dir.path("model.keras"))

    with run_dir.stage("report"):
        from dlpipe.report import write_report
        from dlpipe.report.plots import fid_curve

        fid_curve(evaluations, run_dir.path("plots", "fid.png"), floor.value)
        write_report(run_dir.root, model=generator)


def reexport(run, formats=None) -> dict:
    """`dlpipe export RUN_DIR [--format F] [--set export.K=V]`: model.keras (the generator)
    exported again, verified on the same seeded latent vectors as in the run."""
    from dlpipe.data.images import prepare_images
    from dlpipe.exporters.generator import export_generator

    return stages.reexport(run, formats, prepare=prepare_images, export=export_generator)


def deep_build(spec, base_dir, located):
    """`dlpipe validate --deep`: the generator (what is exported), built beside its
    discriminator from the training images' shape, so a misfit of either is reported."""
    from dlpipe.architectures import BuildProblem
    from dlpipe.architectures.gan import build_discriminator, build_generator
    from dlpipe.data.images import prepare_images

    data = prepare_images(spec, base_dir, located)
    n_classes = len(data.class_names) if data.class_names else None
    try:
        generator = build_generator(spec.model, data.shape, n_classes, data.low, data.high)
        build_discriminator(spec.model, data.shape, n_classes, data.low, data.high)
    except BuildProblem as problem:
        raise located(problem.path, problem.message) from None
    return generator
