"""The recursion driver: two archives compared member by member, layer by layer.

Owns: `compare_tree`, the entry for one artifact pair (archive or not), and the comparison of
two listings: hidden bytes (never allowed), container fields, members added or removed, member
order, member fields (mode changes of setuid, setgid, sticky, executable, type or higher bits are
named `.mode.special` so no rule covers them) and member content. Content: members whose stored
bytes are equal are equal (compared directly, `content.same_stored`); the others are read
once each, hashed and written to a private file named by a counter, never by its name, in the
same pass (`content.take`), and compared by recursion, down to the byte ledger of the leaf.
Both sides of a compressed stream (a .deb's data.tar.gz) are expanded at once, in two threads,
and so are both sides of a large member (the .deb's data.tar.gz itself, taken from the ar).
A limit hit makes that member, or the archive, `inconclusive` with the limit named.
Members restating other members' digests (a wheel's RECORD, a .deb's md5sums) are compared
after the members they name and resolved by `restated` (`Roles`; the scope reaches one layer
down through `Context.link`); results are still reported in the archive's order.
Does not own: reading formats (`formats` and one module each), the verdict and signature
proofs (`verdict`), the leaf comparison (passed in as `leaf`), the policy vocabulary (`judge`).

Results: the outer artifact first, then every member that is not identical, named
`outer!member` (`!` separates layers; names are escaped by `listing.quote`). Field
differences of a member are listed on the outer artifact (`zip.entry[a/b].mtime`); content
differences on the member. Compressed bytes (and their sizes) and header checksums are
consequences when the content differs; otherwise, and compressor settings always, they are root
differences (`archive.compression`).
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from reprover.compare.archives.content import (
    same_inner,
    same_stored,
    same_stored_bytes,
    take_pair,
)
from reprover.compare.archives.formats import STREAMS, head_of, open_listing, sniff
from reprover.compare.archives.limits import Budget, LimitHit
from reprover.compare.archives.listing import (
    Field,
    Listing,
    MalformedArchive,
    Member,
    quote,
    unsafe_name,
)
from reprover.compare.archives.recompress import (
    all_of,
    encoding_region,
    member_check,
    stream_check,
)
from reprover.compare.archives.restated import Link, Roles, Scope
from reprover.compare.archives.verdict import Findings, Judge, verdict
from reprover.errors import InputError
from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    Cause,
    Difference,
    Digest,
    Kind,
    Policy,
)

Leaf = Callable[[str, Path, Path, tuple[Digest, Digest]], ArtifactResult]
# every mode bit but read and write: setuid, setgid, sticky, executable, file type, and any bit
# above the file type (a TAR, ar or cpio mode field holds 21 to 32 bits; no reader uses those)
SPECIAL_MODE = ~0o666
HEADER_CONSEQUENCES = re.compile(
    r"(?:^|\.)(?:checksum|size|offset|digest)$"
)  # follow any header change
# the compressed bytes follow any content change; the compressor's settings (ZIP method,
# version needed and flags, gzip XFL and OS bytes, CAB compression type) do not
COMPRESSED_BYTES = re.compile(r"(?:^|\.)compression\.(?:stream|size|data\d*)$")


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
    link: tuple[Scope, Link] | None = None  # the scope one layer up (`restated`)


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
        released, rebuilt = ctx.budget.for_side(0), ctx.budget.for_side(1)  # members per side
        with ExitStack() as stack:
            fa = stack.enter_context(files[0].open("rb"))
            fb = stack.enter_context(files[1].open("rb"))
            if fmt in STREAMS:  # decompression is most of the work: both sides at once
                pool = ThreadPoolExecutor(2)
                try:
                    ja = pool.submit(open_listing, fmt, fa, released, stack, path)
                    jb = pool.submit(open_listing, fmt, fb, rebuilt, stack, path)
                    la, lb = ja.result(), jb.result()
                finally:  # on an error (or Ctrl-C) the other side is not waited for: it stops
                    pool.shutdown(wait=False)  # at its next block, its file closed below
            else:
                la = open_listing(fmt, fa, released, stack, path)
                lb = open_listing(fmt, fb, rebuilt, stack, path)
            found = Findings(path, la, lb, digests, files, notes=[*la.notes])
            return _Comparison(found, ctx).run()
    except LimitHit as exc:
        return (_inconclusive(path, digests, f"limit hit: {exc.message}"),)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc


class _Comparison:
    """One archive pair compared member by member; `run` returns its results."""

    def __init__(self, found: Findings, ctx: Context) -> None:
        self.found, self.ctx = found, ctx
        self.la, self.lb = found.la, found.lb
        self.roles = Roles(found.path, self.la, self.lb, ctx.link)  # restated digests

    def run(self) -> tuple[ArtifactResult, ...]:
        for side, listing in (("", self.la), ("in the rebuilt file: ", self.lb)):
            rebuilt = listing is self.lb
            for h in listing.hidden:
                self._hidden(h.offset, h.length, side + h.reason, rebuilt=rebuilt)
            self._duplicates(listing, side, rebuilt=rebuilt)
        same = same_inner(self.la.inner, self.lb.inner)
        self._fields("", self.la.fields, self.lb.fields, content_same=same)
        self._members()
        own = verdict(self.found, self.ctx.policy, self.ctx.judge)
        return (own, *self.found.members)

    def _hidden(self, offset: int, length: int, reason: str, *, rebuilt: bool = False) -> None:
        if rebuilt:
            self.found.rebuilt_hidden.add((offset, length, reason))
        self.found.roots.append(
            Difference(offset, length, "archive.hidden", Kind.HIDDEN,
                       context=(self.la.format,), detail=reason)
        )  # fmt: skip

    def _duplicates(self, listing: Listing, side: str, *, rebuilt: bool) -> None:
        seen: set[str] = set()
        for m in listing.members:
            if m.name in seen:
                self._hidden(m.offset, 0, f"{side}duplicate member name {quote(m.name)!r}",
                             rebuilt=rebuilt)  # fmt: skip
            seen.add(m.name)

    def _fields(
        self, prefix: str, fa: Mapping[str, Field], fb: Mapping[str, Field], *,
        content_same: bool | None,
    ) -> None:  # fmt: skip
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
                if key.endswith("mode") and _special(a, b):
                    region += ".special"
            # a field either side spells with data in it (a size with bytes after its NUL) is
            # hidden data, never a consequence: consequences are allowed beside anything
            hidden = any(x is not None and x.kind is Kind.HIDDEN for x in (a, b))
            kind = Kind.HIDDEN if hidden else where.kind
            diff = Difference(where.offset, where.length, region, kind, detail=detail)
            compressed = COMPRESSED_BYTES.search(key) and content_same is not True
            if not hidden and (HEADER_CONSEQUENCES.search(key) or compressed):
                self.found.consequences.append(replace(diff, cause=Cause.CONSEQUENCE))
                if compressed and a is not None and b is not None and not prefix:
                    check = stream_check(key, a, b, self.found.files)
                    region, offset = encoding_region(prefix, key), where.offset
                    if region in self.found.encodings:  # a cabinet's folders: one region
                        offset, earlier = self.found.encodings[region]
                        check = all_of(earlier, check)
                    self.found.encodings[region] = (offset, check)
            else:
                self.found.roots.append(diff)

    def _match(self) -> tuple[dict[str, int], array[int]]:
        """Match members by name: report those on one side only and the member order.

        Returns the rebuilt side's first member of each name (name -> index) and the released
        indices of the common names' first members. What is held per member is its name and
        index (ZIP members are views made again when asked).
        """
        members_a, members_b = self.la.members, self.lb.members
        first_b: dict[str, int] = {}
        for i, m in enumerate(members_b):
            first_b.setdefault(m.name, i)
        seen: set[str] = set()
        common = array("q")
        for i, m in enumerate(members_a):
            name = m.name
            if name in seen:
                continue
            seen.add(name)
            self._describe(m)
            if name not in first_b:
                self._alone(m, self.la, "released", ArtifactVerdict.MISSING)
            else:
                common.append(i)
        for name, i in first_b.items():
            if name not in seen:
                self._alone(members_b[i], self.lb, "rebuilt", ArtifactVerdict.UNEXPECTED)
        order_b = (name for name in first_b if name in seen)  # as many as `common`
        if any(members_a[i].name != name for i, name in zip(common, order_b, strict=True)):
            why = "members are stored in another order"
            self.found.roots.append(
                Difference(0, 0, f"{self.la.format}.order", Kind.METADATA, detail=why)
            )
        return first_b, common

    def _members(self) -> None:
        members_a, members_b = self.la.members, self.lb.members
        first_b, common = self._match()
        identical = 0
        blocks: dict[int, list[ArtifactResult]] = {}  # results, reported in stored order
        order = common  # restating members (a wheel's RECORD) last, when the pair has them
        if self.roles.scope is not None:
            deferred = self.roles.deferred
            order = array("q", sorted(common, key=lambda i: deferred(members_a[i].name)))
        for i in order:
            start = len(self.found.members)
            a = members_a[i]
            identical += self._pair(a, members_b[first_b[a.name]])
            if len(self.found.members) > start:
                blocks[i] = self.found.members[start:]
                del self.found.members[start:]
        for i in common:
            self.found.members.extend(blocks.pop(i, ()))
        if identical:
            self.found.notes.append(f"{identical} member(s) identical")

    def _alone(self, m: Member, listing: Listing, side: str, what: ArtifactVerdict) -> None:
        region = f"{listing.prefix}[{quote(m.name)}]"
        self.found.roots.append(Difference(m.offset, 0, region, Kind.METADATA,
                                           detail=f"only in the {side} archive"))  # fmt: skip
        self.found.members.append(ArtifactResult(self._child(m), what, None, None))

    def _child(self, m: Member) -> str:
        path = f"{self.found.path}!{quote(m.name)}"
        self.found.names[path] = m.name
        return path

    def _describe(self, m: Member) -> None:
        why = unsafe_name(m.name)
        if why is not None:
            self.found.notes.append(
                f"member {quote(m.name)!r} has {why}: reported, never used as a path"
            )
        kind = m.kind
        if kind in ("symlink", "hardlink"):
            self.found.notes.append(
                f"member {quote(m.name)!r} is a {kind} to {quote(m.target or '')!r}: not followed"
            )

    def _pair(self, a: Member, b: Member) -> int:
        """Compare one member present on both sides; return 1 when it is identical.

        Equal header bytes (`key`) mean equal fields, so fields are built only when they
        differ; equal stored bytes mean equal content, so only members whose stored bytes
        differ are expanded, each side once (hashed and written to a private file together).
        """
        prefix = f"{self.la.prefix}[{quote(a.name)}]."
        kind_a, kind_b = a.kind, b.kind
        same_kind = (kind_a, a.target) == (kind_b, b.target)
        if kind_a != kind_b:
            self.found.roots.append(Difference(a.offset, 0, prefix + "type", Kind.METADATA,
                                               detail=f"{kind_a} -> {kind_b}"))  # fmt: skip
        if a.target != b.target:
            self.found.roots.append(Difference(a.offset, 0, prefix + "target", Kind.METADATA,
                                               detail=f"{a.target!r} -> {b.target!r}"))  # fmt: skip
        fa, fb = _NO_FIELDS, _NO_FIELDS
        fields_same = a.key is not None and a.key == b.key
        if not fields_same:
            fa, fb = a.fields, b.fields
            fields_same = fa.keys() == fb.keys() and all(fa[k].value == fb[k].value for k in fa)
        try:
            stored = same_stored(a, b)
        except MalformedArchive as exc:
            self._hidden(a.offset, 0, str(exc))
            self._fields(prefix, fa, fb, content_same=None)
            return 0
        if stored:
            self._fields(prefix, fa, fb, content_same=True)
            return int(fields_same and same_kind)
        child = self._child(a)
        try:
            (da, pa), (db, pb) = self._take_pair(a, b)
        except (LimitHit, MalformedArchive) as exc:
            self._unreadable(a, child, exc)
            self._fields(prefix, fa, fb, content_same=None)
            return 0
        content_same = da == db
        self._fields(prefix, fa, fb, content_same=content_same)
        self._encoding(prefix, a, b, content_same=content_same)
        try:
            if content_same:
                del self.found.names[child]
                return int(self._recompressed(a, b, prefix) and fields_same and same_kind)
            results = self._recurse(child, (pa, pb), (da, db), a.name)
            results = self.roles.compared(a.name, results, (pa, pb), (da, db))
        finally:
            pa.unlink(missing_ok=True)
            pb.unlink(missing_ok=True)
        own = results[0]
        self.found.members.extend(results)
        diff = Difference(a.offset, 0, prefix + "data", Kind.DATA,
                          detail=f"content {own.verdict.value}: see {child}")  # fmt: skip
        self.found.contents.append((a.name, diff, own))
        return 0

    def _unreadable(self, a: Member, child: str, exc: LimitHit | MalformedArchive) -> None:
        """Member `a`'s content could not be expanded: a limit (inconclusive) or malformed."""
        if isinstance(exc, LimitHit):
            self.found.members.append(
                ArtifactResult(child, ArtifactVerdict.INCONCLUSIVE, None, None,
                               notes=(f"limit hit: {exc.message}",))
            )  # fmt: skip
            self.found.undecided.append(child)
            self.roles.unread(a.name, child, ArtifactVerdict.INCONCLUSIVE)
        else:
            self._hidden(a.offset, 0, str(exc))
            self.roles.unread(a.name, child, ArtifactVerdict.DIFFERENT)

    def _encoding(self, prefix: str, a: Member, b: Member, *, content_same: bool) -> None:
        """Register the encoding check of two compressed members whose content differs."""
        check = None if content_same else member_check(self.la.format, a, b)
        if check is not None:
            self.found.encodings[encoding_region(prefix, "compression.")] = (a.offset, check)

    def _take_pair(self, a: Member, b: Member) -> tuple[tuple[Digest, Path], tuple[Digest, Path]]:
        """Hash both members' content and write each to a private file named by a counter
        (never by the member's name), in one pass each (`content.take_pair`).

        Raises: LimitHit, MalformedArchive (nothing left behind)."""
        ta, tb = (self.ctx.tmp / f"member-{next(self.ctx.counter)}" for _ in range(2))
        da, db = take_pair(a, b, (ta, tb))
        return (da, ta), (db, tb)

    def _recompressed(self, a: Member, b: Member, prefix: str) -> bool:
        """Same content: note other stored (compressed) bytes; return whether they are equal."""
        if a.stored is None or b.stored is None or a.plain:
            return True
        if same_stored_bytes(a.stored, b.stored):
            return True
        self.found.roots.append(Difference(a.offset, 0, prefix + "compression.data",
                                           Kind.METADATA, detail="same content, other "
                                           "compressed bytes"))  # fmt: skip
        return False

    def _recurse(
        self, child: str, paths: tuple[Path, Path], digests: tuple[Digest, Digest], name: str
    ) -> tuple[ArtifactResult, ...]:
        deeper = replace(self.ctx, depth=self.ctx.depth + 1, link=self.roles.link(name))
        return compare_tree(child, paths[0], paths[1], digests, deeper)


_NO_FIELDS: Mapping[str, Field] = {}


def _special(a: Field, b: Field) -> bool:
    """Whether two modes differ in setuid, setgid, sticky, executable or file-type bits."""
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
