"""File tools: reading, writing, editing, listing, searching, and refusing paths outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apollo.env.tools.base import ToolContext
from apollo.env.tools.files import PathRefused, relative_path
from apollo.env.tools.registry import ToolBox

pytestmark = pytest.mark.anyio


def test_relative_path_accepts_workspace_paths() -> None:
    assert relative_path("a/b.txt") == "a/b.txt"
    assert relative_path("/workspace/a/b.txt") == "a/b.txt"
    assert relative_path("/workspace") == "."
    assert relative_path("./a//b/") == "a/b"
    assert relative_path("a/../c") == "c"


@pytest.mark.parametrize("raw", ["../outside.txt", "a/../../x", "/etc/passwd", "~/x", "/work"])
def test_relative_path_refuses_escapes(raw: str) -> None:
    with pytest.raises(PathRefused, match="outside the workspace"):
        relative_path(raw)


async def test_symlinks_are_shown_never_followed(
    ctx: ToolContext, tmp_path: Path, mechanism: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    root = ctx.workspace.path
    os.symlink(outside, root / "link.txt")
    os.symlink(tmp_path, root / "linkdir")
    os.symlink("notes.txt", root / "inner.txt")  # pointing inside: not followed either
    box = ToolBox()
    for name, args, link in [
        ("read_file", {"path": "link.txt"}, "link.txt"),
        ("write_file", {"path": "link.txt", "content": "overwritten"}, "link.txt"),
        ("write_file", {"path": "linkdir/new.txt", "content": "planted"}, "linkdir"),
        ("write_file", {"path": "linkdir/deep/new.txt", "content": "planted"}, "linkdir"),
        ("edit_file", {"path": "link.txt", "old": "host", "new": "x"}, "link.txt"),
        ("list_files", {"path": "linkdir"}, "linkdir"),
        ("search", {"pattern": "secret", "path": "linkdir"}, "linkdir"),
        ("search", {"pattern": "secret", "path": "linkdir/outside.txt"}, "linkdir"),
        ("read_file", {"path": "inner.txt"}, "inner.txt"),
    ]:
        result = await box.call(name, args, ctx)
        assert result.error, name
        assert f"{link!r} is a symbolic link" in result.output, name
        assert "do not follow links" in result.output and "run" in result.output, name
    assert outside.read_text() == "host secret\n"
    assert not (tmp_path / "new.txt").exists() and not (tmp_path / "deep").exists()
    listing = await box.call("list_files", {}, ctx)
    assert f"link.txt -> {outside}" in listing.output  # shown, never followed
    assert "inner.txt -> notes.txt" in listing.output
    found = await box.call("search", {"pattern": "secret|alpha"}, ctx)
    assert found.output == "notes.txt:1: alpha"  # found once, through the file, not the link


async def test_special_files_and_bad_text_are_refused_clearly(
    ctx: ToolContext, mechanism: str
) -> None:
    root = ctx.workspace.path
    os.mkfifo(root / "pipe")  # opening it for reading must not hang the tool
    (root / "latin1.txt").write_bytes(b"caf\xe9\n")
    box = ToolBox()
    read = await box.call("read_file", {"path": "pipe"}, ctx)
    assert read.error and "not a regular file" in read.output
    found = await box.call("search", {"pattern": "x"}, ctx)
    assert not found.error
    edit = await box.call("edit_file", {"path": "latin1.txt", "old": "caf", "new": "x"}, ctx)
    assert edit.error and "not UTF-8 text" in edit.output
    into_file = await box.call("write_file", {"path": "notes.txt/x", "content": ""}, ctx)
    assert into_file.error and "is a file, not a folder" in into_file.output
    on_dir = await box.call("write_file", {"path": "src", "content": ""}, ctx)
    assert on_dir.error and "is a directory" in on_dir.output


async def test_write_is_atomic_and_keeps_permissions(ctx: ToolContext) -> None:
    script = ctx.workspace.path / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o750)
    before = script.stat().st_ino
    box = ToolBox()
    result = await box.call("write_file", {"path": "run.sh", "content": "echo new\n"}, ctx)
    assert not result.error
    after = script.stat()
    assert after.st_ino != before  # a new file renamed over the old name
    assert after.st_mode & 0o777 == 0o750 and script.read_text() == "echo new\n"
    edited = await box.call("edit_file", {"path": "run.sh", "old": "new", "new": "edited"}, ctx)
    assert not edited.error and script.stat().st_mode & 0o777 == 0o750
    leftovers = [p.name for p in ctx.workspace.path.iterdir() if p.name.startswith(".apollo")]
    assert leftovers == []


async def test_write_read_edit_round_trip(ctx: ToolContext, mechanism: str) -> None:
    box = ToolBox()
    wrote = await box.call(
        "write_file", {"path": "/workspace/pkg/mod.py", "content": "a = 1\nb = 2\nc = 3\n"}, ctx
    )
    assert not wrote.error and "3 lines" in wrote.output
    assert (ctx.workspace.path / "pkg" / "mod.py").is_file()
    read = await box.call("read_file", {"path": "pkg/mod.py", "start_line": 2, "end_line": 3}, ctx)
    assert read.output == "pkg/mod.py, lines 2-3 of 3:\n     2\tb = 2\n     3\tc = 3"
    edited = await box.call(
        "edit_file", {"path": "pkg/mod.py", "old": "b = 2", "new": "b = 5"}, ctx
    )
    assert not edited.error and "line 2" in edited.output
    assert (ctx.workspace.path / "pkg" / "mod.py").read_text() == "a = 1\nb = 5\nc = 3\n"


async def test_edit_needs_exactly_one_match(ctx: ToolContext) -> None:
    box = ToolBox()
    await box.call("write_file", {"path": "x.txt", "content": "same\nsame\n"}, ctx)
    twice = await box.call("edit_file", {"path": "x.txt", "old": "same", "new": "new"}, ctx)
    assert twice.error and "occurs 2 times" in twice.output
    absent = await box.call("edit_file", {"path": "x.txt", "old": "other", "new": "new"}, ctx)
    assert absent.error and "not found" in absent.output
    assert (ctx.workspace.path / "x.txt").read_text() == "same\nsame\n"


async def test_read_refusals_say_what_to_do(ctx: ToolContext) -> None:
    box = ToolBox()
    (ctx.workspace.path / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    cases = {
        "missing.txt": "list_files shows what exists",
        "src": "is a directory",
        "blob.bin": "binary file (30 bytes)",
    }
    for path, message in cases.items():
        result = await box.call("read_file", {"path": path}, ctx)
        assert result.error and message in result.output
    past = await box.call("read_file", {"path": "notes.txt", "start_line": 9}, ctx)
    assert past.error and "past the end (3 lines)" in past.output


async def test_long_file_read_is_capped_with_a_hint(ctx: ToolContext) -> None:
    lines = "".join(f"line {i}\n" for i in range(1, 3001))
    (ctx.workspace.path / "big.txt").write_text(lines)
    result = await ToolBox().call("read_file", {"path": "big.txt"}, ctx)
    assert result.truncated and "start_line/end_line" in result.output
    assert "line 3000" in result.output and "characters cut" in result.output


async def test_list_files_tree(ctx: ToolContext) -> None:
    box = ToolBox()
    (ctx.workspace.path / "src" / "deep" / "deeper").mkdir(parents=True)
    listing = await box.call("list_files", {"depth": 2}, ctx)
    assert listing.output.splitlines() == [
        "./ (depth 2):",
        "notes.txt (17 bytes)",
        "src/",
        "  deep/",
        "  main.py (25 bytes)",
    ]
    notdir = await box.call("list_files", {"path": "notes.txt"}, ctx)
    assert notdir.error and "not a directory" in notdir.output


async def test_search_with_glob_and_bad_regex(ctx: ToolContext) -> None:
    box = ToolBox()
    found = await box.call("search", {"pattern": r"def \w+"}, ctx)
    assert found.output == "src/main.py:1: def main():"
    (ctx.workspace.path / "more.md").write_text("def in markdown\n")
    only_py = await box.call("search", {"pattern": "def", "glob": "*.py"}, ctx)
    assert "more.md" not in only_py.output and "src/main.py" in only_py.output
    one_file = await box.call("search", {"pattern": "a$", "path": "notes.txt"}, ctx)
    assert one_file.output == "notes.txt:1: alpha\nnotes.txt:2: beta\nnotes.txt:3: gamma"
    bad = await box.call("search", {"pattern": "(unclosed"}, ctx)
    assert bad.error and "invalid regular expression" in bad.output
