"""The verdict of one archive pair, from what the member-by-member comparison found.

Owns: `Findings` (what `driver` collects for one archive pair: root differences, their
consequences, members whose content differs and their results, notes, undecided members) and
`verdict`, which applies the policy (`judge`) to the root differences, marks content
differences allowed when the member is accepted, decides header consequences (allowed only
when they follow something that is itself allowed, unexplained when they follow nothing; a
header's digests and sizes of its files only when some member's content differs), and
runs the archive format's signature proof (`signing.PROVERS`) when only signing explains the
differences left.
Does not own: comparing members (`driver`), the proofs' details (`signing` and one module per
format), the policy vocabulary (`judge` is passed in).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from reprover.compare.archives.listing import Listing, MalformedArchive, quote
from reprover.compare.archives.recompress import Check, Encoding
from reprover.compare.archives.signing import PROVERS, Given, Prover, Role
from reprover.compare.signatures import quoted
from reprover.errors import VerificationError
from reprover.model import (
    ACCEPTED,
    ArtifactResult,
    ArtifactVerdict,
    Difference,
    Digest,
    Kind,
    Policy,
)

Judge = Callable[[ArtifactResult, Policy], ArtifactResult]
SIGNATURE_RULE = "signature"
# header claims about the members' content (RPM file digests and sizes): consequences of a
# member whose content differs, never of times or owners alone (64 bytes a file rode along)
OF_CONTENT = re.compile(r"rpm\.header\.(?:filedigests\.digest|filesizes\.size|size)")


@dataclass
class Findings:
    """What comparing one archive pair found, for its verdict."""

    path: str
    la: Listing
    lb: Listing
    digests: tuple[Digest, Digest]
    files: tuple[Path, Path]
    roots: list[Difference] = field(default_factory=list)
    consequences: list[Difference] = field(default_factory=list)
    contents: list[tuple[str, Difference, ArtifactResult]] = field(default_factory=list)
    members: list[ArtifactResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # member results' paths -> raw names
    rebuilt_hidden: set[tuple[int, int, str]] = field(default_factory=set)  # (offset, length,
    # detail) of hidden bytes found in the rebuilt file only
    signed: bool = False
    # region -> (offset, check) of compressed bytes that differ because content does: their
    # encoding must be the rebuild's compressor's (`recompress`), checked once all else is allowed
    encodings: dict[str, tuple[int, Check]] = field(default_factory=dict)


def verdict(found: Findings, policy: Policy, judge: Judge | None) -> ArtifactResult:
    """The archive's own result from everything its comparison found (see the module doc)."""
    roots: tuple[Difference, ...] = tuple(found.roots)
    if roots and judge is not None:
        judged = judge(
            ArtifactResult(found.path, ArtifactVerdict.DIFFERENT, *found.digests, roots),
            policy,
        )
        roots = judged.differences
    contents = tuple(
        replace(d, allowed=own.verdict in ACCEPTED,
                rule=f"member {own.verdict.value}" if own.verdict in ACCEPTED else None)
        for _, d, own in found.contents
    )  # fmt: skip
    roots, contents = _signature(found, policy, roots, contents)
    everything = (*roots, *contents)
    undecided = [*found.undecided]
    undecided += [o.path for _, _, o in found.contents if o.verdict is ArtifactVerdict.INCONCLUSIVE]
    decided = all(d.allowed for d in roots) and all(
        d.allowed or o.verdict is ArtifactVerdict.INCONCLUSIVE
        for d, (_, _, o) in zip(contents, found.contents, strict=True)
    )
    if found.consequences and not everything:  # consequences of nothing: unexplained
        decided = False
        found.notes.append("header sizes or checksums differ but no member or field does: "
                          "unexplained, never allowed")  # fmt: skip
    rules = sorted({d.rule for d in roots if d.rule})

    def follows(d: Difference) -> bool:  # digests of file content follow only content
        return decided and bool(contents if OF_CONTENT.fullmatch(d.region) else everything)

    follow = tuple(
        replace(d, allowed=follows(d), rule=", ".join(rules) or None if follows(d) else None)
        for d in found.consequences
    )  # fmt: skip
    if decided and not all(d.allowed for d in follow):
        decided = False
        found.notes.append("the header's digests or sizes of files differ but no file does: "
                           "unexplained, never allowed")  # fmt: skip
    encodings = _encodings(found, policy, judge) if decided else ()
    decided = decided and all(d.allowed for d in encodings)
    differences = tuple(sorted((*everything, *follow, *encodings), key=lambda d: d.offset))
    notes = list(found.notes)
    if not differences:
        why = "the files differ but no member or field does"
        differences = (Difference(0, 0, "archive.unexplained", Kind.HIDDEN, detail=why),)
        decided = False
    signed = found.signed or any(
        o.verdict is ArtifactVerdict.SIGNATURE_ONLY for _, _, o in found.contents
    )
    if not decided:
        verdict = ArtifactVerdict.DIFFERENT
    elif undecided:
        verdict = ArtifactVerdict.INCONCLUSIVE
        notes.append("members not decided: " + ", ".join(undecided))
    else:
        verdict = ArtifactVerdict.SIGNATURE_ONLY if signed else ArtifactVerdict.EQUIVALENT
    return ArtifactResult(found.path, verdict, *found.digests, differences, tuple(notes))


def _encodings(found: Findings, policy: Policy, judge: Judge | None) -> tuple[Difference, ...]:
    """Compressed bytes whose encoding is not the rebuild's compressor's, judged by the policy
    (only `archive.compression` allows them): the encoder's free choices could carry data."""
    out = []
    for region, (offset, check) in sorted(found.encodings.items()):
        try:
            encoding = check()
        except MalformedArchive as exc:
            encoding = Encoding(False, f"the compressed bytes cannot be read again: {exc}")
        if not encoding.canonical:
            out.append(Difference(offset, 0, region, Kind.METADATA, detail=encoding.detail))
    if out and judge is not None:
        judged = judge(
            ArtifactResult(found.path, ArtifactVerdict.DIFFERENT, *found.digests, tuple(out)),
            policy,
        )
        return judged.differences
    return tuple(out)


def _role(prover: Prover, found: Findings, d: Difference) -> Role | None:
    """A root difference's role; hidden bytes of the rebuild alone are an effect of a signer
    that rewrites the container (`Prover.rewrites_container`), never of any other. A field
    of kind hidden (a ZIP comment) is the prover's to judge: jarsigner drops the comment."""
    if d.region == "archive.hidden":
        rebuilt_only = (d.offset, d.length, d.detail) in found.rebuilt_hidden
        return Role.EFFECT if rebuilt_only and prover.rewrites_container else None
    return prover.role(d.region, found.la)


def _signature(
    found: Findings, policy: Policy, roots: tuple[Difference, ...], contents: tuple[Difference, ...]
) -> tuple[tuple[Difference, ...], tuple[Difference, ...]]:
    """Differences that only a signature of this archive's own format explains: prove it.

    Runs when the format has a prover, the policy allows `signature`, nothing is undecided,
    every difference not already allowed is the signature or an effect of signing, and at
    least one is the signature itself. Members whose content differs and is already allowed
    (accepted on their own) and the effects of signing not allowed by another rule are passed
    to the proof (`signing.Given`), which must cover them or refuse; a member that differs
    and is not accepted stops the proof, with a note naming it. Proven:
    those differences are allowed under `signature`, and the signing members' own results are
    dropped (the outer artifact's differences still name them).
    """
    prover = PROVERS.get(found.la.format)
    if prover is None or SIGNATURE_RULE not in policy.allow or found.undecided:
        return roots, contents
    root_roles = [None if d.allowed else _role(prover, found, d) for d in roots]
    member_roles = [
        None if d.allowed else prover.member_role(name)
        for (name, _, _), d in zip(found.contents, contents, strict=True)
    ]
    pending = [
        (d, r) for d, r in zip((*roots, *contents), (*root_roles, *member_roles), strict=True)
        if not d.allowed
    ]  # fmt: skip
    if all(r is not Role.SIGNATURE for _, r in pending):
        return roots, contents
    blocking = [
        f"{quote(name)} ({own.verdict.value})"
        for (name, _, own), d, r in zip(found.contents, contents, member_roles, strict=True)
        if not d.allowed and r is None
    ]  # fmt: skip
    if blocking:
        found.notes.append("signature-only not proven: member(s) differ and are not accepted on "
                           "their own: " + ", ".join(blocking))  # fmt: skip
    if any(r is None for _, r in pending):
        return roots, contents
    accepted = frozenset(
        name for (name, _, _), d in zip(found.contents, contents, strict=True) if d.allowed
    )
    effects = frozenset(d.region for d, r in zip(roots, root_roles, strict=True)
                        if not d.allowed and r is Role.EFFECT)  # fmt: skip
    try:
        given = Given(accepted, effects)
        signers = prover.prove(found.files, (found.la, found.lb), policy.trusted_signers, given)
    except VerificationError as exc:
        found.notes.append(f"signature-only refused: {exc.message}")
        return roots, contents
    found.signed = True
    dropped = [d for d, r in zip(roots, root_roles, strict=True) if r and d.kind is Kind.HIDDEN]
    if dropped:
        found.notes.append(
            f"{sum(d.length for d in dropped)} byte(s) the rebuilt file holds outside every "
            f"member are not in the release: signing rewrote the container ({prover.label})"
        )
    trusted = policy.trusted_signers
    pinned = "chains to pinned trust" if trusted else "signer not pinned"
    subject = quoted(signers[0].subject) if signers else "no named signer"
    found.notes.append(f"released = rebuilt + {prover.label}; signed by {subject} ({pinned})")
    found.notes.extend(line for s in signers for line in s.describe())
    if accepted:
        covered = ", ".join(
            f"{quote(name)} ({own.verdict.value}: see {found.path}!{quote(name)})"
            for name, _, own in found.contents if name in accepted
        )  # fmt: skip
        found.notes.append(f"the signature covers the released bytes of member(s) that differ "
                           f"from the rebuild's, each accepted on its own: {covered}")  # fmt: skip
    signing = {p for p, name in found.names.items() if prover.member_role(name) is not None}
    found.members = [
        m for m in found.members if not any(m.path == s or m.path.startswith(s + "!")
                                           for s in signing)
    ]  # fmt: skip

    def allow(d: Difference, r: Role | None) -> Difference:
        return d if d.allowed or r is None else replace(d, allowed=True, rule=SIGNATURE_RULE)

    return (
        tuple(allow(d, r) for d, r in zip(roots, root_roles, strict=True)),
        tuple(allow(d, r) for d, r in zip(contents, member_roles, strict=True)),
    )
