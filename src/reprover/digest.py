"""Streaming SHA-256 of files, several files at once, and private copies hashed as copied.

Owns: hashing the bytes as read, in bounded memory, in parallel threads (hashlib releases the
GIL on large buffers, so two files hash on two cores); copying an open file into a private
folder while hashing it, so that the digest and the copy are one read of the same bytes
(`copy_and_hash`, `snapshot_files`).
Does not own: deciding what to hash or copy (see `reprover.snapshot`, `reprover.outputs`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reprover.errors import InputError
from reprover.model import Digest
from reprover.workarea import create_file

BLOCK = 1 << 20


def hash_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> Digest:
    """Return the SHA-256 and size of the file at `path`, read once in 1 MiB blocks.

    `on_bytes`, when given, is called with the size of each block read (for progress).

    Raises:
        InputError: the file cannot be opened or read, or is not a regular file.
    """
    sha = hashlib.sha256()
    size = 0
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb", buffering=0) as stream:
            status = os.fstat(stream.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise InputError(
                    f"{path} is not a regular file (a FIFO, device or socket); not read",
                    hint="reprover reads only regular files",
                )
            # size the buffer to the file: zeroing 1 MiB per small file dominated tree hashing
            buffer = bytearray(min(BLOCK, status.st_size + 1))
            view = memoryview(buffer)
            while n := stream.readinto(buffer):
                sha.update(view[:n])
                size += n
                if on_bytes is not None:
                    on_bytes(n)
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="check that the file exists and is readable",
        ) from exc
    return Digest(sha256=sha.hexdigest(), size=size)


def hash_files(
    paths: Iterable[Path],
    *,
    workers: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[Path, Digest]:
    """Hash several files in parallel; the result maps each path to its digest.

    `on_bytes` is called with each block's size, from several threads at once.

    Raises:
        InputError: any file cannot be read.
    """
    unique = list(dict.fromkeys(paths))
    if len(unique) <= 1:
        return {p: hash_file(p, on_bytes) for p in unique}
    workers = workers or min(len(unique), os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = pool.map(lambda p: hash_file(p, on_bytes), unique)
        return dict(zip(unique, digests, strict=True))


def hash_fd(source: int) -> Digest:
    """The digest of the open file `source`, read from its start.

    Raises:
        OSError: reading fails.
    """
    sha = hashlib.sha256()
    size = 0
    buffer = bytearray(min(BLOCK, os.fstat(source).st_size + 1))
    while n := os.preadv(source, [buffer], size):
        sha.update(memoryview(buffer)[:n])
        size += n
    return Digest(sha256=sha.hexdigest(), size=size)


def copy_and_hash(source: int, dest: Path, on_bytes: Callable[[int], None] | None = None) -> Digest:
    """Copy the open file `source` (read from its start) to the new file `dest`; hash as copied.

    `dest` must not exist (it is created with O_EXCL|O_NOFOLLOW, mode 0600).

    Raises:
        OSError: reading or writing fails.
    """
    sha = hashlib.sha256()
    size = 0
    out = create_file(dest)
    try:
        buffer = bytearray(min(BLOCK, os.fstat(source).st_size + 1))
        view = memoryview(buffer)
        offset = 0
        while n := os.preadv(source, [buffer], offset):
            chunk = view[:n]
            sha.update(chunk)
            while chunk:
                chunk = chunk[os.write(out, chunk) :]
            offset += n
            size += n
            if on_bytes is not None:
                on_bytes(n)
    finally:
        os.close(out)
    return Digest(sha256=sha.hexdigest(), size=size)


def snapshot_files(
    sources: Mapping[str, Path],
    folder: Path,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[str, tuple[Path, Digest]]:
    """Copy each file into `folder` (new, private) under its name, hashing it as copied.

    Each source is opened once; it must be a regular file. The result maps each name to the
    private copy and the digest of the bytes copied, which later steps use instead of the
    original path.

    Raises:
        InputError: a file cannot be opened or read, or is not a regular file.
    """

    def one(item: tuple[str, Path]) -> tuple[Path, Digest]:
        name, path = item
        dest = folder / name
        try:
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise InputError(f"{path} is not a regular file")
                return dest, copy_and_hash(fd, dest, on_bytes)
            finally:
                os.close(fd)
        except OSError as exc:
            raise InputError(
                f"cannot read {path}: {exc.strerror or exc}",
                hint="check that the file exists and is readable",
            ) from exc

    items = list(sources.items())
    workers = min(len(items), os.cpu_count() or 1, 8) or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip((n for n, _ in items), pool.map(one, items), strict=True))
