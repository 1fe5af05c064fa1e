"""File tools: read, write, edit, list and search files of the workspace.

They run in-process on the host copy of the workspace (fast, no sandbox start-up), while the
agent's sessions may change it at any moment. So a path is never checked and then opened: every
open, listing, mkdir and rename goes through `apollo.env.beneath`, which resolves paths beneath
the workspace's directory descriptor and refuses every symbolic link. The rule for the agent:
the file tools do not follow links (they show them in listings); `run` can.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Annotated, Any, BinaryIO

from pydantic import Field

from apollo.env.beneath import Beneath, Entry, LinkRefused, NotRegularFile
from apollo.env.tools.base import ToolContext, ToolResult, cap_output
from apollo.env.tools.declare import tool

_INSIDE = "/workspace"
_BINARY_PROBE = 8192
_MAX_LIST_ENTRIES = 1000
_MAX_MATCHES = 500
_MAX_SEARCH_FILE_BYTES = 10 << 20
_MAX_MATCH_LINE = 300
_SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules"}


class PathRefused(ValueError):
    """A path that is not inside the workspace, or not what the tool needs."""


def relative_path(raw: str) -> str:
    """`raw` (relative to the workspace, or absolute under /workspace) as a normalised path
    relative to the workspace ("." for the workspace itself); PathRefused if it is outside.

    `..` is resolved by name: symbolic links are never followed, so the name is the place."""
    if "\0" in raw:
        raise PathRefused(f"path {raw!r} contains a NUL character")
    if raw == _INSIDE or raw.startswith(_INSIDE + "/"):
        relative = raw[len(_INSIDE) :]
    elif raw.startswith(("/", "~")):
        raise PathRefused(
            f"path {raw!r} is outside the workspace; use a path relative to the workspace "
            "(e.g. 'src/main.py') or an absolute one under /workspace"
        )
    else:
        relative = raw
    parts: list[str] = []
    for part in relative.split("/"):
        if part == "..":
            if not parts:
                raise PathRefused(
                    f"path {raw!r} leads outside the workspace (through '..'); only files "
                    "inside /workspace can be used"
                )
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts) or "."


def _child(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _link_refusal(exc: LinkRefused) -> PathRefused:
    return PathRefused(
        f"{exc.link!r} is a symbolic link (-> {exc.target}); the file tools do not follow links, "
        "so that nothing outside the workspace is reached through one: use the path it points "
        "to, or run"
    )


def _is_binary(f: BinaryIO) -> bool:
    return b"\0" in os.pread(f.fileno(), _BINARY_PROBE, 0)


def _text_file(ws: Beneath, raw: str, rel: str) -> BinaryIO:
    """The text file `rel`, open for reading; PathRefused for anything else."""
    try:
        f = ws.open_file(rel)
    except IsADirectoryError:
        raise PathRefused(f"{raw!r} is a directory; use list_files to see what it holds") from None
    except (FileNotFoundError, NotADirectoryError):
        raise PathRefused(
            f"no file {raw!r} in the workspace; list_files shows what exists"
        ) from None
    except NotRegularFile:
        raise PathRefused(f"{raw!r} is not a regular file (a FIFO, socket or device)") from None
    if _is_binary(f):
        size = os.fstat(f.fileno()).st_size
        f.close()
        raise PathRefused(f"{raw!r} is a binary file ({size} bytes); inspect it with run")
    return f


def _read(ws: Beneath, raw: str, start: int, end: int | None, limit: int) -> str:
    rel = relative_path(raw)
    if end is not None and end < start:
        raise PathRefused(f"end_line {end} is before start_line {start}")
    lines: list[str] = []
    total = 0
    with io.TextIOWrapper(_text_file(ws, raw, rel), "utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            total = number
            if number >= start and (end is None or number <= end):
                lines.append(f"{number:>6}\t{line.rstrip(chr(10))}")
    if total == 0:
        return f"{rel} is empty."
    if start > total:
        raise PathRefused(f"start_line {start} is past the end ({total} lines)")
    last = start + len(lines) - 1
    header = f"{rel}, lines {start}-{last} of {total}:\n"
    body = header + "\n".join(lines)
    if len(body) > limit:
        body = "[long output: read smaller ranges with start_line/end_line]\n" + body
    return body


def _replace(ws: Beneath, raw: str, rel: str, data: bytes) -> None:
    try:
        ws.write(rel, data)
    except IsADirectoryError:
        raise PathRefused(f"{raw!r} is a directory; give a file path") from None
    except NotADirectoryError:
        raise PathRefused(f"a part of {raw!r} is a file, not a folder") from None


def _write(ws: Beneath, raw: str, content: str) -> str:
    rel = relative_path(raw)
    data = content.encode("utf-8")
    _replace(ws, raw, rel, data)
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    return f"Wrote {len(data)} bytes ({lines} lines) to {rel}."


def _edit(ws: Beneath, raw: str, old: str, new: str) -> str:
    rel = relative_path(raw)
    with _text_file(ws, raw, rel) as f:
        try:
            text = f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused(f"{raw!r} is not UTF-8 text; change it with run") from None
    if not old:
        raise PathRefused("'old' is empty; give the exact text to replace")
    count = text.count(old)
    if count == 0:
        raise PathRefused(
            f"'old' was not found in {raw!r}; read the file and copy the text exactly, "
            "whitespace and indentation included"
        )
    if count > 1:
        raise PathRefused(
            f"'old' occurs {count} times in {raw!r}; it must match exactly once, so "
            "include more of the surrounding lines"
        )
    first_line = text[: text.index(old)].count("\n") + 1
    _replace(ws, raw, rel, text.replace(old, new, 1).encode("utf-8"))
    return f"Edited {rel} at line {first_line}."


def _line(e: Entry) -> str:
    if e.kind == "link":
        return f"{e.name} -> {e.target}"
    if e.kind == "dir":
        return f"{e.name}/"
    if e.kind == "file":
        return f"{e.name} ({e.size} bytes)"
    return f"{e.name} (not a regular file)"


def _list(ws: Beneath, raw: str, depth: int) -> str:
    top = relative_path(raw)
    try:
        first = ws.entries(top)
    except (FileNotFoundError, NotADirectoryError):
        raise PathRefused(f"{raw!r} is not a directory in the workspace") from None
    lines: list[str] = []
    hidden = 0

    def walk(folder: str, level: int, entries: list[Entry]) -> None:
        nonlocal hidden
        for e in entries:
            if len(lines) >= _MAX_LIST_ENTRIES:
                hidden += 1
                continue
            lines.append("  " * level + _line(e))
            if e.kind == "dir" and level + 1 < depth:
                try:
                    inner = ws.entries(_child(folder, e.name))
                except OSError:
                    continue  # changed since it was listed (gone, or now a link)
                walk(_child(folder, e.name), level + 1, inner)

    walk(top, 0, first)
    head = f"{top}/ (depth {depth}):"
    if hidden:
        lines.append(f"[... {hidden} more entries; list a subfolder or lower depth]")
    return "\n".join([head, *lines]) if lines else f"{head}\n(empty)"


def _files_under(ws: Beneath, top: str) -> Iterator[str]:
    """The regular files under the folder `top`, folder by folder (links not followed)."""
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            entries = ws.entries(folder)
        except OSError:
            if folder == top:
                raise
            continue  # changed since it was listed (gone, or now a link)
        yield from (_child(folder, e.name) for e in entries if e.kind == "file")
        dirs = [e.name for e in entries if e.kind == "dir" and e.name not in _SKIP_DIRS]
        pending += [_child(folder, name) for name in reversed(dirs)]


def _search(ws: Beneath, pattern: str, raw: str, glob: str | None) -> str:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise PathRefused(f"invalid regular expression {pattern!r}: {exc}") from None
    top = relative_path(raw)
    try:
        is_dir = stat.S_ISDIR(ws.stat(top).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise PathRefused(f"no file or folder {raw!r} in the workspace") from None
    matches: list[str] = []
    for rel in _files_under(ws, top) if is_dir else iter([top]):
        if glob and not PurePosixPath(rel).match(glob):
            continue
        try:
            f = ws.open_file(rel)
        except OSError:
            if rel == top:
                raise
            continue  # changed since it was listed (gone, or now a link or a folder)
        with f:
            if os.fstat(f.fileno()).st_size > _MAX_SEARCH_FILE_BYTES or _is_binary(f):
                continue
            with io.TextIOWrapper(f, "utf-8", errors="replace") as text:
                for number, line in enumerate(text, 1):
                    if regex.search(line):
                        matches.append(f"{rel}:{number}: {line.rstrip()[:_MAX_MATCH_LINE]}")
                        if len(matches) >= _MAX_MATCHES:
                            matches.append(
                                f"[stopped after {_MAX_MATCHES} matches; narrow it down]"
                            )
                            return "\n".join(matches)
    return "\n".join(matches) if matches else f"No matches for {pattern!r}."


def _in_workspace(ctx: ToolContext, fn: Callable[..., str], *extra: Any) -> str:
    """`fn` on the workspace, opened beneath its directory; refusals become PathRefused."""
    try:
        with Beneath(ctx.workspace.path) as ws:
            return fn(ws, *extra)
    except LinkRefused as exc:
        raise _link_refusal(exc) from None
    except OSError as exc:
        where = f"{exc.filename!r}" if exc.filename else "the path"
        raise PathRefused(f"could not use {where}: {exc.strerror or exc}") from None


async def _run(ctx: ToolContext, fn: Callable[..., str], *extra: Any) -> ToolResult:
    """Run a file operation off the event loop; refusals become error results."""
    try:
        text = await asyncio.to_thread(_in_workspace, ctx, fn, *extra)
    except PathRefused as exc:
        return ToolResult(str(exc), exit=None, error=True)
    capped, truncated = cap_output(text, ctx.workspace.limits.output_chars)
    return ToolResult(capped, truncated=truncated)


WorkspacePath = Annotated[str, Field(description="relative to the workspace, or under /workspace")]


@tool(rerun_on_resume=True)
async def read_file(
    ctx: ToolContext,
    path: WorkspacePath,
    start_line: Annotated[int, Field(ge=1, description="first line")] = 1,
    end_line: Annotated[int | None, Field(ge=1, description="last line")] = None,
) -> ToolResult:
    """Read a text file of the workspace, with line numbers (the numbers are not part of the
    file). Use start_line/end_line for long files."""
    limit = ctx.workspace.limits.output_chars
    return await _run(ctx, _read, path, start_line, end_line, limit)


@tool()
async def write_file(ctx: ToolContext, path: WorkspacePath, content: str) -> ToolResult:
    """Create or overwrite a file in the workspace with the given content (folders are made as
    needed)."""
    return await _run(ctx, _write, path, content)


@tool()
async def edit_file(
    ctx: ToolContext,
    path: WorkspacePath,
    old: Annotated[str, Field(description="exact text to replace")],
    new: Annotated[str, Field(description="replacement text")],
) -> ToolResult:
    """Replace text in a file: `old` must occur exactly once and is replaced by `new`."""
    return await _run(ctx, _edit, path, old, new)


@tool(rerun_on_resume=True)
async def list_files(
    ctx: ToolContext,
    path: Annotated[str, Field(description="folder to list (default: the workspace)")] = ".",
    depth: Annotated[int, Field(ge=1, le=10, description="levels")] = 2,
) -> ToolResult:
    """List files and folders (with sizes) as a tree. Symbolic links are shown as
    'name -> target'; the file tools do not follow them (run does)."""
    return await _run(ctx, _list, path, depth)


@tool(rerun_on_resume=True)
async def search(
    ctx: ToolContext,
    pattern: Annotated[str, Field(description="Python regular expression")],
    path: Annotated[str, Field(description="folder or file to search (default: all)")] = ".",
    glob: Annotated[str | None, Field(description="only files matching, e.g. '*.py'")] = None,
) -> ToolResult:
    """Search text files for a regular expression; prints file:line: text. Skips .git,
    __pycache__, .venv, node_modules, binary files and files over 10 MB."""
    return await _run(ctx, _search, pattern, path, glob)


TOOLS = (read_file, write_file, edit_file, list_files, search)
