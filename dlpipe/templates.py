"""The spec templates shipped with dlpipe (the repository's specs/ folder)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dlpipe.errors import DlpipeError


def templates_dir() -> Path:
    """specs/ as installed (dlpipe/specs), or the source tree's specs/ beside dlpipe/."""
    try:
        import dlpipe.specs as installed

        return Path(next(iter(installed.__path__)))
    except ImportError:
        return Path(__file__).resolve().parent.parent / "specs"


def names() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.yaml"))


def path(name: str) -> Path:
    candidate = templates_dir() / f"{name.removesuffix('.yaml')}.yaml"
    if not candidate.is_file():
        from dlpipe.errors import did_you_mean

        hint = did_you_mean(name, names()) or f"; choose from {', '.join(names())}"
        raise DlpipeError(f"unknown template {name!r}{hint}")
    return candidate


def describe(name: str) -> str:
    """The template's `description` line."""
    data = yaml.safe_load(path(name).read_text(encoding="utf-8")) or {}
    return str(data.get("description", "")).strip()


def write(name: str, dest: Path, force: bool = False) -> tuple[Path, Path | None]:
    """Copy a template to `dest` (a file, or a folder to put `<name>.yaml` in); its first
    line, the command that runs it, is rewritten to name the new path, and what it names by
    a relative path inside the templates folder (`companions`) is copied beside it. The template's
    `# yaml-language-server: $schema=` line names the spec's JSON Schema beside it: that file
    is written too when it is missing or an older dlpipe schema. Returns (the spec, the
    schema file written or None)."""
    source = path(name)
    target = dest / source.name if dest.is_dir() else dest
    if target.exists() and not force:
        raise DlpipeError(f"{target}: already exists (use --force to overwrite)")
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and lines[0].startswith("# dlpipe run "):
        lines[0] = f"# dlpipe run {target}\n"
    from dlpipe.rundir import atomic_write_text

    atomic_write_text(target, "".join(lines))
    _copy_companions(source, target.parent, force)
    return target, _write_schema(target.parent)


def companions(source: Path) -> list[str]:
    """What a template names by a relative path inside the templates folder (the earlier
    run a transfer-learning template starts from): copied beside the copy, so the copy runs."""
    from dlpipe.spec import load_spec
    from dlpipe.spec.paths import path_values

    folder = source.parent.resolve()
    found = []
    for _, value, _ in path_values(load_spec(source)):
        candidate = (folder / value).resolve()
        if not Path(value).is_absolute() and candidate.is_relative_to(folder) and candidate.exists():
            found.append(value)
    return found


def _copy_companions(source: Path, folder: Path, force: bool) -> None:
    import shutil

    for value in companions(source):
        origin, copy = source.parent / value, folder / value
        if copy.exists() and not force:
            continue
        if origin.is_dir():
            shutil.copytree(origin, copy, dirs_exist_ok=True)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, copy)


def _write_schema(folder: Path) -> Path | None:
    from dlpipe.rundir import atomic_write_text
    from dlpipe.spec import SCHEMA_FILE

    shipped = templates_dir() / SCHEMA_FILE
    if shipped.is_file():
        text = shipped.read_text(encoding="utf-8")
    else:  # a source tree without the generated file
        from dlpipe.spec import schema_text

        text = schema_text()
    target = folder / SCHEMA_FILE
    if target.is_file():
        try:
            current = target.read_text(encoding="utf-8")
            ours = json.loads(current).get("title") == "dlpipe spec"
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            return None  # someone else's file of that name: left alone
        if current == text or not ours:
            return None
    atomic_write_text(target, text)
    return target
