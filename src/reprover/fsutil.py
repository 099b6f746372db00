"""Small filesystem helpers every layer may use: inputs, outputs, contained paths.

Owns: the rules for what reprover reads and writes, the same for every command:

- inputs are regular files and folders only: a FIFO, device or socket is refused (exit 2)
  before any byte is read, and so are symlink loops and dangling symlinks; in a folder,
  symlinks are followed only while they stay inside it (`regular_file`, `list_folder`);
- outputs (reports, keys, layouts, links, attestations) go to regular files only, never over
  a device, a folder or any input of the same run (compared by device and inode), and missing
  parent folders are created (`check_output`, `write_atomic`);
- an output is written atomically, so readers see the old file or the whole new one;
- a relative path is resolved inside a folder without escaping it (`contained`).

Does not own: reading or interpreting any file format.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from reprover.errors import InconclusiveError, InputError

FileId = tuple[int, int]


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


def _stat(path: Path, what: str) -> os.stat_result:
    """`path`'s status, following symlinks, with loops and dangling links as bad input."""
    try:
        return path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(
                f"{what} {path} is a symlink loop", hint="replace the link with the file itself"
            ) from exc
        if exc.errno == errno.ENOENT and path.is_symlink():
            raise InputError(f"{what} {path} is a dangling symlink") from exc
        if exc.errno == errno.ENOENT:
            raise InputError(f"{what} {path} does not exist") from exc
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except RuntimeError as exc:  # pathlib's own loop detection
        raise InputError(f"{what} {path} is a symlink loop") from exc


def regular_file(path: Path, *, what: str = "input") -> os.stat_result:
    """Check that `path` is (or links to) a regular file, without opening it.

    Raises:
        InputError: it does not exist, is a dangling symlink or a symlink loop, or is a
            FIFO, device, socket or folder (reading one could block or never end).
    """
    status = _stat(path, what)
    if not stat.S_ISREG(status.st_mode):
        raise InputError(
            f"{what} {path} is a {_kind(status.st_mode)}, not a regular file",
            hint="reprover reads only regular files and folders",
        )
    return status


def input_path(path: Path, *, what: str = "input") -> os.stat_result:
    """Check that `path` is a regular file or a folder.

    Raises:
        InputError: as `regular_file`, except that a folder is accepted.
    """
    status = _stat(path, what)
    if not (stat.S_ISREG(status.st_mode) or stat.S_ISDIR(status.st_mode)):
        raise InputError(
            f"{what} {path} is a {_kind(status.st_mode)}, not a regular file or folder",
            hint="reprover reads only regular files and folders",
        )
    return status


def list_folder(folder: Path, *, what: str = "file") -> dict[str, Path]:
    """Every regular file under `folder`, by relative `/`-separated path, sorted.

    Symlinks are followed only while they stay inside `folder` (a link to a folder lists that
    folder's files under the link's path). Nothing is skipped silently.

    Raises:
        InputError: a symlink points outside `folder`, dangles or loops, or an entry is a
            FIFO, device or socket.
    """
    files: dict[str, Path] = {}
    root = folder.resolve()
    _list_into(folder, "", root=root, stack={root}, files=files, what=what)
    return dict(sorted(files.items()))


def _list_into(
    folder: Path, prefix: str, *, root: Path, stack: set[Path], files: dict[str, Path], what: str
) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        name = f"{prefix}{entry.name}"
        path = folder / entry.name
        status = _stat(path, what)  # loops and dangling links raise here
        if entry.is_symlink():
            resolved = path.resolve()
            if resolved != root and root not in resolved.parents:
                raise InputError(
                    f"{what} {name!r} resolves to {resolved}, outside {root}",
                    hint="a symlink in the folder points outside it; replace it with the file",
                )
        if stat.S_ISDIR(status.st_mode):
            resolved = path.resolve()
            if resolved in stack:
                raise InputError(f"{what} {name} is a symlink loop (it links to a folder above it)")
            _list_into(
                path, f"{name}/", root=root, stack=stack | {resolved}, files=files, what=what
            )
        elif stat.S_ISREG(status.st_mode):
            files[name] = path
        else:
            raise InputError(
                f"{what} {name} in {root} is a {_kind(status.st_mode)}, not a regular file",
                hint="reprover reads only regular files and folders",
            )


def file_ids(paths: Iterable[Path]) -> set[FileId]:
    """(device, inode) of each existing path; of every file inside each folder, too.

    Paths that do not exist are left out (a missing input is reported where it is read).
    """
    ids: set[FileId] = set()
    for path in paths:
        try:
            status = path.stat()
        except (OSError, RuntimeError):
            continue
        ids.add((status.st_dev, status.st_ino))
        if stat.S_ISDIR(status.st_mode):
            for dirpath, _, names in os.walk(path):
                for name in names:
                    with contextlib.suppress(OSError):
                        inner = os.stat(os.path.join(dirpath, name))  # noqa: PTH116, PTH118
                        ids.add((inner.st_dev, inner.st_ino))
    return ids


def check_output(path: Path, inputs: set[FileId] | None = None, *, what: str = "output") -> None:
    """Refuse an output path before anything runs: only a regular file (new or replaced).

    Raises:
        InputError: `path` is a folder, device, FIFO or socket (or links to one), the same file
            as one of `inputs` (device and inode, so hard links and symlinks count), or a
            parent on its way is a file.
    """
    try:
        status: os.stat_result | None = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        status = None
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot use {what} {path}: {exc}") from exc
    if status is not None:
        if not stat.S_ISREG(status.st_mode):
            raise InputError(
                f"{what} {path} is a {_kind(status.st_mode)}; reports, keys, layouts, links "
                "and attestations are written only to regular files",
                hint="omit -o to write the report to stdout",
            )
        if inputs and (status.st_dev, status.st_ino) in inputs:
            raise InputError(
                f"{what} {path} is an input of this run; writing it would destroy that input",
                hint="choose another output path",
            )
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what} {path}: {parent} is not a folder")
            break


def check_outputs(outputs: Iterable[tuple[str, Path]], inputs: Iterable[Path] = ()) -> None:
    """`check_output` for each (what, path), and no two outputs naming the same file.

    Raises:
        InputError: as `check_output`, or two outputs name the same file.
    """
    ids = file_ids(inputs)
    seen: dict[Path, str] = {}
    for what, path in outputs:
        key = path.absolute()
        if key in seen:
            raise InputError(
                f"{what} and {seen[key]} would both be written to {path}",
                hint="use one path each",
            )
        seen[key] = what
        check_output(path, ids, what=what)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync, rename.

    Missing parent folders are created. The target must be a regular file or not exist.

    Raises:
        InputError: the target is a folder, device, FIFO or socket (see `check_output`).
        InconclusiveError: the folder cannot be created or written, the disk is full, or any
            other OS error; no partial file is left behind.
    """
    check_output(path)
    folder = path.parent if str(path.parent) else Path()
    tmp_name: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
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
    try:
        root = base.resolve()
        resolved = candidate.resolve()
    except RuntimeError as exc:  # pathlib's loop detection (Python < 3.13)
        raise InputError(f"{what} {relative!r} is a symlink loop") from exc
    if resolved != root and root not in resolved.parents:
        raise InputError(
            f"{what} {relative!r} resolves to {resolved}, outside {root}",
            hint="a symlink in the folder points outside it; replace it with the file itself",
        )
    return candidate


MEMBER_SEPARATOR = "!"  # outer!inner names archive members in reports


def refuse_member_separator(name: str, what: str = "released artifact") -> None:
    """Refuse a file name holding `!`, the separator of archive members in reports.

    Raises:
        InputError: `name` holds it (`a.zip!b` would read as member `b` of `a.zip`).
    """
    if MEMBER_SEPARATOR in name:
        raise InputError(
            f"{what} {name!r} has {MEMBER_SEPARATOR!r} in its name, the separator "
            "reprover uses for archive members ('setup.zip!engine.dll'): its results could "
            "not be told from a member's",
            hint="rename the file (or leave it out of the folder)",
        )
