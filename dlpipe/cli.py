"""The `dlpipe` command. Each command parses, calls the library, prints.

Importing this module must not import TensorFlow: `dlpipe --help` and `dlpipe validate`
answer in a fraction of a second. Stages import Keras when they run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dlpipe.version import __version__
from dlpipe import registry
from dlpipe.errors import EXIT_FAILED, DlpipeError, SpecError

_SET_HELP = "Override a spec key, e.g. --set training.epochs=5 (VALUE is YAML). Repeatable."


def _allow_imports(command):
    """The --allow-imports option: the modules whose code the person running the command
    trusts. A spec's model.allow_imports says what it needs; only this allows it."""
    return click.option(
        "--allow-imports", "allow_imports", multiple=True, metavar="MODULE",
        help="Allow importing MODULE (and running its code) for custom layers the spec's model.allow_imports "
             "lists. Repeatable. Without it a spec never imports anything outside Keras.")(command)


_QUICK_EXIT = False
"""Set by a command whose process may end without tearing the interpreter down (see `run`)."""
_OWN_PROCESS = False
"""True in the `dlpipe` executable (`run` below), not when a test or a program calls `main`."""
_RUN_FINISHED = False
"""Set when `dlpipe run` completed in the executable: `run` below ends the process quickly."""


class _Group(click.Group):
    """Turns user errors into one line and exit code 1; --debug keeps the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DlpipeError as err:
            if ctx.meta.get("dlpipe.debug"):
                raise
            for line in str(err).splitlines() or ["failed"]:
                click.echo(line if isinstance(err, SpecError) else f"error: {line}", err=True)
            ctx.exit(EXIT_FAILED)
        except KeyboardInterrupt as err:  # dlpipe.errors.Interrupted: SIGINT 130, SIGTERM 143
            if ctx.meta.get("dlpipe.debug"):
                raise
            click.echo(f"error: {err}" if str(err) else "interrupted", err=True)
            ctx.exit(getattr(err, "exit_code", 130))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlpipe")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines or bars for long steps (reading data, "
              "export conversions, tuning trials, generative evaluations); results and errors still print.")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Declarative deep learning: one YAML spec → a trained, evaluated, exported Keras model.

    \b
    Start from a template:
      dlpipe templates                                   list them
      dlpipe init image-classification my.yaml           copy one
      dlpipe validate my.yaml                            check it (no TensorFlow, < 1 s)
      dlpipe run my.yaml                                 train, evaluate, export
    """
    from dlpipe import progress

    ctx.meta["dlpipe.debug"] = debug
    progress.set_quiet(quiet)


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: FILE:LINE:COL: key: message per problem; json: a list of problems.")
@click.option("--deep", is_flag=True, help="Also read the data and build the model (imports TensorFlow): "
              "layers, output shapes, parameter count; shape mismatches become located problems.")
@click.option("--no-cache", is_flag=True, help="Check every file afresh instead of replaying the remembered "
              "result of an unchanged file (kept under $DLPIPE_CACHE_DIR or ~/.cache/dlpipe).")
@_allow_imports
def validate(specs: tuple[str, ...], overrides: tuple[str, ...], fmt: str, deep: bool, no_cache: bool,
             allow_imports: tuple[str, ...]) -> None:
    """Check SPEC files and report every problem of every file at once.

    Exit code 0 when all are valid, 1 otherwise. Nothing is trained or imported beyond
    the spec layer, so this is fast enough for an editor hook or a pre-commit check.
    """
    import gc
    import json

    global _QUICK_EXIT
    # One file at a time: a problem in a --set override is located at `--set`, not at
    # the file, yet makes that file invalid. No cyclic garbage collection meanwhile: importing
    # Pydantic and building the spec models makes many objects and no cycles worth freeing,
    # and each collection walks them all again (about a tenth of a first check).
    collecting = gc.isenabled()
    gc.disable()
    try:
        found = {spec: _check(spec, overrides, cache=not no_cache) for spec in specs}
    finally:
        if collecting:
            gc.enable()
    _QUICK_EXIT = not deep
    if deep:
        from dlpipe.deepcheck import activate_backend, deep_check

        activate_backend([spec for spec in specs if not found[spec]], overrides)

        from dlpipe.imports import allowed

        for spec in specs:
            if not found[spec]:  # building needs a valid spec
                with allowed(allow_imports):
                    found[spec] = deep_check([spec], overrides, echo=click.echo if fmt == "text" else None)
    problems = [problem for spec in specs for problem in found[spec]]
    if fmt == "json":
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        for spec in specs:
            if not found[spec]:
                click.echo(f"{spec}: valid")
    if problems:
        sys.exit(EXIT_FAILED)


def _check(spec: str, overrides: tuple[str, ...], cache: bool) -> list:
    """One file's problems (dlpipe.validate): replayed when these exact bytes were checked
    before by this code and the data files it looked at look the same
    (dlpipe/validation_cache.py), otherwise checked — which imports Pydantic."""
    from dlpipe.api import validate as check

    return check(spec, overrides, cache=cache)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default: runs/<name>-<YYYYmmdd-HHMMSS>).")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in --out from its last checkpoint (a fresh run if there is none).")
@click.option("--no-cache", is_flag=True,
              help="Run every stage, even those an earlier run into --out did with the same spec sections.")
@_allow_imports
def run(spec: str, overrides: tuple[str, ...], out: str | None, resume: bool, no_cache: bool,
        allow_imports: tuple[str, ...]) -> None:
    """Run every stage of SPEC: data, build, train, evaluate, export.

    Prints the run directory; everything the run produced is in it (metrics.json,
    model.keras, export/, run.json with per-stage timings). Given an --out that holds a
    run, runs into it again, reusing each stage whose inputs did not change (change only
    export: no data preparation and no training); run.json tells which were reused.
    SIGINT/SIGTERM stop it with run.json `interrupted`; --resume continues.
    """
    from dlpipe import collection
    from dlpipe.api import run as run_spec

    if _OWN_PROCESS:
        collection.pause()  # until Keras is imported (dlpipe/collection.py)
    finished = run_spec(spec, overrides, out, command=["dlpipe", *sys.argv[1:]], resume=resume, cache=not no_cache,
                        allow_imports=allow_imports)
    click.echo(str(finished.path))
    global _RUN_FINISHED
    _RUN_FINISHED = _OWN_PROCESS


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials this command runs (default: tuning.trials). A rerun adds as many more.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Start no trial after this many seconds (default: tuning.timeout).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage shared by every worker of the study: sqlite:///PATH, "
                   "postgresql://USER:PASSWORD@HOST/DB, mysql+pymysql://USER:PASSWORD@HOST/DB. "
                   "Default: study.db in the study directory.")
@click.option("--study-name", default=None, help="Default: the spec's name.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Study directory (default: runs/<name>-tune); rerunning continues the study.")
@_allow_imports
def tune(spec: str, overrides: tuple[str, ...], trials: int | None, timeout: float | None,
         storage: str | None, study_name: str | None, out: str | None, allow_imports: tuple[str, ...]) -> None:
    """Search hyperparameters of SPEC: each trial is a `dlpipe run` with some keys changed.

    The keys, their ranges, the objective, sampler (grid, random, bayesian) and pruner
    come from the spec's `tuning` section; without one, the learning rate, dropout and
    batch size are searched. Writes best.yaml (run it to repeat the best trial),
    study.json, trials.csv and report.html into the study directory and prints it.
    """
    from dlpipe.imports import allowed
    from dlpipe.tuning import tune as run_tuning

    with allowed(allow_imports):
        study_dir = run_tuning(spec, overrides=overrides, trials=trials, timeout=timeout, storage=storage,
                               study_name=study_name, out=out, command=["dlpipe", *sys.argv[1:]])
    click.echo(str(study_dir))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "formats", multiple=True, type=click.Choice(registry.names("exporter")),
              help="Export only this format (repeatable); default: the spec's export.formats.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override an export.* key, e.g. --set export.tflite.quantization=[float32,int8].")
@_allow_imports
def export(run_dir: str, formats: tuple[str, ...], overrides: tuple[str, ...], allow_imports: tuple[str, ...]) -> None:
    """Export RUN_DIR's trained model again, without training.

    Loads RUN_DIR/model.keras, rebuilds the data from RUN_DIR/spec.yaml (held-out
    examples to verify on, training examples to calibrate int8), then writes, verifies
    and describes each format exactly as `dlpipe run` does: export/<format>/,
    export/verification.json (each format's test metrics, bytes, gzip bytes and latency
    computed again with its own runtime), export/model_card.md and .json.
    """
    from dlpipe.backend import activate_for

    activate_for(run_dir)  # a JAX run on JAX, without TensorFlow
    from dlpipe.finished import export_run
    from dlpipe.imports import allowed

    with allowed(allow_imports):
        results = export_run(run_dir, formats=formats or None, overrides=overrides)
    for key, entry in results.items():
        verdict = {True: "verified", False: "FAILED", None: "not verified"}[entry.get("passed")]
        numbers = "".join(f"  {name.replace('_', ' ')} {entry[name]:.3g}" for name in ("max_abs_diff", "agreement")
                          if name in entry)
        scored = [f"test {name} {value:.4g}" for name, value in (entry.get("test_metrics") or {}).items()
                  if isinstance(value, float)][:2]
        scored += [f"{entry['gzip_bytes']:,} gzip bytes"] if "gzip_bytes" in entry else []
        scored += [f"{entry['latency']['median_ms']:.3g} ms per example"] if "latency" in entry else []
        shown = f"  ({', '.join(scored)})" if scored else ""
        click.echo(f"{key:<16} {verdict:<12} {entry.get('path') or entry.get('error')}{numbers}{shown}")


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.argument("input", type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write here; .csv or .jsonl chooses the format. Default: CSV on stdout.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Examples run at once.")
@click.option("--allow-unsafe-deserialization", "allow_unsafe", is_flag=True,
              help="Load a .keras MODEL with Keras safe mode off. A Lambda layer in it runs its Python code "
                   "on loading, with your permissions: only for files you trust. Without it such a file is refused.")
@click.option("--every-window", is_flag=True,
              help="A forecaster given its series forecasts from every window of it (one row per window, "
                   "named by its last step), not only from the series' end.")
@click.option("--explain", is_flag=True,
              help="Also name the 3 features that moved each prediction most (integrated gradients of the "
                   "predicted class's probability or the value; needs the Keras model).")
def predict(model: str, input: str, out: str | None, batch_size: int, allow_unsafe: bool,
            every_window: bool, explain: bool) -> None:
    """Predict INPUT with MODEL: class names and probabilities (a multi-label model: the set
    of classes), values, or a forecast.

    \b
    MODEL  a run directory, an export directory (its SavedModel, ONNX, TFLite or Keras
           file), a SavedModel folder, or a .keras, .onnx or .tflite file
    INPUT  raw data as in training: a .csv or .jsonl file (a column or key per input),
           or image files (a file or a folder); images are converted to the model's
           channels and size and mapped onto the training images' value range.
           A forecaster takes its series (one row per step, as trained from) and
           forecasts the `horizon` steps after its end: columns forecast_1..H
    """
    from dlpipe.backend import activate_for

    activate_for(model)  # a JAX run's model on JAX, without TensorFlow
    from dlpipe.prediction import predict_file

    count = predict_file(model, input, out, batch_size=batch_size, allow_unsafe=allow_unsafe,
                         every_window=every_window, explain=explain)
    if out:
        click.echo(f"wrote {count} predictions to {out}", err=True)


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; put a proxy with TLS in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="TensorFlow Serving's REST port by default.")
@click.option("--name", default=None, help="The model's name in /v1/models/NAME (default: the spec's name).")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most examples of concurrent requests run in one model call; 1: no batching.")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="How long a request waits for others to join its batch.")
@click.option("--max-body", type=click.IntRange(min=1), default=4 << 20, show_default=True, metavar="BYTES",
              help="Larger request bodies are refused (400).")
@click.option("--allow-unsafe-deserialization", "allow_unsafe", is_flag=True,
              help="As for dlpipe predict: load a .keras MODEL with Keras safe mode off (files you trust only).")
def serve(model: str, host: str, port: int, name: str | None, max_batch: int, max_wait_ms: float, max_body: int,
          allow_unsafe: bool) -> None:
    """Serve MODEL over HTTP with TensorFlow Serving's REST API, until SIGTERM or Ctrl-C.

    \b
    MODEL  a run directory, an export directory, a SavedModel folder or a .keras file
    POST /v1/models/NAME:predict   {"instances": [{"input": value, ...}, ...]} or {"inputs": {...}}
    GET  /v1/models/NAME[/metadata], /healthz
    Inputs are raw, as `dlpipe predict` reads them (images as base64 or {"b64": ...}); each
    prediction is its record: class name and probabilities, or values. A bad request gets a
    400 with one line; concurrent requests are batched (needs `pip install 'dlpipe[serve]'`).
    """
    from dlpipe.backend import activate_for

    activate_for(model)  # a JAX run's model on JAX, without TensorFlow
    from dlpipe.serving import serve as run_server

    run_server(model, host=host, port=port, name=name, max_batch=max_batch, max_wait_ms=max_wait_ms,
               max_body=max_body, allow_unsafe=allow_unsafe)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data", type=click.Path(dir_okay=False), default=None,
              help="A CSV of new labeled examples (the run's feature and target columns). "
                   "Default: the run's validation and test splits, rebuilt from its spec.")
@_allow_imports
def evaluate(run_dir: str, data: str | None, allow_imports: tuple[str, ...]) -> None:
    """Evaluate the trained model of RUN_DIR again, without training.

    Prints the metrics, then the folder holding them (RUN_DIR/evaluations/<time>/, with
    metrics.json and report.html); the run's own metrics.json is left as it is.
    """
    from dlpipe.backend import activate_for

    activate_for(run_dir)  # a JAX run on JAX, without TensorFlow
    from dlpipe.evaluation import evaluate_run
    from dlpipe.imports import allowed

    with allowed(allow_imports):
        result = evaluate_run(run_dir, data)
    for split, values in result.metrics.items():
        for name, value in values.items():
            click.echo(f"{split}\t{name}\t{value:.6g}")
    click.echo(str(result.folder))


def _rows(ctx: click.Context, param: click.Parameter, value: str | None):
    """--rows 3 (the first three test rows) or --rows 0,7,12 (those rows)."""
    if value is None:
        return None
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected a count (3) or row positions (0,7,12), got {value!r}") from None
    if any(n < 0 for n in numbers) or (len(numbers) == 1 and "," not in value and numbers[0] == 0):
        raise click.BadParameter(f"expected a positive count or row positions from 0, got {value!r}")
    if len(numbers) == 1 and "," not in value:
        return numbers[0]
    return numbers


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--data", "data", type=click.Path(exists=True), default=None,
              help="Raw rows to explain instead of the run's test split: CSV, JSONL, an image or a folder of "
                   "images, as `dlpipe predict` reads them.")
@click.option("--method", "methods", multiple=True,
              type=click.Choice(["integrated_gradients", "saliency", "permutation", "shap"]),
              help="Repeatable. Default: the spec's evaluation.explain.methods, else those that fit the inputs.")
@click.option("--rows", callback=_rows, default=None, metavar="N|I,J,...",
              help="Local explanations: the first N rows, or these row positions (from 0). Default: the spec's, else 3.")
def explain(run_dir: str, data: str | None, methods: tuple[str, ...], rows) -> None:
    """Explain the trained model of RUN_DIR: global importance per feature and local
    explanations of chosen rows.

    \b
    Without --data: the run's test split, into RUN_DIR/explanations/ (a JSON file per
    method), and report.html is written again with an Explanations section.
    With --data: those rows, into RUN_DIR/explanations/data-<time>/ with a report.html.
    Prints the most important features of each method, then the folder.
    """
    from dlpipe.explanation import explain_run, top_features

    result = explain_run(run_dir, data, list(methods) or None, rows)
    for line in top_features(result.index, result.folder):
        click.echo(line)
    click.echo(str(result.folder))


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write one self-contained HTML page (e.g. compare.html): metrics, spec differences, "
                   "learning curves overlaid.")
def compare(runs: tuple[str, ...], out: str | None) -> None:
    """Put RUNS side by side: metrics (best of each row marked *), the spec keys whose values
    differ, and which learning curves there are. No TensorFlow: read from the run directories."""
    from dlpipe.compare import compare as line_up, text, write_page

    comparison = line_up(list(runs))
    click.echo(text(comparison))
    if out:
        click.echo(f"wrote {write_page(comparison, out)}", err=True)


@main.command()
def templates() -> None:
    """List the spec templates, one line each."""
    from dlpipe import templates as shipped

    names = shipped.names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {shipped.describe(name)}")


def _template_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of `dlpipe init <TAB>` (see README, "Editors and shells")."""
    from dlpipe import templates as shipped

    return [name for name in shipped.names() if name.startswith(incomplete)]


@main.command()
@click.argument("template", shell_complete=_template_names)
@click.argument("dest", type=click.Path(), default=".")
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def init(template: str, dest: str, force: bool) -> None:
    """Copy TEMPLATE to DEST (a file, or a folder; default: the current folder)."""
    from dlpipe import templates as shipped

    target, schema_file = shipped.write(template, Path(dest), force=force)
    click.echo(f"wrote {target}; run it with: dlpipe run {target}")
    if schema_file is not None:
        click.echo(f"wrote {schema_file}: the spec's JSON Schema, which the template's "
                   "yaml-language-server line points editors at")


@main.command()
@click.option("--out", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Write the schema to PATH (e.g. dlpipe-spec.schema.json beside your specs) "
                   "instead of printing it.")
def schema(out: str | None) -> None:
    """Print the spec's JSON Schema (for editors and other tools).

    \b
    VS Code (YAML extension), Neovim and other yaml-language-server editors:
      dlpipe schema --out dlpipe-spec.schema.json
    and the spec's line `# yaml-language-server: $schema=dlpipe-spec.schema.json`
    (a path relative to the spec file; the templates carry this line).
    """
    from dlpipe.spec import schema_text

    text = schema_text()
    if out is None:
        click.echo(text, nl=False)
        return
    from dlpipe.rundir import atomic_write_text

    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(out), text)
    except OSError as err:
        raise DlpipeError(f"{out}: cannot write the schema: {err.strerror}") from None
    click.echo(f"wrote {out}")


def run() -> None:
    """The `dlpipe` executable and `python -m dlpipe`: `main` in a process of its own."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    try:
        main(prog_name="dlpipe")
    except SystemExit as done:
        if _RUN_FINISHED and done.code in (None, 0):
            _end_finished_run()
        if not _QUICK_EXIT:
            raise
        # A command that only checked specs: all it had to say is printed and every file it
        # wrote is closed. Freeing Pydantic's and the spec models' objects one by one at
        # interpreter exit took about a fifth of a first `dlpipe validate`
        # (docs/benchmarks.md); os._exit skips that.
        import os

        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else (0 if done.code is None else 1))


def _end_finished_run() -> None:
    """A completed `dlpipe run`: every file of the run directory is written (atomically) and
    closed, and the lock released. What is left to Python's own exit is freeing the objects of
    Keras, JAX or TensorFlow, scikit-learn and matplotlib one by one (about 0.4-0.5 s of CPU
    on this machine). So: wait for any non-daemon thread (as Python's exit does), run the
    `atexit` handlers (logging's flush, weakref finalizers, the libraries' own), flush stdout
    and stderr, and end the process with os._exit(0). Without CPython's `atexit._run_exitfuncs`
    the process exits as usual."""
    import atexit
    import os
    import threading

    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None:
        return
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    run_exit_functions()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    run()
