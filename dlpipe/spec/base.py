"""Building blocks every spec section uses: a strict model, registry-checked names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from dlpipe import registry


class StrictModel(BaseModel):
    """A spec section: unknown keys are errors, values are not coerced ("3" is not 3)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_default=False,
        use_attribute_docstrings=True,
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'adam'?"` when a choice is close to `word`, else `""`."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def unknown_name(what: str, name: str, hint: str) -> PydanticCustomError:
    # Pydantic formats messages with {placeholders}: escape the braces a name may contain.
    message = f"unknown {what} {name!r}{hint}".replace("{", "{{").replace("}", "}}")
    return PydanticCustomError("unknown_name", message)


def _check_name(kind: str, what: str):
    known = registry.names(kind)

    def check(name: str) -> str:
        if name not in known:
            hint = did_you_mean(name, known) or f"; choose from {', '.join(known)}"
            raise unknown_name(what, name, hint)
        return name

    return check


def Name(kind: str, what: str | None = None):
    """A string that must be a registered name of `kind` (checked without importing)."""
    return Annotated[
        str,
        AfterValidator(_check_name(kind, what or kind.split(":")[0])),
        WithJsonSchema({"type": "string", "enum": list(registry.names(kind))}),
    ]


Activation = Name("activation")
Initializer = Name("initializer")
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Probability = Annotated[float, Field(ge=0, lt=1)]
