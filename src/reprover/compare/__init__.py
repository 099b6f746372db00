"""Comparison of one released artifact with its rebuilt counterpart.

Owns: the artifact verdict before policy (`identical` or `different`) and its ledger: every
differing byte run labelled with its region, context, nearest symbol, kind and cause
(`reprover.compare.ledger`, LIEF in an isolated worker), plus notes on how it was compared.
Does not own: hashing, deciding which artifacts to compare (`reprover.verify`), or which
differences a policy allows (`reprover.policy`, a sibling this package may not import: pass
`judge=reprover.policy.judge`, or call it on the result, to get `equivalent`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reprover.compare.ledger import DEFAULT_MAX_RUNS
from reprover.errors import VerificationError
from reprover.model import ArtifactResult, ArtifactVerdict, Digest, Policy

if TYPE_CHECKING:
    from reprover.compare.archives import Limits
    from reprover.compare.signatures.macho_assertions import MachOPins

# The parsing worker (`isolation.parse_child`) imports this package first: what is imported
# here it pays for on every start, beside LIEF, so the archive readers, the signature proofs
# and cryptography are imported where they are used, not here.

SIGNATURE_RULE = "signature"

Judge = Callable[[ArtifactResult, Policy], ArtifactResult]


def compare_artifact(
    path: str,
    released: Path,
    rebuilt: Path,
    policy: Policy,
    *,
    digests: tuple[Digest, Digest],
    judge: Judge | None = None,
    limits: Limits | None = None,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> tuple[ArtifactResult, ...]:
    """Like `compare_files`, but archives and installers are opened member by member.

    Returns the artifact's result first, then one result per member that is not identical
    (`path!member`, recursively; see `reprover.compare.archives`). A bound of `limits` hit
    inside an archive makes that member, or the archive, `inconclusive`.

    Raises:
        InputError: a file cannot be read, or the policy names an unknown rule.
    """
    from reprover.compare.archives import Budget, Context, Limits, compare_tree  # noqa: PLC0415
    from reprover.compare.isolation.worker import warm  # noqa: PLC0415

    if digests[0] == digests[1]:
        return (ArtifactResult(path, ArtifactVerdict.IDENTICAL, *digests),)
    warm()  # the files differ: the parsing worker will likely be asked; start it meanwhile
    budget = Budget(limits or Limits(), max(d.size for d in digests))

    def leaf(name: str, a: Path, b: Path, pair: tuple[Digest, Digest]) -> ArtifactResult:
        return compare_files(name, a, b, policy, digests=pair, judge=judge, max_runs=max_runs)

    with tempfile.TemporaryDirectory(prefix="reprover-members-") as tmp:
        ctx = Context(policy, judge, leaf, budget, Path(tmp))
        return compare_tree(path, released, rebuilt, digests, ctx)


def compare_files(
    path: str,
    released: Path,
    rebuilt: Path,
    policy: Policy,
    *,
    digests: tuple[Digest, Digest],
    judge: Judge | None = None,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> ArtifactResult:
    """Compare two files already hashed (`digests` = released, rebuilt).

    Equal digests give `identical`. Otherwise the result is `different` with the full ledger.
    When the policy allows `signature` and the released file is a signed PE or Mach-O, the
    signature proofs run (`signatures.authenticode`, `signatures.macho`): if they hold the
    verdict is `signature-only` and every difference is marked allowed by `signature`; if not,
    the reason is noted and the artifact stays `different`. The `signature` rule is granted by
    these proofs only, never by region labels alone (labels cannot tell a signature from data
    hidden in the certificate area, CVE-2013-3900). When `judge` is given (normally
    `reprover.policy.judge`) it applies the other rules and may give `equivalent`. Without
    `judge` nothing else is allowed (fail closed). At most `max_runs` runs are listed per
    region; the rest are counted (see `reprover.compare.ledger`).

    Raises:
        InputError: a file cannot be read, or the policy names an unknown rule.
    """
    from reprover.compare.ledger import explain  # noqa: PLC0415

    released_digest, rebuilt_digest = digests
    if released_digest == rebuilt_digest:
        return ArtifactResult(path, ArtifactVerdict.IDENTICAL, released_digest, rebuilt_digest)
    ledger = explain(released, rebuilt, max_runs=max_runs)
    result = ArtifactResult(
        path,
        ArtifactVerdict.DIFFERENT,
        released_digest,
        rebuilt_digest,
        ledger.differences,
        ledger.notes,
    )
    if SIGNATURE_RULE in policy.allow:
        proven = _signature_only(result, released, rebuilt, policy)
        if proven.verdict is ArtifactVerdict.SIGNATURE_ONLY:
            return proven
        result = proven
        policy = replace(policy, allow=tuple(r for r in policy.allow if r != SIGNATURE_RULE))
    if judge is not None:
        return judge(result, policy)
    if policy.allow:
        return ArtifactResult(
            path, result.verdict, released_digest, rebuilt_digest, result.differences,
            (*result.notes, "policy not applied by this caller: nothing is allowed"),
        )  # fmt: skip
    return result


def _macho_pins(policy: Policy) -> MachOPins:
    """The Mach-O pins of a policy; an entitlements pin that was never read fails closed.

    Raises:
        VerificationError: `[signature] entitlements` is set but its bytes were not read.
    """
    from reprover.compare.signatures.macho_assertions import MachOPins  # noqa: PLC0415

    if policy.entitlements is not None and policy.entitlements_data is None:
        raise VerificationError(
            f"the entitlements pin {policy.entitlements!r} was not read from the source"
        )
    return MachOPins(policy.macho_identifier, policy.macho_flags, policy.entitlements_data)


def _signature_only(
    result: ArtifactResult, released: Path, rebuilt: Path, policy: Policy
) -> ArtifactResult:
    """Try the signature proofs; return `signature-only`, or `result` with the refusal noted.

    Raises:
        InputError: a file or a pinned certificate cannot be read.
    """
    from reprover.compare.signatures.authenticode import prove_signature_only  # noqa: PLC0415
    from reprover.compare.signatures.macho import (  # noqa: PLC0415
        is_macho,
        prove_macho_signature_only,
    )

    with released.open("rb") as stream:
        head = stream.read(4096)
    try:
        if head[:2] == b"MZ":
            proof = prove_signature_only(released, rebuilt, trusted=policy.trusted_signers)
        elif is_macho(head):
            proof = prove_macho_signature_only(  # type: ignore[assignment]
                released, rebuilt, trusted=policy.trusted_signers, pins=_macho_pins(policy)
            )
        else:
            note = "signature proofs not applicable: not a PE or Mach-O file"
            return replace(result, notes=(*result.notes, note))
    except VerificationError as exc:
        return replace(result, notes=(*result.notes, f"signature-only refused: {exc.message}"))
    differences = tuple(replace(d, allowed=True, rule=SIGNATURE_RULE) for d in result.differences)
    return replace(
        result,
        verdict=ArtifactVerdict.SIGNATURE_ONLY,
        differences=differences,
        notes=(*result.notes, proof.summary(), *proof.findings()),
    )
