"""Comparison of one released artifact with its rebuilt counterpart.

Owns: the artifact verdict (`identical`, `equivalent`, `different`) and its ledger of differing
byte runs. Region labels come from `reprover.compare.ledger` (LIEF in an isolated worker).
Does not own: hashing policy or deciding which artifacts to compare (see `reprover.verify`).
"""

from __future__ import annotations

from pathlib import Path

from reprover.compare.bytes import diff_runs
from reprover.model import ArtifactResult, ArtifactVerdict, Difference, Digest, Policy


def compare_files(
    path: str,
    released: Path,
    rebuilt: Path,
    policy: Policy,
    *,
    digests: tuple[Digest, Digest],
) -> ArtifactResult:
    """Compare two files already hashed (`digests` = released, rebuilt).

    Raises:
        InputError: a file cannot be read.
    """
    released_digest, rebuilt_digest = digests
    if released_digest == rebuilt_digest:
        return ArtifactResult(path, ArtifactVerdict.IDENTICAL, released_digest, rebuilt_digest)
    differences = tuple(
        Difference(offset, length) for offset, length in diff_runs(released, rebuilt)
    )
    del policy  # nothing is allowed until regions are labelled
    return ArtifactResult(
        path, ArtifactVerdict.DIFFERENT, released_digest, rebuilt_digest, differences
    )
