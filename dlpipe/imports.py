"""Which Python modules dlpipe may import for a spec: only those the spec lists under
`model.allow_imports` AND the person running dlpipe allowed on the command line
(`--allow-imports MODULE`, on run, tune, validate --deep, evaluate and export).

Importing a module runs its code. A spec is data that travels (downloaded, shared, pasted
into an issue), so its own `allow_imports` is a declaration of what it needs, never a
permission: a spec alone imports nothing. The command line is where the person running it
says which code they trust. Standard library only.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator

from dlpipe.errors import DlpipeError

_allowed: set[str] = set()


@contextlib.contextmanager
def allowed(modules: Iterable[str]) -> Iterator[None]:
    """Allow importing `modules` while the block runs (the CLI wraps each command in it)."""
    added = set(modules) - _allowed
    _allowed.update(added)
    try:
        yield
    finally:
        _allowed.difference_update(added)


def is_allowed(module: str) -> bool:
    return module in _allowed


def refusal(module: str) -> str:
    return (f"importing {module!r} runs its code; a spec alone never allows that: add --allow-imports "
            f"{module} to the command if you trust it")


def import_module(module: str, where: str = ""):
    """Import an allowed module; a DlpipeError (`where`: a prefix naming the file) otherwise."""
    if not is_allowed(module):
        raise DlpipeError(f"{where}{refusal(module)}")
    return importlib.import_module(module)


def needed(spec) -> list[tuple[tuple, str]]:
    """(spec path, module) of each module the spec's model lists under allow_imports and one of
    its layers comes from (`module:Class`): a graph model's, or a GAN's generator and
    discriminator graphs'. A module listed but used by no layer is never imported."""
    found = []
    model = getattr(spec, "model", None)
    for path, part in [(("model",), model), *((("model", name), getattr(model, name, None))
                                              for name in ("generator", "discriminator"))]:
        used = {node.layer.partition(":")[0] for node in getattr(part, "nodes", None) or () if ":" in node.layer}
        for k, module in enumerate(getattr(part, "allow_imports", None) or ()):
            if module in used:
                found.append(((*path, "allow_imports", k), module))
    return found


def refused_in(spec) -> list[tuple[tuple, str]]:
    """(spec path, message) for each module the spec needs that the command line did not allow."""
    return [(path, refusal(module)) for path, module in needed(spec) if not is_allowed(module)]


def check(spec, document) -> None:
    """Raise a SpecError locating each module the spec needs and the command line did not allow."""
    from dlpipe.errors import SpecError
    from dlpipe.spec import locate

    refused = refused_in(spec)
    if refused:
        raise SpecError([locate(document, path, message) for path, message in refused])
