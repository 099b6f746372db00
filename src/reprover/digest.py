"""Streaming SHA-256 of files, several files at once.

Owns: hashing the bytes as read, in bounded memory, in parallel threads (hashlib releases the
GIL on large buffers, so two files hash on two cores).
Does not own: deciding what to hash (see `reprover.verify`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reprover.errors import InputError
from reprover.model import Digest

BLOCK = 1 << 20


def hash_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> Digest:
    """Return the SHA-256 and size of the file at `path`, read once in 1 MiB blocks.

    `on_bytes`, when given, is called with the size of each block read (for progress).

    Raises:
        InputError: the file cannot be opened or read.
    """
    sha = hashlib.sha256()
    size = 0
    try:
        with path.open("rb", buffering=0) as stream:
            # size the buffer to the file: zeroing 1 MiB per small file dominated tree hashing
            buffer = bytearray(min(BLOCK, os.fstat(stream.fileno()).st_size + 1))
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
