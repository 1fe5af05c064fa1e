"""The agent's toolbox: looks tools up, checks arguments against their schemas, and turns
every mistake or crash into an error result that tells the model how to call it right."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apollo.env.tools import commands, files, sessions, wait
from apollo.env.tools.base import Handler, ToolContext, ToolResult, ToolSpec

_FAMILIES = (commands, sessions, files, wait)


class _BadArguments(ValueError):
    pass


def usage(spec: ToolSpec) -> str:
    """A one-line signature plus one line per parameter, e.g. `run(command: string, ...)`."""
    props: dict[str, Any] = spec.parameters.get("properties", {})
    required = set(spec.parameters.get("required", []))
    sig = ", ".join(
        f"{name}{'' if name in required else '?'}: {schema.get('type', 'any')}"
        for name, schema in props.items()
    )
    lines = [f"{spec.name}({sig}): {spec.description}"]
    lines += [f"  {n}: {s['description']}" for n, s in props.items() if "description" in s]
    return "\n".join(lines)


def _coerce(name: str, value: Any, schema: dict[str, Any]) -> Any:
    """The value in the schema's type; models often send numbers as strings, so those are
    accepted when they parse."""
    kind = schema.get("type")
    if kind == "string":
        if not isinstance(value, str):
            raise _BadArguments(f"argument '{name}' must be a string, got {value!r}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _BadArguments(f"argument '{name}' must be true or false, got {value!r}")
        return value
    if kind in ("integer", "number"):
        number: float | int
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise _BadArguments(f"argument '{name}' must be a {kind}, got {value!r}") from None
        if kind == "integer":
            if not number.is_integer():
                raise _BadArguments(f"argument '{name}' must be a whole number, got {value!r}")
            number = int(number)
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise _BadArguments(f"argument '{name}' must be {bounds}, got {value!r}")
        return number
    return value


def check_arguments(spec: ToolSpec, args: Any) -> dict[str, Any]:
    """Arguments checked and coerced against the spec; _BadArguments says what is wrong."""
    if not isinstance(args, dict):
        raise _BadArguments(f"arguments must be a JSON object, got {type(args).__name__}")
    props: dict[str, Any] = spec.parameters.get("properties", {})
    # A null for an optional argument means "not given".
    given = {k: v for k, v in args.items() if v is not None}
    unknown = sorted(set(given) - set(props))
    if unknown:
        raise _BadArguments(f"unknown argument(s): {', '.join(map(repr, unknown))}")
    missing = [r for r in spec.parameters.get("required", []) if r not in given]
    if missing:
        raise _BadArguments(f"missing required argument(s): {', '.join(map(repr, missing))}")
    return {k: _coerce(k, v, props[k]) for k, v in given.items()}


class ToolBox:
    """The environment's tools (run, sessions, files, sleep) plus any `extra` ones (the agent's
    submit/think/finish)."""

    def __init__(self, extra: Sequence[tuple[ToolSpec, Handler]] = ()) -> None:
        """All environment tools, then `extra`; a name given twice is an error."""
        self._tools: dict[str, tuple[ToolSpec, Handler]] = {}
        pairs = [(s, f.HANDLERS[s.name]) for f in _FAMILIES for s in f.SPECS]
        for spec, handler in [*pairs, *extra]:
            if spec.name in self._tools:
                raise ValueError(f"tool {spec.name!r} is defined twice")
            self._tools[spec.name] = (spec, handler)

    def spec(self, name: str) -> ToolSpec | None:
        """The tool called `name`, or None if there is none."""
        found = self._tools.get(name)
        return found[0] if found else None

    def specs(self) -> list[ToolSpec]:
        """Every tool's schema, in a stable order."""
        return [spec for spec, _ in self._tools.values()]

    async def call(self, name: str, args: Any, ctx: ToolContext) -> ToolResult:
        """Run a tool. Never raises: unknown tools, bad arguments and crashes come back as
        error results that say what was wrong and how to call the tool."""
        if name not in self._tools:
            known = ", ".join(self._tools)
            return ToolResult(
                f"Unknown tool {name!r}. Available tools: {known}.", exit=None, error=True
            )
        spec, handler = self._tools[name]
        try:
            checked = check_arguments(spec, args)
        except _BadArguments as exc:
            return ToolResult(
                f"Bad call to {name}: {exc}.\nUsage: {usage(spec)}",
                exit=None,
                error=True,
                meta={"bad_arguments": True},
            )
        try:
            return await handler(ctx, checked)
        except Exception as exc:
            return ToolResult(
                f"{name} failed: {type(exc).__name__}: {exc}\nUsage: {usage(spec)}",
                exit=None,
                error=True,
                meta={"exception": type(exc).__name__},
            )
