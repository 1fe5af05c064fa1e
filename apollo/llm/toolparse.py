"""Tool-call validation and repair.

Models served without native tool calling (or small models that ignore it) write their calls
as text: ``<tool_call>{...}</tool_call>``, fenced JSON, a bare JSON object, ``run({...})``.
This module turns those into `ToolCall`s (marking the completion `repaired`), and when the text
clearly tried a call that cannot be used, says precisely what was wrong in `parse_error` so
the agent can hand it back to the model as an observation.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apollo.llm.base import Completion, ToolCall

# Keys under which models put the tool's name and its arguments, in order of preference.
NAME_KEYS = ("name", "tool", "function", "tool_name")
ARG_KEYS = ("arguments", "parameters", "args", "input")

_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|(?=<tool_call>)|$)", re.S)
_FENCE = re.compile(r"```[A-Za-z_]*[ \t]*\n?(.*?)```", re.S)
# A quoted or bare key that only a tool call would use: marks text that tried a call.
_CALL_KEY = re.compile(r"""["']?\b(name|tool|function|arguments|parameters)\b["']?\s*:""")


# How a problem names a tool the model called that is not offered (`unknown_tools` reads it).
_NO_SUCH_TOOL = "there is no tool named `{name}`"
_NO_SUCH_TOOL_RE = re.compile(re.escape(_NO_SUCH_TOOL).replace(r"\{name\}", r"([^`]+)"))


def unknown_tools(parse_error: str | None) -> list[str]:
    """The names of tools a parse error says are not offered, in order."""
    return list(dict.fromkeys(_NO_SUCH_TOOL_RE.findall(parse_error or "")))


@dataclass(slots=True)
class Parsed:
    """The calls found in one completion, and what went wrong if something did."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    repaired: bool = False
    parse_error: str | None = None


def tool_index(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Offered tools by name -> their parameters schema (OpenAI `tools` entries or bare
    function objects)."""
    index: dict[str, dict[str, Any]] = {}
    for tool in tools or ():
        fn = tool.get("function", tool)
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            index[fn["name"]] = dict(params) if isinstance(params, Mapping) else {}
    return index


def apply(completion: Completion, tools: Sequence[Mapping[str, Any]] | None) -> Completion:
    """Validate native tool calls, or repair text-form ones, in place; returns `completion`.

    Native calls are kept as the model wrote them (each needs its tool response in the
    context) and problems are reported in `parse_error`. Text-form calls are all-or-nothing:
    if any of them is unusable, none is returned and `parse_error` says why.
    """
    index = tool_index(tools)
    if not index:
        return completion
    if completion.tool_calls:
        completion.parse_error = check_native(completion.tool_calls, index)
        return completion
    parsed = parse_text(completion.content or "", index)
    completion.tool_calls = parsed.tool_calls
    completion.repaired = parsed.repaired
    completion.parse_error = parsed.parse_error
    return completion


def check_native(calls: Sequence[ToolCall], index: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Problems with native tool calls (unknown name, arguments not a JSON object), or None."""
    problems = []
    for call in calls:
        if call.name not in index:
            problems.append(_NO_SUCH_TOOL.format(name=call.name))
            continue
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError as exc:
            problems.append(f"the arguments of `{call.name}` are not valid JSON ({exc})")
            continue
        if not isinstance(args, dict):
            problems.append(
                f"the arguments of `{call.name}` must be a JSON object, got {type(args).__name__}"
            )
    return _error_message(problems, index) if problems else None


def parse_text(text: str, index: Mapping[str, Mapping[str, Any]]) -> Parsed:
    """Find tool calls written as text. `index` maps offered tool names to parameter schemas."""
    if not text.strip():
        return Parsed()
    candidates, problems = _candidates(text, index)
    calls: list[ToolCall] = []
    for obj in candidates:
        call, problem = _to_call(obj, index, len(calls), text)
        if problem:
            problems.append(problem)
        elif call is not None:
            calls.append(call)
    if problems:
        return Parsed(parse_error=_error_message(problems, index))
    return Parsed(tool_calls=calls, repaired=bool(calls))


def call_id(text: str, n: int) -> str:
    """A stable id for the n-th call repaired from `text`: the same output gets the same id
    (replays and resumes agree), different outputs almost surely differ."""
    digest = hashlib.blake2s(text.encode("utf-8", "replace"), digest_size=4).hexdigest()
    return f"call_{digest}_{n}"


def loads_lenient(text: str) -> Any:
    """json.loads that also takes what models write: single quotes, trailing commas,
    Python True/False/None, unquoted keys and raw newlines inside strings."""
    try:
        return json.loads(text, strict=False)
    except ValueError:
        pass
    return json.loads(_to_strict_json(text), strict=False)


def example_call(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A well-formed call of `name` with placeholder values for its required parameters."""
    props = params.get("properties") or {}
    required = params.get("required") or list(props)[:1]
    placeholders = {"string": "...", "integer": 1, "number": 1.0, "boolean": True, "array": []}
    args: dict[str, Any] = {}
    for key in required:
        spec = props.get(key, {})
        kind = spec.get("type", "string") if isinstance(spec, Mapping) else "string"
        if isinstance(kind, list):
            kind = kind[0] if kind else "string"
        args[key] = placeholders.get(kind, {}) if kind != "object" else {}
    return {"name": name, "arguments": args}


# --- internals ---------------------------------------------------------------------------


def _candidates(
    text: str, index: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Call-shaped objects found in the text (strongest form first), and parse problems."""
    problems: list[str] = []
    tagged = _TOOL_CALL_TAG.findall(text)
    if tagged:
        found: list[dict[str, Any]] = []
        for block in tagged:
            inner = _strip_fence(block)
            called = re.match(r"\s*([\w.]+)\(", inner)
            if called:
                objs = _paren_calls(inner, index, problems)
                if not objs and not problems:
                    problems.append(_NO_SUCH_TOOL.format(name=called.group(1)))
            else:
                objs = _call_objects(inner, index, problems, forced=True)
            if not objs and not problems:
                problems.append(f"the <tool_call> block holds no tool call: {_clip(block)!r}")
            found.extend(objs)
        return found, problems
    for block in _FENCE.findall(text):
        objs = _call_objects(block, index, problems, forced=False)
        if objs or problems:
            return objs, problems
    objs = _call_objects(text, index, problems, forced=False)
    if objs or problems:
        return objs, problems
    return _paren_calls(text, index, problems), problems


def _call_objects(
    text: str, index: Mapping[str, Mapping[str, Any]], problems: list[str], *, forced: bool
) -> list[dict[str, Any]]:
    """Call-shaped JSON objects (or arrays of them) in `text`. With `forced`, the text is
    known to be a call, so an unparseable object is always a problem."""
    found: list[dict[str, Any]] = []
    for span in _balanced_spans(text):
        try:
            value = loads_lenient(span)
        except ValueError as exc:
            if forced or _CALL_KEY.search(span):
                problems.append(f"the tool call is not valid JSON ({exc}): {_clip(span)!r}")
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and _is_call_shaped(item, index):
                found.append(item)
            elif forced:
                problems.append(
                    f"the tool call must be an object with `name` and `arguments`: {_clip(span)!r}"
                )
    return found


def _is_call_shaped(obj: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]]) -> bool:
    """An object is a call when it names a tool and carries arguments, or names an offered
    tool; `{"name": "Ada", "age": 3}` in a data sample is not."""
    fn = obj.get("function")
    if isinstance(fn, Mapping) and "name" in fn:
        return True
    name = _name_of(obj)
    if name is None:
        return False
    return name in index or any(key in obj for key in ARG_KEYS)


def _name_of(obj: Mapping[str, Any]) -> str | None:
    for key in NAME_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None


def _to_call(
    obj: Mapping[str, Any], index: Mapping[str, Mapping[str, Any]], n: int, text: str
) -> tuple[ToolCall | None, str | None]:
    fn = obj.get("function")
    if isinstance(fn, Mapping):
        # OpenAI-shaped {"type": "function", "function": {"name": .., "arguments": ..}}.
        obj = fn
    name = _name_of(obj)
    if name is None:
        return None, f"the tool call has no `name`: {_clip(json.dumps(obj))!r}"
    if name not in index:
        return None, _NO_SUCH_TOOL.format(name=name)
    raw: Any = next((obj[key] for key in ARG_KEYS if key in obj), {})
    if isinstance(raw, str):
        try:
            raw = loads_lenient(raw) if raw.strip() else {}
        except ValueError as exc:
            return None, f"the arguments of `{name}` are not valid JSON ({exc})"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        return None, f"the arguments of `{name}` must be a JSON object, got {kind}"
    return ToolCall(call_id(text, n), name, json.dumps(raw, ensure_ascii=False)), None


def _paren_calls(
    text: str, index: Mapping[str, Mapping[str, Any]], problems: list[str]
) -> list[dict[str, Any]]:
    """`run({"command": "ls"})`, `run(command="ls")` or `run("ls")` for offered tool names."""
    if not index:
        return []
    names = "|".join(re.escape(name) for name in sorted(index, key=len, reverse=True))
    found: list[dict[str, Any]] = []
    for match in re.finditer(rf"(?<![\w.])({names})\(", text):
        name = match.group(1)
        inner = _paren_body(text, match.end() - 1)
        if inner is None:
            problems.append(f"the call `{name}(` is never closed")
            continue
        args = _paren_args(inner, index[name])
        if isinstance(args, str):
            problems.append(f"cannot read the arguments of `{name}(...)`: {args}")
        else:
            found.append({"name": name, "arguments": args})
    return found


def _paren_args(inner: str, params: Mapping[str, Any]) -> dict[str, Any] | str:
    """Arguments inside `name(...)`, or a message saying why they cannot be read."""
    inner = inner.strip()
    if not inner:
        return {}
    if inner.startswith("{"):
        try:
            value = loads_lenient(inner)
        except ValueError as exc:
            return f"not valid JSON ({exc})"
        return value if isinstance(value, dict) else "expected a JSON object"
    try:
        call = ast.parse(f"f({inner})", mode="eval").body
        assert isinstance(call, ast.Call)
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        positional = [ast.literal_eval(arg) for arg in call.args]
    except (SyntaxError, ValueError, AssertionError) as exc:
        return f"not valid keyword arguments ({exc.__class__.__name__})"
    if positional:
        # A lone positional value is only unambiguous when the tool takes one parameter.
        props = list((params.get("properties") or {}).keys())
        required = list(params.get("required") or props)
        if len(positional) != 1 or len(required) != 1 or kwargs:
            return "use a JSON object of named arguments"
        kwargs[required[0]] = positional[0]
    return kwargs


def _paren_body(text: str, open_at: int) -> str | None:
    """The text between the parenthesis at `open_at` and its match (string-aware)."""
    close = _closing(text, open_at, "([{", ")]}")
    return None if close is None else text[open_at + 1 : close]


def _balanced_spans(text: str) -> Iterator[str]:
    """Top-level `{...}` and `[{...}]` spans, string-aware; an unclosed one runs to the end
    (a call cut off by max_tokens is still reported)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "{" and not (c == "[" and text[i + 1 :].lstrip().startswith("{")):
            i += 1
            continue
        close = _closing(text, i, "{[", "}]", apostrophes=True)
        if close is None:
            yield text[i:]
            return
        yield text[i : close + 1]
        i = close + 1


def _closing(
    text: str, start: int, opens: str, closes: str, *, apostrophes: bool = False
) -> int | None:
    """The index of the bracket that closes the one at `start` (None: it is never closed).
    Brackets inside quoted strings do not count; with `apostrophes`, a single quote between
    letters opens no string (prose around a call)."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'" and not (apostrophes and _is_apostrophe(text, i)):
            quote = c
        elif c in opens:
            depth += 1
        elif c in closes:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _is_apostrophe(text: str, j: int) -> bool:
    """A single quote between letters (don't, it's) does not open a string."""
    return (
        text[j] == "'" and 0 < j < len(text) - 1 and text[j - 1].isalpha() and text[j + 1].isalpha()
    )


def _to_strict_json(text: str) -> str:
    """Rewrite loose JSON into strict JSON, token by token (strings are never touched
    except to re-quote them)."""
    out: list[str] = []
    i, n = 0, len(text)
    literals = {"True": "true", "False": "false", "None": "null"}
    while i < n:
        c = text[i]
        if c in "\"'":
            j, buf = i + 1, []
            while j < n and text[j] != c:
                d = text[j]
                if d == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    # \' is legal in a single-quoted Python string, not in JSON.
                    buf.append("'" if nxt == "'" else d + nxt)
                    j += 2
                    continue
                buf.append('\\"' if d == '"' else d)
                j += 1
            if j >= n:
                raise ValueError("unterminated string")
            out.append('"' + "".join(buf) + '"')
            i = j + 1
        elif c == ",":
            k = i + 1
            while k < n and text[k].isspace():
                k += 1
            if k >= n or text[k] not in "}]":
                out.append(c)
            i += 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            k = j
            while k < n and text[k].isspace():
                k += 1
            if k < n and text[k] == ":":
                out.append(json.dumps(word))
            else:
                out.append(literals.get(word, word))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _strip_fence(block: str) -> str:
    match = _FENCE.search(block)
    return match.group(1) if match else block


def _error_message(problems: Sequence[str], index: Mapping[str, Mapping[str, Any]]) -> str:
    """The observation the model gets: what was wrong, the offered tools, a correct call."""
    first = next(iter(index))
    example = json.dumps(example_call(first, index[first]), ensure_ascii=False)
    detail = "; ".join(dict.fromkeys(problems))
    return (
        f"Your tool call could not be used: {detail}.\n"
        f"Offered tools: {', '.join(index)}.\n"
        "Call exactly one offered tool, with its arguments as a JSON object, for example:\n"
        f"<tool_call>{example}</tool_call>"
    )


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
