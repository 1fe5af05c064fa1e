"""Open paths beneath a directory, never through a symbolic link.

The file tools run on the host while the agent's sessions may rewrite the workspace at any
moment, so a path that is checked and then opened can be swapped for a symlink in between.
Nothing here checks a name and then uses it again from the top: every path is resolved by the
kernel relative to a directory descriptor, refusing any link on the way, and what it finds is
used through descriptors (fstat, scandir, renameat) from then on. Paths are resolved with
openat2(2) and RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it (Linux 5.6+), and
otherwise by opening one component at a time with O_NOFOLLOW from the directory's descriptor.
Both refuse every symbolic link, also one that points inside: a link's target can change
between two calls, the directory it sits in cannot.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = 437  # one number on every Linux architecture (the unified table since 5.1)


class LinkRefused(OSError):
    """The path goes through a symbolic link (`link`, relative to the directory), which is
    never followed."""

    def __init__(self, link: str, target: str) -> None:
        super().__init__(errno.ELOOP, "is a symbolic link, which is not followed", link)
        self.link = link
        self.target = target


class NotRegularFile(OSError):
    """The path is a FIFO, socket or device, not a regular file."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_openat2() -> Callable[[int, str, int, int], int] | None:
    """openat2 beneath a descriptor without links, or None where the kernel (or a seccomp
    filter) does not offer it."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(dirfd: int, path: str, flags: int, mode: int) -> int:
        # The kernel refuses a mode without O_CREAT or O_TMPFILE (which includes O_DIRECTORY).
        creates = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE
        how = _OpenHow(flags, mode if creates else 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
        fd: int = libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return fd

    try:
        os.close(call(-100, ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0))  # AT_FDCWD
    except OSError:
        return None  # ENOSYS (kernel < 5.6) or EPERM (a seccomp filter)
    return call


#: openat2(dirfd, path, flags, mode) -> fd, resolving beneath dirfd without links; None where
#: the kernel lacks it, and then the O_NOFOLLOW walk is used (tests set it to None to check it).
openat2 = _load_openat2()


def _parts(rel: str) -> list[str]:
    """The components of a relative path; '' and '.' mean the directory itself."""
    if rel.startswith("/") or "\0" in rel:
        raise ValueError(f"{rel!r} is not a relative path")
    parts = [part for part in rel.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{rel!r} contains '..'; normalise it before opening")
    return parts


@dataclass(frozen=True)
class Entry:
    """One name in a directory, as found (links are reported, never followed)."""

    name: str
    kind: Literal["file", "dir", "link", "other"]
    size: int
    target: str  # where a link points; "" for everything else


class Beneath:
    """A directory whose paths are opened beneath it, never through a symbolic link.

    `root` itself is trusted (the caller made it); everything below it is not."""

    def __init__(self, root: Path) -> None:
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        """Release the directory's descriptor."""
        os.close(self.fd)

    def __enter__(self) -> Beneath:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self, rel: str, flags: int, mode: int = 0o666) -> int:
        """A descriptor for `rel` (relative, normalised); LinkRefused if any component is a
        symbolic link, the OSError of open(2) for anything else."""
        parts = _parts(rel)
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            if openat2 is not None:
                return openat2(self.fd, "/".join(parts) or ".", flags, mode)
            return self._walk_open(parts, flags, mode)
        except OSError as exc:
            # The walk says ENOTDIR for a link where a folder was needed, openat2 says ELOOP.
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                self._raise_for_link(parts)
            raise

    def _walk_open(self, parts: list[str], flags: int, mode: int) -> int:
        if not parts:
            return os.open(".", flags, mode, dir_fd=self.fd)
        opened: list[int] = []
        try:
            here = self.fd
            for name in parts[:-1]:
                here = os.open(name, _DIR_FLAGS, dir_fd=here)
                opened.append(here)
            return os.open(parts[-1], flags, mode, dir_fd=here)
        finally:
            for fd in opened:
                os.close(fd)

    def _raise_for_link(self, parts: list[str]) -> None:
        """Raise LinkRefused naming the first link of `parts`, if there is one (now)."""
        here = os.open(".", _DIR_FLAGS, dir_fd=self.fd)
        try:
            for depth, name in enumerate(parts, start=1):
                try:
                    info = os.stat(name, dir_fd=here, follow_symlinks=False)
                    if stat.S_ISLNK(info.st_mode):
                        target = os.readlink(name, dir_fd=here)
                        raise LinkRefused("/".join(parts[:depth]), target)
                    if depth == len(parts) or not stat.S_ISDIR(info.st_mode):
                        return
                    child = os.open(name, _DIR_FLAGS, dir_fd=here)
                except LinkRefused:
                    raise
                except OSError:
                    return  # it changed under us; the caller's own error stands
                os.close(here)
                here = child
        finally:
            os.close(here)

    def open_dir(self, rel: str) -> int:
        """A descriptor for the directory `rel`."""
        return self.open(rel, os.O_RDONLY | os.O_DIRECTORY)

    def stat(self, rel: str) -> os.stat_result:
        """The status of what `rel` names (never of a link's target)."""
        fd = self.open(rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def open_file(self, rel: str) -> BinaryIO:
        """The regular file `rel`, open for reading; IsADirectoryError or NotRegularFile for
        anything else (a FIFO is opened without blocking, and refused)."""
        fd = self.open(rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", rel)
            if not stat.S_ISREG(mode):
                raise NotRegularFile(errno.EINVAL, "is not a regular file", rel)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def make_dirs(self, rel: str) -> int:
        """A descriptor for the directory `rel`, making the missing ones on the way."""
        parts = _parts(rel)
        here = os.open(".", _DIR_FLAGS, dir_fd=self.fd)
        try:
            for depth, name in enumerate(parts, start=1):
                try:
                    child = self._child_dir(here, name)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        self._raise_for_link(parts[:depth])
                    raise
                os.close(here)
                here = child
        except BaseException:
            os.close(here)
            raise
        return here

    @staticmethod
    def _child_dir(here: int, name: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=here)
        except FileNotFoundError:
            # Made meanwhile by someone else: open whatever is there now.
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=here)
            return os.open(name, _DIR_FLAGS, dir_fd=here)

    def write(self, rel: str, data: bytes) -> None:
        """Replace (or create) the file `rel` with `data` atomically, making missing folders.

        The data goes to a new file beside it, renamed over the name within the one open
        directory: a link swapped in meanwhile is replaced, never written through. An existing
        file's permissions are kept."""
        parts = _parts(rel)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "is a directory", rel or ".")
        name = parts[-1]
        folder = self.make_dirs("/".join(parts[:-1]))
        try:
            try:
                old: os.stat_result | None = os.stat(name, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and stat.S_ISLNK(old.st_mode):
                raise LinkRefused(rel, os.readlink(name, dir_fd=folder))
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", rel)
            temp = f".apollo-write-{secrets.token_hex(8)}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(temp, flags, 0o666, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    if old is not None and stat.S_ISREG(old.st_mode):
                        os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
                    f.write(data)
                os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=folder)
                raise
        finally:
            os.close(folder)

    def entries(self, rel: str) -> list[Entry]:
        """The names in the directory `rel`, sorted; links are reported with their target and
        names that vanish while listing are left out."""
        fd = self.open_dir(rel)
        found: list[Entry] = []
        try:
            with os.scandir(fd) as listing:
                for item in listing:
                    try:
                        found.append(_entry(fd, item))
                    except FileNotFoundError:
                        continue
        finally:
            os.close(fd)
        return sorted(found, key=lambda e: e.name)


def _entry(fd: int, item: os.DirEntry[str]) -> Entry:
    info = item.stat(follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        return Entry(item.name, "link", 0, os.readlink(item.name, dir_fd=fd))
    if stat.S_ISDIR(info.st_mode):
        return Entry(item.name, "dir", 0, "")
    if stat.S_ISREG(info.st_mode):
        return Entry(item.name, "file", info.st_size, "")
    return Entry(item.name, "other", 0, "")
