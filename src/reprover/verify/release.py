"""The released files: which are artifacts, which are unlisted or ignored (steps 1 and 2).

Owns: `released_artifacts` (each artifact's released file, refused when missing, outside the
release folder, not a regular file, or named with the archive-member separator `!`) and
`unverified_results` (the released files that are not artifacts: `unlisted`, which fails, or
matched by `[release] ignore`, listed with their digests in a passed check).
Does not own: copying and hashing the artifacts for the run (`reprover.snapshot`), the
pipeline (`reprover.verify`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

from reprover.digest import hash_files
from reprover.errors import InputError
from reprover.fsutil import (
    contained,
    input_path,
    list_folder,
    refuse_member_separator,
    regular_file,
)
from reprover.model import ArtifactResult, ArtifactVerdict, CheckResult, Manifest


def released_artifacts(spec: Manifest) -> dict[str, Path]:
    """Step 2: map each artifact's relative path to its released file.

    Raises:
        InputError: the release path is missing or empty, or an artifact is missing, escapes
            the release folder, loops, is not a regular file (FIFO, device, socket), or its
            name holds `!` (the separator of archive members: `a.zip!b` would be read as
            member `b` of `a.zip`, in reports and attestation subjects alike).
    """
    release = spec.release
    if not release.exists():
        raise InputError(
            f"release path {release} does not exist",
            hint="set [release] path to the folder (or file) of released artifacts",
        )
    input_path(release, what="release path")
    if release.is_file():
        if spec.artifacts:
            raise InputError("[[artifact]] entries need [release] path to be a folder")
        refuse_member_separator(release.name)
        return {release.name: release}
    if spec.artifacts:
        names = list(spec.artifacts)
    else:
        names = [n for n in _release_files(release) if not _ignored(n, spec.release_ignore)]
    if not names:
        raise InputError(f"release folder {release} holds no files", hint="nothing to verify")
    files = {}
    for name in names:
        refuse_member_separator(name)
        path = contained(release, name, what="released artifact")
        if not path.exists() and not path.is_symlink():
            raise InputError(f"released artifact {name} is missing from {release}")
        regular_file(path, what="released artifact")
        files[name] = path
    return files


def unverified_results(
    spec: Manifest,
) -> tuple[tuple[ArtifactResult, ...], CheckResult | None]:
    """Step 2: the released files that are not artifacts, hashed before the build.

    With `[[artifact]]`, every other file under the release folder is `unlisted` (which
    fails), unless a `[release] ignore` pattern matches it; ignored files (in either mode) are
    listed with their digests in a passed `release-ignored` check. The folder is listed as
    everywhere (`_release_files`): symlinks followed only inside it.

    Raises:
        InputError: a file cannot be read, or the folder holds what `_release_files` refuses.
    """
    if not spec.release.is_dir():
        return (), None
    listed = set(spec.artifacts)
    unlisted: list[str] = []
    ignored: list[str] = []
    for name in _release_files(spec.release):
        if name in listed:
            continue
        if _ignored(name, spec.release_ignore):
            ignored.append(name)
        elif spec.artifacts:
            unlisted.append(name)
    paths = {n: spec.release / n for n in [*unlisted, *ignored]}
    digests = hash_files(list(paths.values()))
    note = "released but not listed in [[artifact]] nor matched by [release] ignore"
    results = tuple(
        ArtifactResult(name, ArtifactVerdict.UNLISTED, digests[paths[name]], None, notes=(note,))
        for name in unlisted
    )
    if not ignored:
        return results, None
    findings = tuple(
        f"{name}: sha256 {digests[paths[name]].sha256}, {digests[paths[name]].size} bytes"
        for name in ignored
    )
    check = CheckResult(
        "release-ignored",
        True,
        f"{len(ignored)} released file(s) matched [release] ignore and were not verified",
        findings,
    )
    return results, check


def _release_files(release: Path) -> list[str]:
    """Every file under the release folder, relative, sorted; symlinks followed only inside.

    Raises:
        InputError: a FIFO, device, socket, symlink loop or link out of the folder is in it
            (refused, never skipped).
    """
    return list(list_folder(release, what="released file"))


def _ignored(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)
