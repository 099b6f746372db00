"""The recursion driver: two archives compared member by member, layer by layer.

Owns: `compare_tree`, the entry for one artifact pair (archive or not), and the comparison of
two listings: hidden bytes (never allowed), container fields, members added or removed, member
order, member fields (mode changes of setuid, setgid, sticky, executable or type bits are named
`.mode.special` so no rule covers them), member content (streamed and hashed; a member whose
content differs is written to a private file named by a counter, never by its name, and
compared by recursion, down to the byte ledger of the leaf), and the outer verdict. A limit hit
makes that member, or the archive, `inconclusive` with the limit named.
Does not own: reading formats (`formats` and one module each), the leaf comparison and the
signature proofs (passed in as `leaf`), the policy vocabulary (`judge` is passed in).

Results: the outer artifact first, then every member that is not identical, named
`outer!member` (`!` separates layers; names are escaped by `listing.quote`). Field
differences of a member are listed on the outer artifact (`zip.entry[a/b].mtime`); content
differences on the member. Compression fields and header checksums are consequences when the
content differs; otherwise they are root differences (`archive.compression`).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from reprover.compare.archives.formats import head_of, open_listing, sniff
from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    Field,
    Listing,
    MalformedArchive,
    Member,
    quote,
    unsafe_name,
)
from reprover.compare.archives.signing import PROVERS, Role
from reprover.compare.signatures import quoted
from reprover.errors import InputError, VerificationError
from reprover.model import (
    ACCEPTED,
    ArtifactResult,
    ArtifactVerdict,
    Cause,
    Difference,
    Digest,
    Kind,
    Policy,
)

Judge = Callable[[ArtifactResult, Policy], ArtifactResult]
Leaf = Callable[[str, Path, Path, tuple[Digest, Digest]], ArtifactResult]
SPECIAL_MODE = 0o7111 | 0o170000  # setuid, setgid, sticky, executable, file type
HEADER_CONSEQUENCES = re.compile(
    r"(?:^|\.)(?:checksum|size|offset|digest)$"
)  # follow any header change
COMPRESSION = re.compile(r"(?:^|\.)compression(?:\.|$)")  # follow any content change
SIGNATURE_RULE = "signature"


@dataclass
class Context:
    """What every layer of one top-level comparison shares."""

    policy: Policy
    judge: Judge | None
    leaf: Leaf
    budget: Budget
    tmp: Path
    depth: int = 0
    counter: Iterator[int] = field(default_factory=itertools.count)


def compare_tree(
    path: str, released: Path, rebuilt: Path, digests: tuple[Digest, Digest], ctx: Context
) -> tuple[ArtifactResult, ...]:
    """Compare one pair: identical, an archive opened member by member, or a leaf file.

    Raises:
        InputError: a file cannot be read.
    """
    if digests[0] == digests[1]:
        return (ArtifactResult(path, ArtifactVerdict.IDENTICAL, *digests),)
    try:
        with released.open("rb") as fa, rebuilt.open("rb") as fb:
            fmt_a, fmt_b = sniff(head_of(fa), path), sniff(head_of(fb), path)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    note = None
    if fmt_a is not None and fmt_a == fmt_b:
        try:
            return _compare_archive(path, fmt_a, (released, rebuilt), digests, ctx)
        except MalformedArchive as exc:
            note = f"not read as {fmt_a}: {exc}; compared as bytes"
    elif fmt_a != fmt_b:
        note = f"released is {fmt_a or 'not an archive'}, rebuilt is {fmt_b or 'not an archive'}"
    result = ctx.leaf(path, released, rebuilt, digests)
    if note is not None:
        result = replace(result, notes=(*result.notes, note))
    return (result,)


def _inconclusive(
    path: str, digests: tuple[Digest | None, Digest | None], why: str
) -> ArtifactResult:
    return ArtifactResult(path, ArtifactVerdict.INCONCLUSIVE, *digests, notes=(why,))


def _compare_archive(
    path: str, fmt: str, files: tuple[Path, Path], digests: tuple[Digest, Digest], ctx: Context
) -> tuple[ArtifactResult, ...]:
    try:
        ctx.budget.nest(ctx.depth)
        with ExitStack() as stack:
            fa = stack.enter_context(files[0].open("rb"))
            fb = stack.enter_context(files[1].open("rb"))
            la = open_listing(fmt, fa, ctx.budget, stack, path)
            lb = open_listing(fmt, fb, ctx.budget, stack, path)
            return _Comparison(path, la, lb, digests, ctx, files).run()
    except LimitHit as exc:
        return (_inconclusive(path, digests, f"limit hit: {exc.message}"),)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc


class _Comparison:
    def __init__(  # noqa: PLR0917 - the pair, as read
        self,
        path: str,
        la: Listing,
        lb: Listing,
        digests: tuple[Digest, Digest],
        ctx: Context,
        files: tuple[Path, Path],
    ) -> None:
        self.path, self.la, self.lb, self.digests, self.ctx = path, la, lb, digests, ctx
        self.files = files
        self.signed = False
        self.roots: list[Difference] = []
        self.consequences: list[Difference] = []
        self.contents: list[tuple[str, Difference, ArtifactResult]] = []
        self.members: list[ArtifactResult] = []
        self.notes: list[str] = [*la.notes]
        self.undecided: list[str] = []
        self.names: dict[str, str] = {}  # member results' paths -> the members' raw names

    def run(self) -> tuple[ArtifactResult, ...]:
        for side, listing in (("", self.la), ("in the rebuilt file: ", self.lb)):
            for h in listing.hidden:
                self._hidden(h.offset, h.length, side + h.reason)
            self._duplicates(listing, side)
        same = None if self.la.inner is None else self.la.inner == self.lb.inner
        self._fields("", self.la.fields, self.lb.fields, content_same=same)
        self._members()
        return (self._verdict(), *self.members)

    def _hidden(self, offset: int, length: int, reason: str) -> None:
        self.roots.append(
            Difference(offset, length, "archive.hidden", Kind.HIDDEN,
                       context=(self.la.format,), detail=reason)
        )  # fmt: skip

    def _duplicates(self, listing: Listing, side: str) -> None:
        seen: set[str] = set()
        for m in listing.members:
            if m.name in seen:
                self._hidden(m.offset, 0, f"{side}duplicate member name {quote(m.name)!r}")
            seen.add(m.name)

    def _fields(
        self, prefix: str, fa: dict[str, Field], fb: dict[str, Field], *, content_same: bool | None
    ) -> None:
        for key in sorted(fa.keys() | fb.keys()):
            a, b = fa.get(key), fb.get(key)
            if a is not None and b is not None and a.value == b.value:
                continue
            region = prefix + key
            where = a if a is not None else b
            if where is None:
                continue
            if a is None or b is None:
                detail = "only in the " + ("rebuilt" if a is None else "released") + " archive"
            else:
                detail = f"{a.display()} -> {b.display()}"
                if key.endswith("mode") and self._special(a, b):
                    region += ".special"
            kind = where.kind
            diff = Difference(where.offset, where.length, region, kind, detail=detail)
            if HEADER_CONSEQUENCES.search(key) or (
                COMPRESSION.search(key) and content_same is not True
            ):
                self.consequences.append(replace(diff, cause=Cause.CONSEQUENCE))
            else:
                self.roots.append(diff)

    @staticmethod
    def _special(a: Field, b: Field) -> bool:
        if a.number is None or b.number is None:
            if isinstance(a.value, int) and isinstance(b.value, int):
                return bool((a.value ^ b.value) & SPECIAL_MODE)
            if isinstance(a.value, tuple) and isinstance(b.value, tuple):  # one mode per file
                pairs = list(zip(a.value, b.value, strict=False))
                return len(a.value) != len(b.value) or any(
                    not isinstance(x, int) or not isinstance(y, int) or (x ^ y) & SPECIAL_MODE
                    for x, y in pairs
                )
            return True
        return bool((a.number ^ b.number) & SPECIAL_MODE)

    def _members(self) -> None:
        first_b: dict[str, Member] = {}
        for m in self.lb.members:
            first_b.setdefault(m.name, m)
        names_a = {m.name for m in self.la.members}
        seen: set[str] = set()
        common = []
        for m in self.la.members:
            if m.name in seen:
                continue
            seen.add(m.name)
            self._describe(m)
            region = f"{self.la.prefix}[{quote(m.name)}]"
            if m.name not in first_b:
                self.roots.append(Difference(m.offset, 0, region, Kind.METADATA,
                                             detail="only in the released archive"))  # fmt: skip
                self.members.append(ArtifactResult(self._child(m), ArtifactVerdict.MISSING,
                                                   None, None))  # fmt: skip
            else:
                common.append(m)
        for m in first_b.values():
            if m.name not in names_a:
                region = f"{self.lb.prefix}[{quote(m.name)}]"
                self.roots.append(Difference(m.offset, 0, region, Kind.METADATA,
                                             detail="only in the rebuilt archive"))  # fmt: skip
                self.members.append(ArtifactResult(self._child(m), ArtifactVerdict.UNEXPECTED,
                                                   None, None))  # fmt: skip
        order_b = [m.name for m in first_b.values() if m.name in seen]
        if [m.name for m in common] != order_b:
            self.roots.append(Difference(0, 0, f"{self.la.format}.order", Kind.METADATA,
                                         detail="members are stored in another order"))  # fmt: skip
        identical = 0
        for m in common:
            identical += self._pair(m, first_b[m.name])
        if identical:
            self.notes.append(f"{identical} member(s) identical")

    def _child(self, m: Member) -> str:
        path = f"{self.path}!{quote(m.name)}"
        self.names[path] = m.name
        return path

    def _describe(self, m: Member) -> None:
        why = unsafe_name(m.name)
        if why is not None:
            self.notes.append(f"member {quote(m.name)!r} has {why}: reported, never used as a path")
        if m.kind in ("symlink", "hardlink"):
            self.notes.append(
                f"member {quote(m.name)!r} is a {m.kind} to {quote(m.target or '')!r}: not followed"
            )

    def _pair(self, a: Member, b: Member) -> int:
        """Compare one member present on both sides; return 1 when it is identical."""
        prefix = f"{self.la.prefix}[{quote(a.name)}]."
        if a.kind != b.kind:
            self.roots.append(Difference(a.offset, 0, prefix + "type", Kind.METADATA,
                                         detail=f"{a.kind} -> {b.kind}"))  # fmt: skip
        if a.target != b.target:
            self.roots.append(Difference(a.offset, 0, prefix + "target", Kind.METADATA,
                                         detail=f"{a.target!r} -> {b.target!r}"))  # fmt: skip
        child = self._child(a)
        if self._same_stored(a, b):
            self._fields(prefix, a.fields, b.fields, content_same=True)
            fields_same = a.fields.keys() == b.fields.keys() and all(
                a.fields[k].value == b.fields[k].value for k in a.fields
            )
            return int(fields_same and (a.kind, a.target) == (b.kind, b.target))
        try:
            da, db = self._digest(a), self._digest(b)
        except LimitHit as exc:
            self.members.append(_inconclusive(child, (None, None), f"limit hit: {exc.message}"))
            self.undecided.append(child)
            self._fields(prefix, a.fields, b.fields, content_same=None)
            return 0
        except MalformedArchive as exc:
            self._hidden(a.offset, 0, str(exc))
            self._fields(prefix, a.fields, b.fields, content_same=None)
            return 0
        content_same = da == db
        self._fields(prefix, a.fields, b.fields, content_same=content_same)
        if content_same:
            if a.raw != b.raw:
                self.roots.append(Difference(a.offset, 0, prefix + "compression.data",
                                             Kind.METADATA, detail="same content, other "
                                             "compressed bytes"))  # fmt: skip
            fields_same = a.fields.keys() == b.fields.keys() and all(
                a.fields[k].value == b.fields[k].value for k in a.fields
            )
            same = a.raw == b.raw and fields_same and (a.kind, a.target) == (b.kind, b.target)
            return int(same)
        results = self._recurse(child, a, b, (da, db))
        own = results[0]
        self.members.extend(results)
        diff = Difference(a.offset, 0, prefix + "data", Kind.DATA,
                          detail=f"content {own.verdict.value}: see {child}")  # fmt: skip
        self.contents.append((a.name, diff, own))
        return 0

    @staticmethod
    def _same_stored(a: Member, b: Member) -> bool:
        """Same stored bytes and the same method, CRC and size: the same content, unexpanded.

        Decompression is a function of the stored bytes, so two members whose stored bytes
        are equal hold equal content; only members whose stored bytes differ are expanded.
        """
        if a.stored is None or b.stored is None or a.identity is None:
            return False
        if a.identity != b.identity:
            return False
        ha, hb = hashlib.sha256(), hashlib.sha256()
        for block in a.stored():
            ha.update(block)
        for block in b.stored():
            hb.update(block)
        return ha.digest() == hb.digest()

    def _digest(self, m: Member) -> Digest:
        h, size = hashlib.sha256(), 0
        if m.opener is not None:
            for block in m.opener():
                h.update(block)
                size += len(block)
        return Digest(h.hexdigest(), size)

    def _recurse(
        self, child: str, a: Member, b: Member, digests: tuple[Digest, Digest]
    ) -> tuple[ArtifactResult, ...]:
        try:
            paths = (self._extract(a), self._extract(b))
        except LimitHit as exc:
            self.undecided.append(child)
            return (_inconclusive(child, digests, f"limit hit: {exc.message}"),)
        try:
            deeper = replace(self.ctx, depth=self.ctx.depth + 1)
            return compare_tree(child, paths[0], paths[1], digests, deeper)
        finally:
            for p in paths:
                p.unlink(missing_ok=True)

    def _extract(self, m: Member) -> Path:
        """Write a member's content to a private file named by a counter, never by its name."""
        target = self.ctx.tmp / f"member-{next(self.ctx.counter)}"
        with target.open("xb") as out:
            if m.opener is not None:
                for block in m.opener():
                    out.write(block)
        return target

    def _verdict(self) -> ArtifactResult:
        roots: tuple[Difference, ...] = tuple(self.roots)
        if roots and self.ctx.judge is not None:
            judged = self.ctx.judge(
                ArtifactResult(self.path, ArtifactVerdict.DIFFERENT, *self.digests, roots),
                self.ctx.policy,
            )
            roots = judged.differences
        contents = tuple(
            replace(d, allowed=own.verdict in ACCEPTED,
                    rule=f"member {own.verdict.value}" if own.verdict in ACCEPTED else None)
            for _, d, own in self.contents
        )  # fmt: skip
        roots, contents = self._signature(roots, contents)
        everything = (*roots, *contents)
        undecided = [*self.undecided]
        undecided += [
            o.path for _, _, o in self.contents if o.verdict is ArtifactVerdict.INCONCLUSIVE
        ]
        decided = all(d.allowed for d in roots) and all(
            d.allowed or o.verdict is ArtifactVerdict.INCONCLUSIVE
            for d, (_, _, o) in zip(contents, self.contents, strict=True)
        )
        if self.consequences and not everything:  # consequences of nothing: unexplained
            decided = False
            self.notes.append("header sizes or checksums differ but no member or field does: "
                              "unexplained, never allowed")  # fmt: skip
        rules = sorted({d.rule for d in roots if d.rule})
        follow = tuple(
            replace(d, allowed=decided and bool(everything), rule=", ".join(rules) or None
                    if decided and everything else None)
            for d in self.consequences
        )  # fmt: skip
        differences = tuple(sorted((*everything, *follow), key=lambda d: d.offset))
        notes = list(self.notes)
        if not differences:
            why = "the files differ but no member or field does"
            differences = (Difference(0, 0, "archive.unexplained", Kind.HIDDEN, detail=why),)
            decided = False
        signed = self.signed or any(
            o.verdict is ArtifactVerdict.SIGNATURE_ONLY for _, _, o in self.contents
        )
        if not decided:
            verdict = ArtifactVerdict.DIFFERENT
        elif undecided:
            verdict = ArtifactVerdict.INCONCLUSIVE
            notes.append("members not decided: " + ", ".join(undecided))
        else:
            verdict = ArtifactVerdict.SIGNATURE_ONLY if signed else ArtifactVerdict.EQUIVALENT
        return ArtifactResult(self.path, verdict, *self.digests, differences, tuple(notes))

    def _signature(
        self, roots: tuple[Difference, ...], contents: tuple[Difference, ...]
    ) -> tuple[tuple[Difference, ...], tuple[Difference, ...]]:
        """Differences that only a signature of this archive's own format explains: prove it.

        Runs when the format has a prover, the policy allows `signature`, nothing is undecided,
        every difference not already allowed is the signature or an effect of signing, and at
        least one is the signature itself. Proven: those differences are allowed under
        `signature`, and the signing members' own results are dropped (the outer artifact's
        differences still name them).
        """
        prover = PROVERS.get(self.la.format)
        if prover is None or SIGNATURE_RULE not in self.ctx.policy.allow or self.undecided:
            return roots, contents
        root_roles = [None if d.allowed else prover.role(d.region, self.la) for d in roots]
        member_roles = [
            None if d.allowed else prover.member_role(name)
            for (name, _, _), d in zip(self.contents, contents, strict=True)
        ]
        pending = [
            (d, r) for d, r in zip((*roots, *contents), (*root_roles, *member_roles), strict=True)
            if not d.allowed
        ]  # fmt: skip
        if any(r is None for _, r in pending) or all(r is not Role.SIGNATURE for _, r in pending):
            return roots, contents
        try:
            signers = prover.prove(self.files, (self.la, self.lb), self.ctx.policy.trusted_signers)
        except VerificationError as exc:
            self.notes.append(f"signature-only refused: {exc.message}")
            return roots, contents
        self.signed = True
        trusted = self.ctx.policy.trusted_signers
        pinned = "chains to pinned trust" if trusted else "signer not pinned"
        subject = quoted(signers[0].subject) if signers else "no named signer"
        self.notes.append(f"released = rebuilt + {prover.label}; signed by {subject} ({pinned})")
        self.notes.extend(
            f"{s.label}: subject {quoted(s.subject)}; issuer {quoted(s.issuer)}" for s in signers
        )
        signing = {p for p, name in self.names.items() if prover.member_role(name) is not None}
        self.members = [
            m for m in self.members if not any(m.path == s or m.path.startswith(s + "!")
                                               for s in signing)
        ]  # fmt: skip

        def allow(d: Difference, r: Role | None) -> Difference:
            return d if d.allowed or r is None else replace(d, allowed=True, rule=SIGNATURE_RULE)

        return (
            tuple(allow(d, r) for d, r in zip(roots, root_roles, strict=True)),
            tuple(allow(d, r) for d, r in zip(contents, member_roles, strict=True)),
        )
