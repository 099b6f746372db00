"""Files inside a log folder, reached without following any symbolic link.

Owns: opening LOGDIR once and every path below it component by component with O_NOFOLLOW
(a symlinked tile, bundle, checkpoint or folder is refused, never followed) and O_NONBLOCK (a
FIFO in place of a file is refused, never waited on), atomic writes
(temporary file, fsync, rename, then fsync of each folder touched), and the append lock
(`flock` on `LOGDIR/.lock`, itself opened with O_NOFOLLOW).
Does not own: what the files contain (see `reprover.tlog.log`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from reprover.errors import InconclusiveError, InputError, VerificationError

LOCK_NAME = ".lock"
MAX_FILE = 64 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# syncfs(2) makes every earlier write on the log's filesystem durable in one call; an append
# writes hundreds of tiles, and one fsync each costs more than hashing them (see bench_tlog).
_SYNCFS = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


class Store:
    """A log folder opened once; paths are `/`-separated and relative to it."""

    def __init__(self, root: Path) -> None:
        """Open the folder.

        Raises:
            InputError: it does not exist or is not a folder.
        """
        self.root = root
        try:
            self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(f"log folder {root} cannot be opened: {exc.strerror or exc}") from exc
        self._dirs: dict[str, int] = {"": self._fd}
        self._dirty: set[str] = set()

    def close(self) -> None:
        """Close every folder descriptor."""
        for fd in self._dirs.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dirs = {}

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dir(self, rel: str, *, create: bool) -> int:
        if rel in self._dirs:
            return self._dirs[rel]
        parent, _, name = rel.rpartition("/")
        parent_fd = self._dir(parent, create=create)
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent_fd)
                self._dirty.add(parent)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            raise self._error(rel, exc) from exc
        self._dirs[rel] = fd
        return fd

    def _error(self, rel: str, exc: OSError) -> Exception:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return VerificationError(
                f"{self.root}/{rel} is a symbolic link or not what the log layout expects; "
                "refusing to follow it",
                hint="a log folder holds plain files and folders only",
            )
        if exc.errno == errno.ENOENT:
            return VerificationError(f"{self.root}/{rel} is missing")
        return InconclusiveError(f"cannot open {self.root}/{rel}: {exc.strerror or exc}")

    def read(self, rel: str, *, limit: int = MAX_FILE) -> bytes:
        """Read a regular file.

        Raises:
            VerificationError: it is missing, a symlink, not a regular file, or too large.
            InconclusiveError: another OS error.
        """
        folder, _, name = rel.rpartition("/")
        try:
            fd = os.open(
                name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=self._dir(folder, create=False),
            )
        except OSError as exc:
            raise self._error(rel, exc) from exc
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise VerificationError(f"{self.root}/{rel} is not a regular file")
            if info.st_size > limit:
                raise VerificationError(f"{self.root}/{rel} is larger than {limit} bytes")
            return handle.read(limit + 1)

    def write(self, rel: str, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
        """Write `rel` atomically: a new temporary file, fsync, rename over the old one.

        The rename replaces a symlink at `rel` rather than writing through it. Call `sync`
        before relying on the new name surviving a crash. With `durable=False` the file is
        not fsynced: call `barrier` before anything that depends on it.

        Raises:
            VerificationError: a folder on the way is a symlink.
            InconclusiveError: the write failed; no partial file is left under `rel`.
        """
        folder, _, name = rel.rpartition("/")
        dir_fd = self._dir(folder, create=True)
        tmp = f".{name}.{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)  # a leftover, or whatever was planted there
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=dir_fd,
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise InconclusiveError(
                f"cannot write {self.root}/{rel}: {exc.strerror or exc}"
            ) from exc
        self._dirty.add(folder)

    def remove(self, rel: str) -> None:
        """Remove a file if it exists (best effort: a leftover is harmless)."""
        folder, _, name = rel.rpartition("/")
        with contextlib.suppress(OSError, VerificationError):
            os.unlink(name, dir_fd=self._dir(folder, create=False))
            self._dirty.add(folder)

    def remove_folder(self, rel: str) -> None:
        """Remove a folder of plain files if it exists (best effort, like `remove`)."""
        try:
            fd = self._dir(rel, create=False)
            names = os.listdir(fd)  # noqa: PTH208 - a folder descriptor, never a path
        except (OSError, VerificationError):
            return
        for name in names:
            self.remove(f"{rel}/{name}")
        parent, _, name = rel.rpartition("/")
        os.close(self._dirs.pop(rel))
        self._dirty.discard(rel)
        with contextlib.suppress(OSError, VerificationError):
            os.rmdir(name, dir_fd=self._dir(parent, create=False))
            self._dirty.add(parent)

    def sync(self) -> None:
        """fsync every folder whose entries changed, so renames survive a crash.

        Raises:
            InconclusiveError: an fsync failed.
        """
        for rel in sorted(self._dirty, key=len, reverse=True):
            try:
                os.fsync(self._dirs[rel])
            except OSError as exc:
                raise InconclusiveError(f"cannot sync {self.root}/{rel}: {exc}") from exc
        self._dirty.clear()

    def barrier(self) -> None:
        """Make every write so far durable (syncfs of the log's filesystem, else sync).

        Raises:
            InconclusiveError: syncfs failed.
        """
        if _SYNCFS is None:
            os.sync()
        elif _SYNCFS(self._fd) != 0:
            code = ctypes.get_errno()
            raise InconclusiveError(f"cannot sync {self.root}: {os.strerror(code)}")
        self._dirty.clear()

    def leftovers(self) -> Iterator[str]:
        """Temporary files a killed writer left behind (relative paths)."""
        for folder, _, files in os.walk(self.root):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    yield str(Path(folder, name).relative_to(self.root))

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the log's lock: exclusive to append or cosign, shared to read.

        A read-only copy of a log without a lock file is read without one.

        Raises:
            VerificationError: the lock file is a symlink or not a regular file.
            InconclusiveError: it cannot be created.
        """
        flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY
        try:
            fd = os.open(
                LOCK_NAME,
                flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                0o644,
                dir_fd=self._fd,
            )
        except FileNotFoundError:
            yield
            return
        except OSError as exc:
            raise self._error(LOCK_NAME, exc) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise VerificationError(f"{self.root}/{LOCK_NAME} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)
