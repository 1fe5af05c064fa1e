"""Where an export writes: only new paths, or regular files it is told to replace, and only
once everything is written.

Each file is written to a temporary file beside its target and renamed over it at the end, so a
failed export (a full disk, a bad sample, Ctrl-C) leaves every old file as it was, and a
device, a directory or a FIFO at the target is refused, never written to or replaced.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

from apollo.export.windows import ExportError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _unwritable(path: Path, exc: OSError) -> ExportError:
    return ExportError(
        f"cannot write {path}: {exc.strerror or exc}; choose a --out in a folder you can write"
    )


def check_target(path: Path, force: bool) -> None:
    """Refuse to write `path` unless it is a new path, or a regular file and `force` is set.
    Links are refused rather than followed: renaming over one would replace the link, and
    writing through it would reach whatever it points at."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:  # a file where a folder should be, a folder that cannot be read
        raise _unwritable(path, exc) from exc
    if stat.S_ISREG(st.st_mode):
        if not force:
            raise ExportError(
                f"{path} already exists; pass --force to replace it, or choose another --out"
            )
        return
    what = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise ExportError(
        f"{path} is {what}; an export writes only to a new path or replaces a regular file "
        "(with --force): choose another --out"
    )


def _new_file_mode() -> int:
    """The mode `open()` would give a new file (0666 less the umask); mkstemp's is 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class Staged:
    """Files written beside their targets, renamed over them together by `commit`; until then
    no target is touched, and `discard` removes what was written."""

    def __init__(self, force: bool) -> None:
        self.force = force
        self._parts: list[tuple[Path, Path]] = []  # (temporary file, target)

    def open(self, target: Path) -> TextIO:
        """A text file for `target` (checked first; its folder is made if missing)."""
        check_target(target, self.force)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        except OSError as exc:
            raise _unwritable(target, exc) from exc
        self._parts.append((Path(tmp), target))
        return os.fdopen(fd, "w", encoding="utf-8")

    def commit(self) -> None:
        """Rename every file over its target (each checked again: something may have appeared
        there while the export ran)."""
        new_mode = _new_file_mode()
        for tmp, target in self._parts:
            check_target(target, self.force)
            try:
                old = target.stat()
            except FileNotFoundError:
                mode = new_mode
            else:
                mode = stat.S_IMODE(old.st_mode)  # a replaced file keeps its permissions
            try:
                os.chmod(tmp, mode)
                os.replace(tmp, target)
            except OSError as exc:
                raise _unwritable(target, exc) from exc
        self._parts.clear()

    def discard(self) -> None:
        """Remove the temporary files; the targets stay as they were."""
        for tmp, _ in self._parts:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._parts.clear()
