"""Taking the rebuilt outputs: opened, never followed.

Owns: finding the output folder inside the checkout and each rebuilt artifact inside it by
walking the path one component at a time from an open folder descriptor (`openat` with
`O_NOFOLLOW`), so that no symbolic link is followed at any component; accepting only regular
files with a single name (no FIFO, device, socket, folder, symlink, or hard link that could be
a file from elsewhere); and copying each accepted file into the run's private folder while
hashing it, so that the comparison and a rebuild link's products use those very bytes.
Every refusal names the artifact and the reason.
Does not own: comparing (`reprover.compare`) or deciding the verdict (`reprover.verify`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reprover.digest import copy_and_hash, hash_fd
from reprover.model import Digest

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class RefusedError(Exception):
    """A path in the checkout that is not taken; the message says why."""


@dataclass
class Outputs:
    """What the build produced, as taken.

    `files` maps an artifact name to its private copy, `digests` to the digest of the copied
    bytes; `refused` maps a name to the reason it was not taken; `problem` says why the output
    folder itself was refused (then nothing was taken). `unexpected` holds the digests of
    regular files found in the output folder beyond the requested names (when listed).
    """

    files: dict[str, Path] = field(default_factory=dict)
    digests: dict[str, Digest] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    unexpected: dict[str, Digest] = field(default_factory=dict)
    problem: str | None = None


def take(
    checkout: Path,
    output: str,
    names: Sequence[str] | None,
    dest: Path,
    *,
    list_others: bool,
    limits: Mapping[str, int] | None = None,
) -> Outputs:
    """Take the rebuilt artifacts `names` from `checkout/output` into `dest` (a new folder).

    When `output` is a regular file and one name is asked for, that file is the artifact.
    With `names` None, every file under the output folder is taken, or refused with the
    reason when it is not a regular file of its own (for a single file: under its own name).
    With `list_others`, every other regular file under the output folder is hashed (read
    through the same descriptors) and listed in `unexpected`. `limits` caps the size of a
    named artifact: a larger one is refused unread (a sparse terabyte must not fill the disk).
    """
    found = Outputs()
    dest.mkdir(mode=0o700)
    try:
        with _open_dir(checkout) as root, _walk(root, output, last_may_be_file=True) as top:
            if not stat.S_ISDIR(os.fstat(top).st_mode):
                _take_single(found, names or [Path(output).name], top, dest, output, limits=limits)
                return found
            everything = list(_entries(top, ""))
            if names is None:
                names = [name for name, _ in everything]
            for name in names:
                try:
                    with _walk(top, name) as fd:
                        _take_one(found, name, fd, dest, f"{output}/{name}", limits=limits)
                except RefusedError as exc:
                    found.refused[name] = str(exc)
                except OSError as exc:
                    found.refused[name] = f"cannot read it: {exc.strerror or exc}"
            if list_others:
                for name, regular in everything:
                    if regular and name not in found.files and name not in found.refused:
                        with contextlib.suppress(RefusedError, OSError), _walk(top, name) as fd:
                            found.unexpected[name] = hash_fd(fd)
    except RefusedError as exc:
        found.problem = str(exc)
    except OSError as exc:
        found.problem = f"the output folder {output} cannot be read: {exc.strerror or exc}"
    return found


def _take_single(
    found: Outputs,
    names: Sequence[str],
    fd: int,
    dest: Path,
    output: str,
    *,
    limits: Mapping[str, int] | None,
) -> None:
    if len(names) != 1:
        raise RefusedError(f"the output {output} is a file, but several artifacts are named")
    _take_one(found, names[0], fd, dest, output, limits=limits)


def _take_one(
    found: Outputs, name: str, fd: int, dest: Path, shown: str, *, limits: Mapping[str, int] | None
) -> None:
    info = os.fstat(fd)
    limit = (limits or {}).get(name)
    if limit is not None and info.st_size > limit:
        raise RefusedError(
            f"rebuilt {shown} is {info.st_size} bytes, more than the {limit} this release allows "
            "(4 times the released file plus 64 MiB); not read"
        )
    if not stat.S_ISREG(info.st_mode):
        raise RefusedError(f"rebuilt {shown} is {_kind(info.st_mode)}, not a regular file")
    if info.st_nlink != 1:
        raise RefusedError(
            f"rebuilt {shown} has {info.st_nlink} hard links; an output must be a file of its "
            "own (a hard link may be a file from outside the build)"
        )
    copy = dest / f"{len(found.files)}-{Path(name).name}"
    found.digests[name] = copy_and_hash(fd, copy)
    found.files[name] = copy


@contextlib.contextmanager
def _open_dir(path: Path) -> Iterator[int]:
    fd = os.open(path, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _walk(top: int, relative: str, *, last_may_be_file: bool = True) -> Iterator[int]:
    """Open `relative` under the folder `top`, component by component, following no link.

    Raises:
        RefusedError: a component is a symbolic link, `..`, absolute, missing, or not a folder.
    """
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if relative.startswith("/") or ".." in parts:
        raise RefusedError(f"{relative!r} is not a plain relative path")
    fd = os.dup(top)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            info = _lstat(fd, part, relative)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(part, dir_fd=fd)
                raise RefusedError(
                    f"{'/'.join(parts[: index + 1])} is a symbolic link (to {target}); outputs "
                    "are taken inside the checkout, never followed"
                )
            if stat.S_ISDIR(info.st_mode):
                new = os.open(part, _DIR_FLAGS, dir_fd=fd)
            elif last and last_may_be_file and stat.S_ISREG(info.st_mode):
                new = os.open(part, _FILE_FLAGS, dir_fd=fd)
            elif last:
                raise RefusedError(
                    f"rebuilt {relative} is {_kind(info.st_mode)}, not a regular file"
                )
            else:
                raise RefusedError(f"{'/'.join(parts[: index + 1])} is not a folder")
            os.close(fd)
            fd = new
            if os.fstat(fd).st_ino != info.st_ino:
                raise RefusedError(f"{relative} changed while it was opened")
        yield fd
    finally:
        os.close(fd)


def _lstat(fd: int, part: str, relative: str) -> os.stat_result:
    try:
        return os.stat(part, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        raise RefusedError(f"{relative} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise RefusedError(f"{relative}: a component is not a folder") from None
        raise


def _entries(top: int, prefix: str) -> Iterator[tuple[str, bool]]:
    """Every non-folder entry under the folder `top` (recursively, links not followed), sorted,
    with whether it is a regular file."""
    with os.scandir(top) as listing:
        entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in listing)
    for name, is_dir in entries:
        relative = f"{prefix}{name}"
        if not is_dir:
            with contextlib.suppress(OSError):
                mode = os.stat(name, dir_fd=top, follow_symlinks=False).st_mode
                yield relative, stat.S_ISREG(mode)
            continue
        with contextlib.suppress(OSError):
            sub = os.open(name, _DIR_FLAGS, dir_fd=top)
            try:
                yield from _entries(sub, f"{relative}/")
            finally:
                os.close(sub)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"
