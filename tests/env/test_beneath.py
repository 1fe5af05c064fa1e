"""Opening beneath a directory: links are refused wherever they are, by both mechanisms."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from apollo.env.beneath import Beneath, LinkRefused, NotRegularFile


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with a folder, a file, links out and in, and a dangling link; secret/ beside it."""
    root, secret = tmp_path / "root", tmp_path / "secret"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file.txt").write_text("inside\n")
    secret.mkdir()
    (secret / "key.txt").write_text("outside\n")
    os.symlink(secret, root / "out")
    os.symlink(secret / "key.txt", root / "dir" / "key.txt")
    os.symlink("dir", root / "in")
    os.symlink(secret / "new.txt", root / "dangling")
    return root


def test_files_and_folders_open_beneath(tree: Path, mechanism: str) -> None:
    with Beneath(tree) as root:
        with root.open_file("dir/file.txt") as f:
            assert f.read() == b"inside\n"
        with root.open_file("./dir//file.txt") as f:
            assert f.read() == b"inside\n"
        assert os.path.samestat(root.stat("."), os.stat(tree))
        with pytest.raises(IsADirectoryError):
            root.open_file("dir")
        with pytest.raises(FileNotFoundError):
            root.open_file("dir/missing.txt")
        with pytest.raises(NotADirectoryError):
            root.open_dir("dir/file.txt")


@pytest.mark.parametrize(
    ("rel", "link", "target"),
    [
        ("out", "out", "secret"),
        ("out/key.txt", "out", "secret"),
        ("dir/key.txt", "dir/key.txt", "secret/key.txt"),
        ("in/file.txt", "in", "dir"),
        ("dangling", "dangling", "secret/new.txt"),
    ],
)
def test_every_link_is_refused_and_named(
    tree: Path, mechanism: str, rel: str, link: str, target: str
) -> None:
    with Beneath(tree) as root:
        for attempt in (
            lambda: root.open_file(rel),
            lambda: root.stat(rel),
            lambda: root.entries(rel),
            lambda: root.write(rel, b"planted"),
            lambda: root.write(f"{rel}/deeper/new.txt", b"planted"),
        ):
            with pytest.raises(LinkRefused) as refused:
                attempt()
            assert refused.value.link == link and refused.value.errno == errno.ELOOP
            assert refused.value.target.endswith(target)
    assert (tree.parent / "secret" / "key.txt").read_text() == "outside\n"
    assert sorted(p.name for p in (tree.parent / "secret").iterdir()) == ["key.txt"]


def test_paths_must_be_normalised_and_relative(tree: Path, mechanism: str) -> None:
    with Beneath(tree) as root:
        for rel in ["../secret/key.txt", "dir/../../secret", "/etc/passwd", "a\0b"]:
            with pytest.raises(ValueError):
                root.open(rel, os.O_RDONLY)


def test_write_makes_folders_and_replaces_atomically(tree: Path, mechanism: str) -> None:
    with Beneath(tree) as root:
        root.write("new/deep/file.txt", b"one")
        first = (tree / "new" / "deep" / "file.txt").stat().st_ino
        root.write("new/deep/file.txt", b"two")
        assert (tree / "new" / "deep" / "file.txt").read_bytes() == b"two"
        assert (tree / "new" / "deep" / "file.txt").stat().st_ino != first
        with pytest.raises(IsADirectoryError):
            root.write("dir", b"x")
        with pytest.raises(NotADirectoryError):
            root.write("dir/file.txt/x", b"x")
        with pytest.raises(IsADirectoryError):
            root.write(".", b"x")
    assert sorted(p.name for p in (tree / "new" / "deep").iterdir()) == ["file.txt"]


def test_entries_report_links_without_following(tree: Path, mechanism: str) -> None:
    os.mkfifo(tree / "pipe")
    with Beneath(tree) as root:
        found = {e.name: (e.kind, e.size, e.target) for e in root.entries(".")}
        with pytest.raises(NotRegularFile):
            root.open_file("pipe")  # without blocking on the FIFO
    assert found == {
        "dangling": ("link", 0, str(tree.parent / "secret" / "new.txt")),
        "dir": ("dir", 0, ""),
        "in": ("link", 0, "dir"),
        "out": ("link", 0, str(tree.parent / "secret")),
        "pipe": ("other", 0, ""),
    }
