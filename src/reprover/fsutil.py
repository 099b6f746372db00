"""Small filesystem helpers every layer may use: atomic writes and contained paths.

Owns: writing an output so that readers see the old file or the whole new one, never a part;
resolving a relative path inside a folder without escaping it.
Does not own: reading or interpreting any file format.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from reprover.errors import InconclusiveError, InputError


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync, rename.

    Raises:
        InconclusiveError: the folder is not writable, the disk is full, or any other OS error;
            no partial file is left behind.
    """
    folder = path.parent if str(path.parent) else Path()
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(tmp_name).chmod(mode)
        Path(tmp_name).replace(path)
        tmp_name = None
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise InconclusiveError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="check that the folder exists, is writable and has free space",
        ) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink()


def contained(base: Path, relative: str, *, what: str) -> Path:
    """Resolve `relative` under `base`, refusing absolute paths, `..` and symlinks out of `base`.

    Args:
        base: the folder the path must stay in.
        relative: a path as a user or a file wrote it, with `/` separators.
        what: how to name the path in an error message ("artifact path", ...).

    Raises:
        InputError: the path is empty, absolute, contains `..`, or resolves outside `base`.
    """
    if not relative or relative.startswith(("/", "\\")) or Path(relative).is_absolute():
        raise InputError(f"{what} {relative!r} must be a relative path inside {base}")
    parts = relative.replace("\\", "/").split("/")
    if ".." in parts or "" in parts[:-1]:
        raise InputError(f"{what} {relative!r} must not contain '..' or empty components")
    candidate = base / relative
    root = base.resolve()
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise InputError(
            f"{what} {relative!r} resolves to {resolved}, outside {root}",
            hint="a symlink in the folder points outside it; replace it with the file itself",
        )
    return candidate
