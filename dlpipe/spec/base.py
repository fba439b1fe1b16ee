"""Building blocks every spec section uses: a strict model, registry-checked names."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

import typing
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError, SchemaValidator, core_schema

from dlpipe import registry
from dlpipe.errors import did_you_mean
from dlpipe.limits import WIDTH_MAX


def _docstrings_in(klass: type) -> dict[str, str]:
    """`{field: text}` for each `name: type` line of a class body followed by a string."""
    import ast
    import inspect
    import textwrap

    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
    except (OSError, TypeError, SyntaxError):
        return {}
    return {
        node.target.id: inspect.cleandoc(following.value.value)
        for node, following in zip(body, body[1:])
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
        and isinstance(following.value.value, str)
    }


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Docstrings of cls's fields, each from the class that declares it last."""
    found: dict[str, str] = {}
    nearer: set[str] = set()  # fields (re)declared by a class nearer to cls
    for klass in cls.__mro__:
        if issubclass(klass, StrictModel):
            found.update({k: v for k, v in _docstrings_in(klass).items() if k not in nearer})
        nearer |= set(vars(klass).get("__annotations__", {}))
    return found


def _describe_fields(schema: dict, cls: type) -> None:
    # Field docstrings are read from the source only when a JSON Schema is made. Pydantic's
    # use_attribute_docstrings reads them for every class at import, the largest cost of the
    # spec layer in `dlpipe validate` (docs/benchmarks.md).
    properties = schema.get("properties", {})
    for name, text in _attribute_docstrings(cls).items():
        if name in properties:
            properties[name].setdefault("description", text)


class StrictModel(BaseModel):
    """A spec section: unknown keys are errors, values are not coerced ("3" is not 3)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_default=False,
        # A model's validator is built when first used, not at import: `dlpipe validate`
        # then builds only what its spec holds (with `ByType` unions, docs/benchmarks.md).
        defer_build=True,
        json_schema_extra=_describe_fields,  # attribute docstrings → descriptions
    )


class ByType:
    """Marks a union of spec models told apart by their `type` key, in place of
    `Field(discriminator="type")`: `Annotated[Union[A, B], ByType()]`.

    Validation and errors are those of Pydantic's discriminated union (the error locations
    name the member's tag), but a member is built only when a spec names its type. Building
    every member of every union (13 optimizers, 12 architectures, 12 sources, ...) was most
    of the time a first `dlpipe validate` took. A value without a known tag goes to the whole
    union, built then, so an unknown or missing type is reported exactly as before. The JSON
    Schema is the whole union's.
    """

    def __init__(self, key: str = "type"):
        self.key = key

    def __get_pydantic_core_schema__(self, source, handler):
        members = typing.get_args(source)
        whole = Annotated[source, Field(discriminator=self.key)]
        tags = {tag: member for member in members
                for tag in typing.get_args(member.model_fields[self.key].annotation)}
        built: dict = {}

        def validate(value):
            tag = value.get(self.key) if isinstance(value, dict) else None
            if not isinstance(tag, str) or tag not in tags:
                tag = None  # not a member's tag: the whole union words the problem
            if tag not in built:
                built[tag] = _union_validator(whole) if tag is None else _member_validator(self.key, tag, tags[tag])
            return built[tag].validate_python(value)

        # Defaults are not validated (validate_default=False), so only spec values come here.
        return core_schema.no_info_plain_validator_function(validate, metadata={
            "pydantic_js_functions": [lambda _schema, js_handler: js_handler(_union_schema(whole))]})


def _union_schema(union) -> dict:
    from pydantic import TypeAdapter

    return TypeAdapter(union).core_schema


def _union_validator(union):
    from pydantic import TypeAdapter

    return TypeAdapter(union).validator


def _member_validator(key: str, tag: str, member: type[BaseModel]) -> SchemaValidator:
    # A one-member tagged union, so that error locations hold the tag as Pydantic's own
    # discriminated union puts it there; the member's own validator does the work (its
    # ValidationError is taken apart into located errors again by pydantic-core).
    check = member.__pydantic_validator__.validate_python
    return SchemaValidator(core_schema.tagged_union_schema(
        {tag: core_schema.no_info_plain_validator_function(check)}, discriminator=key))


def unknown_name(what: str, name: str, hint: str) -> PydanticCustomError:
    # Pydantic fills {placeholders} from the context and never un-doubles "{{": pass the
    # message as a context value so that braces in a name are shown as typed.
    message = f"unknown {what} {name!r}{hint}"
    return PydanticCustomError("unknown_name", "{message}", {"message": message})


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
Width = Annotated[int, Field(gt=0, le=WIDTH_MAX)]
"""Units, filters, dimensions, kernel sizes, heads of one layer."""
Depth = Annotated[int, Field(gt=0, le=1000)]
"""A count of layers or blocks."""
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Probability = Annotated[float, Field(ge=0, lt=1)]
