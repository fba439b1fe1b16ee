"""The `export` section: formats to write and how strictly to verify each one."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import Field

from dlpipe.spec.base import Name, PositiveFloat, PositiveInt, StrictModel


class Export(StrictModel):
    formats: list[Name("exporter", "export format")] = ["keras", "saved_model"]
    """Each format is loaded back with its own runtime and compared with the trained model."""
    verify: Literal["error", "warn", "off"] = "error"
    """What a format outside `tolerance` does: fail the run, warn, or skip checking."""
    tolerance: PositiveFloat = 1e-4
    """Largest absolute difference allowed between the export's and the model's outputs."""
    samples: Annotated[PositiveInt, Field(le=100_000)] = 64
    """Held-out (test split) examples used for the comparison."""
