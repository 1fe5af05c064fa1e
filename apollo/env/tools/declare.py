"""Declaring a tool once: `@tool` turns a typed async function into the schema the model sees
and the pydantic check its arguments pass before the function runs.

    @tool(rerun_on_resume=True)
    async def read_file(
        ctx: ToolContext,
        path: Annotated[str, Field(description="relative to the workspace")],
        start_line: Annotated[int, Field(ge=1, description="first line")] = 1,
    ) -> ToolResult:
        '''Read a text file of the workspace.'''

The function's name is the tool's name, its docstring the description, and each parameter
after `ctx` an argument: a default makes it optional, `Field` gives its description and
bounds. A method works too (`self` first); the tool is then bound to the instance it is read
from, e.g. `agent.think`.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Union, get_args, get_origin, get_type_hints, overload

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic_core import ErrorDetails

from apollo.env.task import duration_text
from apollo.env.tools.base import ToolContext, ToolResult, ToolSpec

Handler = Callable[..., Awaitable[ToolResult]]

# What the plain OpenAI function schema of an argument may say, in the order it is written.
_SCHEMA_KEYS = ("type", "minimum", "maximum", "description")
_BOUND_ERRORS = {"greater_than_equal", "less_than_equal"}
# The types an argument may have, as the refusal of a wrong value says them.
_EXPECTED = {
    "string": "must be a string",
    "integer": "must be a whole number",
    "number": "must be a number",
    "boolean": "must be true or false",
}


def _seconds(value: Any) -> Any:
    """Seconds written as a duration ('19m54s', '90s'): weak models copy the form of the
    budget footer. Anything else is left to the number check, which explains."""
    if isinstance(value, str):
        seconds = duration_text(value)
        if seconds is not None:
            return seconds
    return value


# Marks an argument in seconds, after its Field: `Annotated[float, Field(...), SECONDS]`
# takes a number or a duration text with units.
SECONDS = BeforeValidator(_seconds)


class BadArguments(ValueError):
    """Arguments a tool cannot be called with; the message says what is wrong, for the model."""


def _accepts_only_numbers(annotation: Any) -> bool:
    kinds = (
        set(get_args(annotation))
        if get_origin(annotation) in (Union, types.UnionType)
        else {annotation}
    )
    return bool(kinds & {int, float}) and bool not in kinds


class _Arguments(BaseModel):
    """Base of every tool's argument model: lax, so that "5" is accepted for a number, as
    models often send it; nothing unknown; only finite numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _bool_is_not_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Lax mode would take true for 1.
        field = cls.model_fields[info.field_name or ""]
        if isinstance(value, bool) and _accepts_only_numbers(field.annotation):
            raise ValueError("a bool is not a number")
        return value


def _plain(tool: str, name: str, prop: dict[str, Any]) -> dict[str, Any]:
    """An argument's schema as pydantic writes it, cut to the plain function-schema shape:
    no title or default, and an optional argument's `anyOf [..., null]` as its one type."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
    if "anyOf" in prop:
        branches = [b for b in prop.pop("anyOf") if b != {"type": "null"}]
        # One type besides null is an optional argument; a real union cannot be said plainly.
        prop = {**branches[0], **prop} if len(branches) == 1 else {**prop, "anyOf": branches}
    odd = sorted(set(prop) - set(_SCHEMA_KEYS))
    if odd or prop.get("type") not in _EXPECTED:
        said = ", ".join(odd) or f"type {prop.get('type')}"
        raise TypeError(
            f"tool {tool}, argument {name!r}: its schema uses {said}, which a plain function "
            "schema does not; use str, int, float or bool, with ge/le bounds"
        )
    return {k: prop[k] for k in _SCHEMA_KEYS if k in prop}


@dataclass(frozen=True, slots=True)
class Tool:
    """A declared tool: its spec for the model, its argument model, and the function."""

    spec: ToolSpec
    arguments: type[BaseModel]
    handler: Handler
    method: bool  # declared on a class: `handler` still needs the instance

    @overload
    def __get__(self, instance: None, owner: type) -> Tool: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Tool: ...

    def __get__(self, instance: object | None, owner: type) -> Tool:
        """Read from an instance, a method tool is bound to it."""
        if instance is None or not self.method:
            return self
        return replace(self, handler=types.MethodType(self.handler, instance), method=False)

    def check(self, args: Any) -> dict[str, Any]:
        """The arguments validated and converted; BadArguments says what is wrong, one
        sentence per problem, each naming the argument."""
        if not isinstance(args, dict):
            raise BadArguments(f"arguments must be a JSON object, got {type(args).__name__}")
        # A null for an optional argument means "not given".
        given = {k: v for k, v in args.items() if v is not None}
        try:
            return dict(self.arguments.model_validate(given))
        except ValidationError as exc:
            raise BadArguments(self._explain(exc.errors())) from None

    def _explain(self, errors: list[ErrorDetails]) -> str:
        props: dict[str, Any] = self.spec.parameters["properties"]
        unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
        missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing"]
        problems = []
        if unknown:
            problems.append(f"unknown argument(s): {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing required argument(s): {', '.join(map(repr, missing))}")
        for e in errors:
            if e["type"] not in ("extra_forbidden", "missing"):
                name = str(e["loc"][0])
                problems.append(
                    f"argument {name!r} {_expected(e, props[name])}, got {e['input']!r}"
                )
        return "; ".join(problems)

    async def __call__(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        """Run the tool on arguments `check` returned."""
        return await self.handler(ctx, **args)


def _expected(error: ErrorDetails, prop: dict[str, Any]) -> str:
    """What the argument must be, in words, e.g. "must be between 0 and 600"."""
    lo, hi = prop.get("minimum"), prop.get("maximum")
    if error["type"] in _BOUND_ERRORS:
        if lo is not None and hi is not None:
            return f"must be between {lo} and {hi}"
        return f"must be at least {lo}" if lo is not None else f"must be at most {hi}"
    if error["type"] == "finite_number":
        return "must be a finite number"
    return _EXPECTED[prop["type"]]


def _declare(fn: Handler, rerun_on_resume: bool) -> Tool:
    hints = get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())
    method = bool(params) and params[0].name == "self"
    rest = params[1:] if method else params
    if not rest or hints.get(rest[0].name) is not ToolContext:
        raise TypeError(f"tool {fn.__name__}: the first parameter must be `ctx: ToolContext`")
    fields: dict[str, Any] = {}
    for p in rest[1:]:
        if p.name not in hints or p.kind is not p.POSITIONAL_OR_KEYWORD:
            raise TypeError(
                f"tool {fn.__name__}: argument {p.name!r} must be a plain parameter with a type"
            )
        fields[p.name] = (hints[p.name], ... if p.default is p.empty else p.default)
    if not fn.__doc__:
        raise TypeError(f"tool {fn.__name__}: its docstring is the description the model reads")
    arguments = create_model(f"{fn.__name__}_arguments", __base__=_Arguments, **fields)
    derived = arguments.model_json_schema()
    parameters = {
        "type": "object",
        "properties": {
            n: _plain(fn.__name__, n, p) for n, p in derived.get("properties", {}).items()
        },
        "required": derived.get("required", []),
    }
    description = " ".join(fn.__doc__.split())
    spec = ToolSpec(fn.__name__, description, parameters, rerun_on_resume)
    return Tool(spec, arguments, fn, method)


def tool(*, rerun_on_resume: bool = False) -> Callable[[Handler], Tool]:
    """Declare an async function (or method) as a tool; see the module docstring.

    `rerun_on_resume`: the tool only reads, so a call a crash cut short is made again on
    resume instead of being answered "interrupted"."""

    def declare(fn: Handler) -> Tool:
        return _declare(fn, rerun_on_resume)

    return declare
