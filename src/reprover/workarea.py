"""The private working area of one run: fresh folders nobody else can enter or predict.

Owns: making a folder with `mkdtemp` (mode 0700, random name) for a run's checkout, snapshot
and HOME, and one for its build log; creating files in them with `O_EXCL|O_NOFOLLOW`; removing
a folder a hostile build may have left unremovable (read-only subfolders).
Does not own: what goes into the folders (`reprover.snapshot`, `reprover.build`).

Nothing reprover writes during a verification sits at a predictable name in a shared folder: a
link planted by another local user cannot redirect it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reprover.errors import InconclusiveError


@contextlib.contextmanager
def private_folder(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A new folder (0700) under the temporary directory, removed afterwards unless `keep`.

    Raises:
        InconclusiveError: the folder cannot be made.
    """
    folder = make_private(prefix)
    try:
        yield folder
    finally:
        if not keep:
            remove_tree(folder)


def make_private(prefix: str) -> Path:
    """A new folder (0700) under the temporary directory; the caller removes it.

    Raises:
        InconclusiveError: the folder cannot be made.
    """
    try:
        return Path(tempfile.mkdtemp(prefix=prefix))
    except OSError as exc:
        raise InconclusiveError(
            f"cannot make a private folder in {tempfile.gettempdir()}: {exc.strerror or exc}",
            hint="set TMPDIR to a writable folder with free space",
        ) from exc


def create_file(path: Path, mode: int = 0o600) -> int:
    """Create `path` for writing, failing if anything exists there; return its descriptor.

    Raises:
        OSError: the file exists (even as a dangling link) or cannot be created.
    """
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def remove_tree(folder: Path) -> None:
    """Remove `folder` and everything in it, making read-only subfolders writable first.

    Never follows a symbolic link out of the folder (`shutil.rmtree` unlinks links).
    """

    def retry(_function: object, name: str, _exc: object) -> None:
        path = Path(name)
        with contextlib.suppress(OSError):
            path.parent.chmod(stat.S_IRWXU)
            if path.is_dir() and not path.is_symlink():
                path.chmod(stat.S_IRWXU)
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()

    if folder.exists():
        shutil.rmtree(folder, onerror=retry)  # onexc is 3.12+
