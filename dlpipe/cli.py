"""The `dlpipe` command. Each command parses, calls the library, prints.

Importing this module must not import TensorFlow: `dlpipe --help` and `dlpipe validate`
answer in a fraction of a second. Stages import Keras when they run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dlpipe import __version__
from dlpipe.errors import EXIT_FAILED, DlpipeError, SpecError

_SET_HELP = "Override a spec key, e.g. --set training.epochs=5 (VALUE is YAML). Repeatable."


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
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlpipe")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Declarative deep learning: one YAML spec → a trained, evaluated, exported Keras model.

    \b
    Start from a template:
      dlpipe templates                                   list them
      dlpipe init image-classification my.yaml           copy one
      dlpipe validate my.yaml                            check it (no TensorFlow, < 1 s)
      dlpipe run my.yaml                                 train, evaluate, export
    """
    ctx.meta["dlpipe.debug"] = debug


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: FILE:LINE:COL: key: message per problem; json: a list of problems.")
def validate(specs: tuple[str, ...], overrides: tuple[str, ...], fmt: str) -> None:
    """Check SPEC files and report every problem of every file at once.

    Exit code 0 when all are valid, 1 otherwise. Nothing is trained or imported beyond
    the spec layer, so this is fast enough for an editor hook or a pre-commit check.
    """
    from dlpipe.spec import check_files

    problems = check_files(specs, overrides)
    if fmt == "json":
        click.echo(json.dumps([p.to_dict() for p in problems], indent=2))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        bad = {p.file for p in problems}
        for spec in specs:
            if spec not in bad:
                click.echo(f"{spec}: valid")
    if problems:
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default: runs/<name>-<YYYYmmdd-HHMMSS>).")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in --out from its last checkpoint (a fresh run if there is none).")
def run(spec: str, overrides: tuple[str, ...], out: str | None, resume: bool) -> None:
    """Run every stage of SPEC: data, build, train, evaluate, export.

    Prints the run directory; everything the run produced is in it (metrics.json,
    model.keras, export/, run.json with per-stage timings).
    """
    from dlpipe.runner import run_spec

    run_dir = run_spec(spec, overrides=overrides, out=out, command=["dlpipe", *sys.argv[1:]], resume=resume)
    click.echo(str(run_dir))


@main.command()
def templates() -> None:
    """List the spec templates, one line each."""
    from dlpipe import templates as shipped

    names = shipped.names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {shipped.describe(name)}")


@main.command()
@click.argument("template")
@click.argument("dest", type=click.Path(), default=".")
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def init(template: str, dest: str, force: bool) -> None:
    """Copy TEMPLATE to DEST (a file, or a folder; default: the current folder)."""
    from dlpipe import templates as shipped

    target = shipped.write(template, Path(dest), force=force)
    click.echo(f"wrote {target}; run it with: dlpipe run {target}")


@main.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editors and other tools)."""
    from dlpipe.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
