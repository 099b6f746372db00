"""The trust snapshot: everything that decides the verdict, read once, before the build.

Owns: copying into the run's private folder, and hashing as copied, every input the verdict
depends on besides the rebuilt outputs: the released files, `[signature] trusted`, the in-toto
layout, its keys, links and the verifier's inspection tools, and the commit signer pins
(`allowed_signers`, `gpg_keyring`). The manifest and policy are already in memory
(`reprover.manifest.load` reads the file once). The snapshot hands back a manifest whose paths
name the private copies, so that every later step (ledger, signature proofs, in-toto,
attestation subjects) reads the very bytes that were hashed, never the original path again;
and it can prove afterwards that the copies did not change (`changed`).
Does not own: the private folder itself (`reprover.workarea`) or what the inputs mean.

Why copies rather than bytes in memory: the in-toto library, the LIEF worker and git read
files by path. The copies sit in a folder made with mkdtemp (0700) that the build sandbox
cannot see; reprover re-hashes them at the end, so a change by anyone is a failed check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from reprover.digest import hash_file, snapshot_files
from reprover.errors import InputError
from reprover.fsutil import list_folder
from reprover.model import CheckResult, Digest, Manifest


@dataclass(frozen=True)
class Snapshot:
    """The private copies of one run's inputs and their digests.

    `manifest` names the copies instead of the originals; `released` maps each artifact name
    to its copy and `digests` to the digest of the bytes copied; `inputs` maps a label of each
    trust input (`role: original path`) to its SHA-256, for the report.
    """

    manifest: Manifest
    released: dict[str, Path]
    digests: dict[str, Digest]
    inputs: dict[str, str]
    copies: dict[Path, Digest]

    def changed(self) -> CheckResult | None:
        """Re-hash every private copy; a failed `trust-snapshot` check if any changed, or None.

        Raises:
            InputError: a copy can no longer be read (it was removed).
        """
        changed = [str(p) for p, d in self.copies.items() if hash_file(p) != d]
        if not changed:
            return None
        return CheckResult(
            "trust-snapshot",
            False,
            "the private copies of the release and trust files changed during the run",
            tuple(changed),
        )


def take(
    spec: Manifest,
    released: dict[str, Path],
    folder: Path,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> Snapshot:
    """Copy and hash the release and every trust input of `spec` into `folder` (new, private).

    Raises:
        InputError: a file is missing, unreadable, or not a regular file.
    """
    folder.mkdir(mode=0o700)
    copies: dict[Path, Digest] = {}
    taken = snapshot_files(released, folder / "release", on_bytes=on_bytes)
    copies.update(taken.values())
    inputs: dict[str, str] = {}
    base = spec.path.parent

    def copy(role: str, path: Path, dest: Path) -> Path:
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise InputError(f"{role} file {path} does not exist") from exc
        except OSError as exc:
            raise InputError(f"cannot read {role} file {path}: {exc.strerror or exc}") from exc
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest.write_bytes(data)
        digest = Digest(hashlib.sha256(data).hexdigest(), len(data))
        copies[dest] = digest
        inputs[f"{role}: {_label(path, base)}"] = digest.sha256
        return dest

    def copy_all(role: str, paths: Iterable[Path]) -> tuple[Path, ...]:
        return tuple(
            copy(role, p, folder / "trust" / role / str(i) / p.name) for i, p in enumerate(paths)
        )

    policy = replace(
        spec.policy, trusted_signers=copy_all("signature", spec.policy.trusted_signers)
    )
    source = spec.source
    if source.allowed_signers is not None:
        [signers] = copy_all("allowed_signers", [source.allowed_signers])
        source = replace(source, allowed_signers=signers)
    if source.gpg_keyring is not None:
        [keyring] = copy_all("gpg_keyring", [source.gpg_keyring])
        source = replace(source, gpg_keyring=keyring)
    intoto = spec.intoto
    if intoto is not None:
        intoto = replace(
            intoto,
            layout=copy_all("in-toto layout", [intoto.layout])[0],
            layout_keys=copy_all("in-toto layout key", intoto.layout_keys),
            links=_copy_links(intoto.links, folder / "trust" / "links", copy),
            inspection_tools=_copy_tools(
                intoto.inspection_tools, folder / "trust" / "inspection-tools", copy
            ),
        )
    manifest = replace(spec, policy=policy, source=source, intoto=intoto)
    return Snapshot(
        manifest=manifest,
        released={name: path for name, (path, _) in taken.items()},
        digests={name: digest for name, (_, digest) in taken.items()},
        inputs=inputs,
        copies=copies,
    )


def _copy_links(links: Path, dest: Path, copy: Callable[[str, Path, Path], Path]) -> Path:
    """Copy the links folder (its files, not subfolders) or a single links file.

    Raises:
        InputError: the folder does not exist or cannot be listed.
    """
    if links.is_file():
        return copy("in-toto link", links, dest / links.name)
    try:
        entries = sorted(links.iterdir())
    except OSError as exc:
        raise InputError(
            f"cannot list the in-toto links folder {links}: {exc.strerror or exc}",
            hint="set [in-toto] links to the folder holding the .link files",
        ) from exc
    dest.mkdir(parents=True, mode=0o700)
    for entry in entries:
        if entry.is_file():
            copy("in-toto link", entry, dest / entry.name)
    return dest


def _copy_tools(
    tools: Path | None, dest: Path, copy: Callable[[str, Path, Path], Path]
) -> Path | None:
    """Copy the verifier's inspection tools folder (every file, modes kept) before the build.

    Raises:
        InputError: the folder cannot be listed, or holds what `list_folder` refuses.
    """
    if tools is None:
        return None
    if not tools.is_dir():
        raise InputError(f"[in-toto] inspection_tools {tools} is not a folder")
    dest.mkdir(parents=True, mode=0o700)
    for name, path in list_folder(tools, what="inspection tool").items():
        copy("in-toto inspection tool", path, dest / name).chmod(path.stat().st_mode & 0o755)
    return dest


def _label(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)
