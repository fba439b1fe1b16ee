"""Loading `.keras` files safely: the one place dlpipe turns a model file into a model.

Every `.keras` file dlpipe reads (a run's model.keras, an export's reload, an earlier run's
classifier as a GAN's feature extractor) is loaded by `load_keras_model`, after importing
dlpipe/custom_objects.py, which registers every custom layer dlpipe's models hold.

A `.keras` file is a zip of a JSON config and weights, and loading it can run code: a
`Lambda` layer stores Python bytecode that runs when the file is loaded. Keras refuses such
layers in safe mode; dlpipe always loads in safe mode (predict, evaluate, export and its
verification, a rerun reusing a trained model) and turns the refusal into one line. Turning
safe mode off runs whatever code the file holds with your permissions: do it only for a
file you made yourself or got from someone you trust. The opt-ins are named for that:
`dlpipe predict --allow-unsafe-deserialization`, and `allow_unsafe_deserialization: true`
at the top of a spec (for `dlpipe evaluate`/`export` on its run, and a rerun into it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dlpipe.errors import DlpipeError

UNSAFE_HINT = ("it holds a Lambda layer or other Python code, which would run on loading; "
               "if you trust the file's source, opt in with {opt_in}")


class UnsafeModelError(DlpipeError):
    """A model file that safe mode refuses to load."""


def load_keras_model(path: Path | str, *, allow_unsafe: bool = False, imports: Sequence[str] = (),
                     opt_in: str = "allow_unsafe_deserialization: true in the spec"):
    """Load a `.keras` file uncompiled, in safe mode unless `allow_unsafe`. `imports`: the
    modules a graph model's custom layers come from (model.allow_imports), imported first
    so that their registered classes resolve, each only if the command line allowed it
    (dlpipe/imports.py)."""
    check_archive(path)
    import keras

    import dlpipe.custom_objects  # noqa: F401  registers every Keras object dlpipe defines

    from dlpipe import imports as allowed_imports

    for name in imports:
        try:
            allowed_imports.import_module(name, where=f"{path}: ")
        except ImportError as err:
            raise DlpipeError(f"{path}: cannot import {name!r} for its custom layers: {err}") from None
    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe, compile=False)
    except Exception as err:  # noqa: BLE001  a tampered file fails anywhere inside Keras: one line, whatever it is
        text = str(err)
        if isinstance(err, ValueError) and ("safe_mode" in text or "arbitrary code" in text
                                            or "unsafe" in text.lower()):
            raise UnsafeModelError(f"{path}: refused to load the model: "
                                   + UNSAFE_HINT.format(opt_in=opt_in)) from None
        raise DlpipeError(f"{path}: cannot load the model: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    """The first line of an error's message, named by its type where the message alone
    (a KeyError's `'config'`) would not say what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    if lines and not isinstance(err, (ValueError, TypeError, OSError)):
        text = f"{type(err).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


def check_archive(path: Path | str) -> None:
    """Refuse a `.keras` archive (a zip) that would unzip to more than this machine should
    hold, before Keras reads it: its JSON (config, metadata) over KERAS_MAX_CONFIG_BYTES, any
    member that inflates more than KERAS_MAX_RATIO times past that size (Keras stores its
    members uncompressed), or more than KERAS_MAX_UNCOMPRESSED_BYTES in all. Files that are
    not zips (a legacy .h5, a SavedModel folder) are left to Keras."""
    import zipfile

    from dlpipe.limits import KERAS_MAX_CONFIG_BYTES, KERAS_MAX_RATIO, KERAS_MAX_UNCOMPRESSED_BYTES

    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise DlpipeError(f"{path}: cannot load the model: not a readable .keras archive ({err})") from None
    total = 0
    for member in members:
        total += member.file_size
        size = f"{member.file_size:,} bytes"
        if member.filename.endswith(".json") and member.file_size > KERAS_MAX_CONFIG_BYTES:
            raise DlpipeError(f"{path}: cannot load the model: its {member.filename} unzips to {size}, more "
                              f"than the {KERAS_MAX_CONFIG_BYTES >> 20} MiB a model's description needs")
        if member.file_size > KERAS_MAX_CONFIG_BYTES and member.file_size > KERAS_MAX_RATIO * member.compress_size:
            raise DlpipeError(f"{path}: cannot load the model: its {member.filename} unzips to {size} from "
                              f"{member.compress_size:,} (a zip bomb?)")
    if total > KERAS_MAX_UNCOMPRESSED_BYTES:
        raise DlpipeError(f"{path}: cannot load the model: it unzips to {total:,} bytes, more than "
                          f"{KERAS_MAX_UNCOMPRESSED_BYTES >> 30} GiB")
