"""Streaming SHA-256 of files, several files at once.

Owns: hashing the bytes as read, in bounded memory, in parallel threads (hashlib releases the
GIL on large buffers, so two files hash on two cores).
Does not own: deciding what to hash (see `reprover.verify`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reprover.errors import InputError
from reprover.model import Digest

BLOCK = 1 << 20


def hash_file(path: Path) -> Digest:
    """Return the SHA-256 and size of the file at `path`, read once in 1 MiB blocks.

    Raises:
        InputError: the file cannot be opened or read.
    """
    sha = hashlib.sha256()
    size = 0
    try:
        with path.open("rb", buffering=0) as stream:
            buffer = bytearray(BLOCK)
            view = memoryview(buffer)
            while n := stream.readinto(buffer):
                sha.update(view[:n])
                size += n
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror or exc}",
            hint="check that the file exists and is readable",
        ) from exc
    return Digest(sha256=sha.hexdigest(), size=size)


def hash_files(paths: Iterable[Path], *, workers: int | None = None) -> dict[Path, Digest]:
    """Hash several files in parallel; the result maps each path to its digest.

    Raises:
        InputError: any file cannot be read.
    """
    unique = list(dict.fromkeys(paths))
    if len(unique) <= 1:
        return {p: hash_file(p) for p in unique}
    workers = workers or min(len(unique), os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(hash_file, unique), strict=True))
