"""Comparison of one released artifact with its rebuilt counterpart.

Owns: the artifact verdict before policy (`identical` or `different`) and its ledger: every
differing byte run labelled with its region, context, nearest symbol, kind and cause
(`reprover.compare.ledger`, LIEF in an isolated worker), plus notes on how it was compared.
Does not own: hashing, deciding which artifacts to compare (`reprover.verify`), or which
differences a policy allows (`reprover.policy`, a sibling this package may not import: pass
`judge=reprover.policy.judge`, or call it on the result, to get `equivalent`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reprover.compare.bytes import diff_runs
from reprover.compare.ledger import explain
from reprover.model import ArtifactResult, ArtifactVerdict, Digest, Policy

Judge = Callable[[ArtifactResult, Policy], ArtifactResult]


def compare_files(
    path: str,
    released: Path,
    rebuilt: Path,
    policy: Policy,
    *,
    digests: tuple[Digest, Digest],
    judge: Judge | None = None,
) -> ArtifactResult:
    """Compare two files already hashed (`digests` = released, rebuilt).

    Equal digests give `identical`. Otherwise the result is `different` with the full ledger;
    when `judge` is given (normally `reprover.policy.judge`) it applies `policy` and may turn
    the verdict into `equivalent`. Without `judge` nothing is allowed (fail closed).

    Raises:
        InputError: a file cannot be read, or the policy names an unknown rule.
    """
    released_digest, rebuilt_digest = digests
    if released_digest == rebuilt_digest:
        return ArtifactResult(path, ArtifactVerdict.IDENTICAL, released_digest, rebuilt_digest)
    runs = diff_runs(released, rebuilt)
    ledger = explain(released, rebuilt, runs)
    result = ArtifactResult(
        path,
        ArtifactVerdict.DIFFERENT,
        released_digest,
        rebuilt_digest,
        ledger.differences,
        ledger.notes,
    )
    if judge is not None:
        return judge(result, policy)
    if policy.allow:
        return ArtifactResult(
            path, result.verdict, released_digest, rebuilt_digest, result.differences,
            (*result.notes, "policy not applied by this caller: nothing is allowed"),
        )  # fmt: skip
    return result
