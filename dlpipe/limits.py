"""The bounds dlpipe puts on what it reads, in one place.

A spec, an image or a model file may come from someone else. Each bound below is far above
anything a real input needs and far below what would exhaust this machine, so that a hostile
or broken input is refused with one line instead of hanging or running out of memory.
Standard library only: the CLI reads specs through here before Pydantic is imported.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SPEC_MAX_BYTES = 1 << 20
"""A spec file is at most 1 MiB (the templates are 2–4 KiB)."""

YAML_MAX_ALIAS_VALUES = 100_000
"""Values YAML aliases (`*name`) may add to a spec in all; a "billion laughs" adds 9^depth."""

YAML_MAX_DEPTH = 64
"""Nesting depth of a spec's YAML (the deepest template nests 5 levels)."""

SPEC_INT_MAX = 2**31 - 1
"""Integers in a spec fit in 32 bits; narrower bounds per field (epochs, units) in the spec models."""

EPOCHS_MAX = 1_000_000
BATCH_SIZE_MAX = 1 << 20
WIDTH_MAX = 1 << 16
"""Units, filters and dimensions of one layer (a 65,536-wide dense layer on a 65,536-wide
input already holds 4.3 billion weights)."""

IMAGE_MAX_PIXELS = 1 << 26
"""Pixels of one image file (67 million: 8192 × 8192), checked from its header before decoding."""

KERAS_MAX_CONFIG_BYTES = 64 << 20
"""Uncompressed size of the JSON members (config, metadata) of a `.keras` archive."""

KERAS_MAX_UNCOMPRESSED_BYTES = 32 << 30
"""Uncompressed size of a whole `.keras` archive (weights included)."""

KERAS_MAX_RATIO = 200
"""How much more a `.keras` archive's weights may unzip to than their compressed size
(float weights compress about 1.1×; a zero-filled layer about 1000×, hence the allowance
below 1 MiB)."""

TRAINING_BYTES_PER_PARAMETER = 16
"""Memory one float32 parameter takes in training: the weight, its gradient and two
optimizer slots (Adam's moments); `validate --deep` refuses a model whose parameters alone
would not fit in this machine's memory."""


class TooLarge(Exception):
    """An input over one of the bounds; the message says which (no file name in it)."""


def read_spec_bytes(path: str | Path) -> bytes:
    """The bytes of a spec file: a regular file of at most SPEC_MAX_BYTES, read without ever
    holding more than that (a device such as /dev/zero, a pipe or a growing file is refused).
    Raises OSError as `open` does, TooLarge, or IsADirectoryError for a folder."""
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; regular files ignore it.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(mode):
            raise TooLarge("not a regular file (a device, pipe or socket); a spec is a YAML file")
        data = handle.read(SPEC_MAX_BYTES + 1)
    if len(data) > SPEC_MAX_BYTES:
        raise TooLarge(f"the file is larger than {SPEC_MAX_BYTES >> 20} MiB; a spec is far smaller")
    return data
