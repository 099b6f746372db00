"""Recording a step as a signed in-toto link, hashing its artifacts in parallel.

Owns: listing the artifacts of a folder the way in-toto's recorder names them (paths relative
to the folder, `/` separators, its default exclude patterns applied to every path component,
directory symlinks not followed, file symlinks only when they stay inside the folder); the
files git tracks in a checkout (the source tree at the commit, without `.git` or build
outputs); building and signing the link and naming it `STEP.KEYID8.link`.
Does not own: hashing one file (the caller passes `reprover.digest.hash_file`, keeping the
layers apart) or writing the file (the CLI writes it atomically).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path

from in_toto.models.link import FILENAME_FORMAT, Link
from securesystemslib.signer import Signer

from reprover.errors import InconclusiveError, InputError, ToolMissingError
from reprover.intoto.metadata import serialize, sign
from reprover.model import Digest

# in-toto's own defaults (in_toto.settings.ARTIFACT_EXCLUDE_PATTERNS), so that links recorded by
# reprover and by in-toto's tools name the same artifacts.
DEFAULT_EXCLUDES = ("*.link*", ".git", "*.pyc", "*~")
PROCESS_THRESHOLD = 2000

Hasher = Callable[[Path], Digest]


def list_artifacts(root: Path, exclude: Sequence[str] = DEFAULT_EXCLUDES) -> dict[str, Path]:
    """Map each file under `root` (or `root` itself, if a file) to its path, in-toto's way.

    Raises:
        InputError: `root` does not exist, or a symlink points outside it.
    """
    if root.is_file():
        return {root.name: root}
    if not root.is_dir():
        raise InputError(f"{root} does not exist")
    top = root.resolve()
    found: dict[str, Path] = {}
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if any(fnmatchcase(entry.name, pattern) for pattern in exclude):
                    continue
                name = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), name + "/"))
                elif entry.is_symlink():
                    _symlink(Path(entry.path), top, name, found)
                elif entry.is_file(follow_symlinks=False):
                    found[name] = Path(entry.path)
    return dict(sorted(found.items()))


def _symlink(path: Path, top: Path, name: str, found: dict[str, Path]) -> None:
    target = path.resolve()
    if top not in target.parents:
        raise InputError(
            f"{name} is a symlink to {target}, outside {top}",
            hint="a recorded tree must not point outside itself",
        )
    if target.is_file():  # in-toto records linked files; dangling links are skipped as it does
        found[name] = path


def tracked_files(checkout: Path, exclude: Sequence[str] = DEFAULT_EXCLUDES) -> dict[str, Path]:
    """The files git tracks at HEAD in `checkout`, unchanged since checkout, as artifacts.

    Raises:
        ToolMissingError: git is not installed.
        InconclusiveError: git fails, or a tracked file was modified (by the build).
    """
    listing = _git(checkout, "ls-files", "-z", "--cached", "--stage")
    changed = _git(checkout, "status", "--porcelain", "-z", "--untracked-files=no")
    if changed.strip("\0"):
        names = [entry[3:] for entry in changed.split("\0") if entry][:5]
        raise InconclusiveError(
            f"the build changed tracked source files ({', '.join(names)}): the source tree at "
            "the commit can no longer be recorded from the checkout",
            hint="make the build write only to its output folder",
        )
    found: dict[str, Path] = {}
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, name = entry.split("\t", 1)
        if meta.startswith("160000"):  # a submodule: not part of this tree's files
            continue
        if any(fnmatchcase(part, p) for part in name.split("/") for p in exclude):
            continue
        path = checkout / name
        if path.is_symlink():
            _symlink(path, checkout.resolve(), name, found)
        else:
            found[name] = path
    return found


def _git(checkout: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(checkout),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }
    try:
        done = subprocess.run(
            # hooks and fsmonitor off: the checkout was writable by the build (its .git is not)
            [
                "git",
                "-c",
                "core.quotepath=off",
                "-c",
                "core.fsmonitor=false",
                "-c",
                "core.hooksPath=/dev/null",
                *args,
            ],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    except FileNotFoundError as exc:
        raise ToolMissingError("git is not installed", hint="apt-get install git") from exc
    except subprocess.TimeoutExpired as exc:
        raise InconclusiveError(f"git {args[0]} timed out in {checkout}") from exc
    if done.returncode != 0:
        raise InconclusiveError(f"git {args[0]} failed in {checkout}: {done.stderr.strip()}")
    return done.stdout


def hash_artifacts(artifacts: Mapping[str, Path], hash_one: Hasher) -> dict[str, dict[str, str]]:
    """The in-toto artifact dictionary (`{name: {"sha256": hex}}`), hashed in parallel.

    `hash_one` hashes one file (`reprover.digest.hash_file`); it must be a module-level
    function. Small sets are hashed by threads (hashlib releases the GIL on large blocks);
    large trees of small files by worker processes, each hashing its share of the files in
    turn, since threads hashing small files mostly wait for the GIL.

    Raises:
        InputError: a file cannot be read (from `hash_one`).
    """
    paths = list(artifacts.values())
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(paths) < 2:
        digests = [hash_one(p).sha256 for p in paths]
    elif len(paths) < PROCESS_THRESHOLD:
        with ThreadPoolExecutor(max_workers=workers) as threads:
            digests = [d.sha256 for d in threads.map(hash_one, paths)]
    else:
        shares = [paths[i :: workers * 4] for i in range(workers * 4)]
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            parts = list(pool.map(partial(_hash_share, hash_one), shares))
        by_path = {
            p: d
            for share, part in zip(shares, parts, strict=True)
            for p, d in zip(share, part, strict=True)
        }
        digests = [by_path[p] for p in paths]
    return {name: {"sha256": d} for name, d in zip(artifacts, digests, strict=True)}


def _hash_share(hash_one: Hasher, paths: list[Path]) -> list[str]:
    return [hash_one(p).sha256 for p in paths]


def make_link(
    name: str,
    materials: Mapping[str, Mapping[str, str]],
    products: Mapping[str, Mapping[str, str]],
    signer: Signer,
    *,
    command: Sequence[str] = (),
    legacy: bool = False,
) -> tuple[str, bytes]:
    """Build and sign the link of step `name`.

    Returns:
        The file name in-toto expects (`NAME.KEYID8.link`) and the file's bytes.
    """
    link = Link(
        name=name,
        materials={k: dict(v) for k, v in materials.items()},
        products={k: dict(v) for k, v in products.items()},
        byproducts={},
        command=list(command),
        environment={},
    )
    metadata = sign(link, signer, legacy=legacy)
    return FILENAME_FORMAT.format(step_name=name, keyid=signer.public_key.keyid), serialize(
        metadata
    )
