"""File tools: read, write, edit, list and search files of the workspace.

They run in-process on the host copy of the workspace (fast, no sandbox start-up). That is safe
only because every path is resolved, symlinks included, and refused unless it lands inside the
workspace.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from apollo.env.tools.base import Handler, ToolContext, ToolResult, ToolSpec, cap_output

_INSIDE = "/workspace"
_BINARY_PROBE = 8192
_MAX_LIST_ENTRIES = 1000
_MAX_MATCHES = 500
_MAX_SEARCH_FILE_BYTES = 10 << 20
_MAX_MATCH_LINE = 300
_SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules"}


class PathRefused(ValueError):
    """A path that is not inside the workspace, or not what the tool needs."""


def resolve_path(root: Path, raw: str) -> Path:
    """The host path for `raw` (relative to the workspace, or absolute under /workspace);
    PathRefused if it resolves outside the workspace, through `..` or symlinks."""
    root = root.resolve()
    if raw == _INSIDE or raw.startswith(_INSIDE + "/"):
        relative = raw[len(_INSIDE) :].lstrip("/")
    elif raw.startswith(("/", "~")):
        raise PathRefused(
            f"path {raw!r} is outside the workspace; use a path relative to the workspace "
            "(e.g. 'src/main.py') or an absolute one under /workspace"
        )
    else:
        relative = raw
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise PathRefused(
            f"path {raw!r} resolves to a place outside the workspace (through '..' or a "
            "symlink); only files inside /workspace can be used"
        )
    return target


def _display(root: Path, path: Path) -> str:
    return path.relative_to(root.resolve()).as_posix() or "."


def _is_binary(path: Path) -> bool:
    with open(path, "rb") as f:
        return b"\0" in f.read(_BINARY_PROBE)


def _text_file(root: Path, raw: str) -> Path:
    path = resolve_path(root, raw)
    if path.is_dir():
        raise PathRefused(f"{raw!r} is a directory; use list_files to see what it holds")
    if not path.is_file():
        raise PathRefused(f"no file {raw!r} in the workspace; list_files shows what exists")
    if _is_binary(path):
        size = path.stat().st_size
        raise PathRefused(f"{raw!r} is a binary file ({size} bytes); inspect it with run")
    return path


def _limit(ctx: ToolContext) -> int:
    limit: int = ctx.workspace.task.spec.limits.output_chars
    return limit


def _root(ctx: ToolContext) -> Path:
    root: Path = ctx.workspace.path
    return root


def _read(root: Path, args: dict[str, Any], limit: int) -> str:
    path = _text_file(root, args["path"])
    start = max(int(args.get("start_line") or 1), 1)
    end = int(args["end_line"]) if args.get("end_line") else None
    if end is not None and end < start:
        raise PathRefused(f"end_line {end} is before start_line {start}")
    lines: list[str] = []
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            total = number
            if number >= start and (end is None or number <= end):
                lines.append(f"{number:>6}\t{line.rstrip(chr(10))}")
    if total == 0:
        return f"{_display(root, path)} is empty."
    if start > total:
        raise PathRefused(f"start_line {start} is past the end ({total} lines)")
    last = start + len(lines) - 1
    header = f"{_display(root, path)}, lines {start}-{last} of {total}:\n"
    body = header + "\n".join(lines)
    if len(body) > limit:
        body = "[long output: read smaller ranges with start_line/end_line]\n" + body
    return body


def _write(root: Path, args: dict[str, Any]) -> str:
    path = resolve_path(root, args["path"])
    if path.is_dir():
        raise PathRefused(f"{args['path']!r} is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    content: str = args["content"]
    path.write_text(content, encoding="utf-8")
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    return f"Wrote {len(content.encode())} bytes ({lines} lines) to {_display(root, path)}."


def _edit(root: Path, args: dict[str, Any]) -> str:
    path = _text_file(root, args["path"])
    old: str = args["old"]
    if not old:
        raise PathRefused("'old' is empty; give the exact text to replace")
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    if count == 0:
        raise PathRefused(
            f"'old' was not found in {args['path']!r}; read the file and copy the text exactly, "
            "whitespace and indentation included"
        )
    if count > 1:
        raise PathRefused(
            f"'old' occurs {count} times in {args['path']!r}; it must match exactly once, so "
            "include more of the surrounding lines"
        )
    first_line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, args["new"], 1), encoding="utf-8")
    return f"Edited {_display(root, path)} at line {first_line}."


def _entry(path: Path) -> str:
    if path.is_symlink():
        return f"{path.name} -> {os.readlink(path)}"
    if path.is_dir():
        return f"{path.name}/"
    return f"{path.name} ({path.stat().st_size} bytes)"


def _list(root: Path, args: dict[str, Any]) -> str:
    top = resolve_path(root, args.get("path") or ".")
    if not top.is_dir():
        raise PathRefused(f"{args.get('path')!r} is not a directory in the workspace")
    depth = min(max(int(args.get("depth") or 2), 1), 10)
    lines: list[str] = []
    hidden = 0

    def walk(folder: Path, level: int) -> None:
        nonlocal hidden
        for child in sorted(folder.iterdir(), key=lambda p: p.name):
            if len(lines) >= _MAX_LIST_ENTRIES:
                hidden += 1
                continue
            lines.append("  " * level + _entry(child))
            # Symlinked folders are not followed: they may point outside the workspace.
            if child.is_dir() and not child.is_symlink() and level + 1 < depth:
                walk(child, level + 1)

    walk(top, 0)
    head = f"{_display(root, top)}/ (depth {depth}):"
    if hidden:
        lines.append(f"[... {hidden} more entries; list a subfolder or lower depth]")
    return "\n".join([head, *lines]) if lines else f"{head}\n(empty)"


def _files_under(top: Path) -> list[Path]:
    if top.is_file():
        return [top]
    found: list[Path] = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        found += [Path(folder) / name for name in sorted(files)]
    return found


def _search(root: Path, args: dict[str, Any]) -> str:
    try:
        regex = re.compile(args["pattern"])
    except re.error as exc:
        raise PathRefused(f"invalid regular expression {args['pattern']!r}: {exc}") from None
    top = resolve_path(root, args.get("path") or ".")
    glob = args.get("glob")
    matches: list[str] = []
    for file in _files_under(top):
        rel = _display(root, file)
        if glob and not PurePosixPath(rel).match(glob):
            continue
        if file.is_symlink() or file.stat().st_size > _MAX_SEARCH_FILE_BYTES or _is_binary(file):
            continue
        with open(file, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if regex.search(line):
                    matches.append(f"{rel}:{number}: {line.rstrip()[:_MAX_MATCH_LINE]}")
                    if len(matches) >= _MAX_MATCHES:
                        matches.append(f"[stopped after {_MAX_MATCHES} matches; narrow it down]")
                        return "\n".join(matches)
    return "\n".join(matches) if matches else f"No matches for {args['pattern']!r}."


async def _run(ctx: ToolContext, fn: Callable[..., str], *extra: Any) -> ToolResult:
    """Run a file operation off the event loop; refusals become error results."""
    try:
        text = await asyncio.to_thread(fn, _root(ctx), *extra)
    except PathRefused as exc:
        return ToolResult(str(exc), exit=None, error=True)
    capped, truncated = cap_output(text, _limit(ctx))
    return ToolResult(capped, truncated=truncated)


async def read_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Lines of a text file, numbered."""
    return await _run(ctx, _read, args, _limit(ctx))


async def write_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Create or overwrite a file."""
    return await _run(ctx, _write, args)


async def edit_file(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Replace the one occurrence of `old` with `new`."""
    return await _run(ctx, _edit, args)


async def list_files(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """A tree of a folder."""
    return await _run(ctx, _list, args)


async def search(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Regex search over text files."""
    return await _run(ctx, _search, args)


_PATH = {"type": "string", "description": "relative to the workspace, or under /workspace"}

SPECS = [
    ToolSpec(
        "read_file",
        "Read a text file of the workspace, with line numbers (the numbers are not part of "
        "the file). Use start_line/end_line for long files.",
        {
            "type": "object",
            "properties": {
                "path": _PATH,
                "start_line": {"type": "integer", "minimum": 1, "description": "first line"},
                "end_line": {"type": "integer", "minimum": 1, "description": "last line"},
            },
            "required": ["path"],
        },
        rerun_on_resume=True,
    ),
    ToolSpec(
        "write_file",
        "Create or overwrite a file in the workspace with the given content (folders are made "
        "as needed).",
        {
            "type": "object",
            "properties": {"path": _PATH, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    ),
    ToolSpec(
        "edit_file",
        "Replace text in a file: `old` must occur exactly once and is replaced by `new`.",
        {
            "type": "object",
            "properties": {
                "path": _PATH,
                "old": {"type": "string", "description": "exact text to replace"},
                "new": {"type": "string", "description": "replacement text"},
            },
            "required": ["path", "old", "new"],
        },
    ),
    ToolSpec(
        "list_files",
        "List files and folders (with sizes) as a tree.",
        {
            "type": "object",
            "properties": {
                "path": {**_PATH, "description": "folder to list (default: the workspace)"},
                "depth": {"type": "integer", "minimum": 1, "maximum": 10, "description": "levels"},
            },
            "required": [],
        },
        rerun_on_resume=True,
    ),
    ToolSpec(
        "search",
        "Search text files for a regular expression; prints file:line: text. Skips .git, "
        "__pycache__, .venv, node_modules, binary files and files over 10 MB.",
        {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Python regular expression"},
                "path": {**_PATH, "description": "folder or file to search (default: all)"},
                "glob": {"type": "string", "description": "only files matching, e.g. '*.py'"},
            },
            "required": ["pattern"],
        },
        rerun_on_resume=True,
    ),
]

HANDLERS: dict[str, Handler] = {
    "read_file": read_file,
    "write_file": write_file,
    "edit_file": edit_file,
    "list_files": list_files,
    "search": search,
}
