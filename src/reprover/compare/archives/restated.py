"""Members that restate other members' digests: explained only as exact consequences.

Owns: which archives are *scopes* (the innermost archive holding both a restating member and
the members it names), the registry a scope keeps of its members whose content differs
(`Scope`), the order that compares a restating member after the members it names (`deferred`),
and the resolution of a restating member's difference (`resolve`).

Understood: a wheel's `<name>.dist-info/RECORD` (scope: the wheel; names: its own members), a
Debian package's `control.tar.*!./md5sums` (scope: the .deb; names: the members of its
`data.tar.*`, a sibling of the control tar) and an MSI's `!File` and `!MsiFileHash` table
streams (scope: the MSI; names: the members of its one embedded cabinet, a stream named
`*.cab`). The line formats are `restatefmt`'s, the MSI tables `restatemsi`'s.

Design. A scope compares its members with the restating ones last (`deferred`: the RECORD, the
control tar, the MSI tables), so when a restating member is compared every member it names
already has its result; those results are registered in the scope (`Scope.changed`) by the
archive holding the named members (the wheel itself, the .deb's data tar, the MSI's cabinet:
`Link.NAMES`). Nothing is pending and no verdict is computed twice: the restating member's
result is final when made, and the verdicts of the containers between it and the scope (the
control tar) follow from it as usual. The link to a scope goes one layer down only (data tar,
control tar, cabinet); deeper archives are scopes of their own or none. Two archives holding
named members (two cabinets) make the scope unsure: nothing is explained in it.

The rule (`resolve`): the released restating member must be exactly the rebuilt one with the
entries of the members whose content differs and is accepted (`ACCEPTED`) replaced by the
values computed from the released member's content, in that format's own spelling; every
other byte identical. Both sides are parsed strictly (`restatefmt`). An entry of a member whose
content did not change must be identical; an entry of a member that differs and is not
accepted is not explained (inconclusive when that member is). Explained: the restating
member's result is `equivalent`, with one allowed consequence per replaced entry naming the
member that explains it; nothing else is allowed by it. Not explained: its own comparison's
result stands, with a note saying why.
Does not own: reading archives (`formats`), comparing members (`driver`), line formats
(`restatefmt`), the MSI tables' rule (`restatemsi`).
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from reprover.compare.archives.listing import Listing, quote
from reprover.compare.archives.restatefmt import FORMATS, Entry, Format, NotRestated
from reprover.compare.archives.restatemsi import TABLES
from reprover.compare.archives.restatemsi import explain as explain_msi
from reprover.model import (
    ACCEPTED,
    ArtifactResult,
    ArtifactVerdict,
    Cause,
    Difference,
    Digest,
    Kind,
)

MAX_RESTATING = 16 << 20  # a larger restating member is not read: not explained
RECORD = re.compile(r"[^/]+\.dist-info/RECORD")
CONTROL_TAR = re.compile(r"control\.tar(?:\.(?:gz|xz|zst|bz2))?")
DATA_TAR = re.compile(r"data\.tar(?:\.(?:gz|xz|zst|bz2|lzma))?")
MD5SUMS = ("./md5sums", "md5sums")
FILES = ("file", "hardlink")


class Link(enum.Enum):
    """How an archive one layer under a scope relates to it."""

    NAMES = "holds the members named"
    RESTATES = "holds restating members"


@dataclass(frozen=True)
class Changed:
    """A named member whose content differs: its result and what each side's content is."""

    path: str  # its result's path
    verdict: ArtifactVerdict
    released: Digest | None = None
    rebuilt: Digest | None = None
    md5: tuple[str, str] | None = None  # hex MD5 of the released and the rebuilt content


@dataclass
class Scope:
    """An archive holding restating members and the members they name (see the module doc)."""

    kind: str  # a key of restatefmt.FORMATS
    path: str
    names: tuple[set[str], set[str]] = field(default_factory=lambda: (set(), set()))
    changed: dict[str, Changed] = field(default_factory=dict)
    unsure: list[str] = field(default_factory=list)  # why entries cannot be tied to members
    holders: int = 0  # archives that registered their members (two: ambiguous)
    database: tuple[Listing, Listing] | None = None  # an MSI's own listings (its tables)

    def key(self, name: str) -> str:
        """A member's name as the restating format spells its path (md5sums: no `./`)."""
        return name[2:] if self.kind == "md5sums" and name.startswith("./") else name

    def register_names(self, la: Listing, lb: Listing) -> None:
        """The regular files each side holds; two names of one path make the scope unsure."""
        self.holders += 1
        if self.holders > 1:
            self.unsure.append(f"{self.holders} archives hold the members named")
        for side, listing in zip(self.names, (la, lb), strict=True):
            for m in listing.members:
                if m.kind not in FILES:
                    continue
                key = self.key(m.name)
                if key in side:
                    self.unsure.append(f"two members are spelled {quote(key)!r}")
                side.add(key)

    def register(self, name: str, changed: Changed) -> None:
        """A named member whose content differs (or could not be compared)."""
        self.changed[self.key(name)] = changed


def scope_of(path: str, la: Listing, lb: Listing) -> Scope | None:
    """The scope this archive pair is, if it holds restating members of a format understood."""
    if la.format == "zip":
        records = [{m.name for m in x.members if RECORD.fullmatch(m.name)} for x in (la, lb)]
        if len(records[0]) == 1 and records[0] == records[1]:
            return Scope("record", path)
    elif la.format == "ar" and all(_is_deb(x) for x in (la, lb)):
        return Scope("md5sums", path)
    elif la.format == "ole" and all(any(m.name in TABLES for m in x.members) for x in (la, lb)):
        return Scope("msi", path, database=(la, lb))
    return None


def _is_deb(listing: Listing) -> bool:
    names = [m.name for m in listing.members]
    return (
        bool(names)
        and names[0] == "debian-binary"
        and sum(1 for n in names if CONTROL_TAR.fullmatch(n)) == 1
        and sum(1 for n in names if DATA_TAR.fullmatch(n)) == 1
    )


def link_of(scope: Scope | None, name: str) -> Link | None:
    """How member `name` of a scope relates to it (a .deb's tars, an MSI's cabinet)."""
    if scope is not None and scope.kind == "msi":
        return Link.NAMES if name.lower().endswith(".cab") else None
    if scope is None or scope.kind != "md5sums":
        return None
    if DATA_TAR.fullmatch(name):
        return Link.NAMES
    return Link.RESTATES if CONTROL_TAR.fullmatch(name) else None


def deferred(scope: Scope | None, name: str) -> bool:
    """Whether member `name` of a scope is compared after the others (it restates them)."""
    if scope is None:
        return False
    if scope.kind == "record":
        return bool(RECORD.fullmatch(name))
    if scope.kind == "msi":
        return name in TABLES
    return link_of(scope, name) is Link.RESTATES


def restates(scope: Scope, name: str, *, linked: bool) -> bool:
    """Whether member `name` restates members of `scope` (`linked`: one layer under it)."""
    if scope.kind == "record":
        return not linked and bool(RECORD.fullmatch(name))
    if scope.kind == "msi":
        return not linked and name in TABLES
    return linked and name in MD5SUMS


class Roles:
    """What one archive pair is to restated digests: a scope, a holder of named members, a
    holder of restating members (`link`: its scope one layer up, if any)."""

    def __init__(self, path: str, la: Listing, lb: Listing, link: tuple[Scope, Link] | None):
        self.scope = scope_of(path, la, lb)
        own = self.scope if self.scope is not None and self.scope.kind != "md5sums" else None
        up, role = link if link is not None else (None, None)
        names_here = own is not None and own.kind == "record"  # a wheel names its own members
        self.names_of = own if names_here else up if role is Link.NAMES else None
        self.restating: tuple[Scope, bool] | None = None  # (scope, one layer under it)
        if own is not None:
            self.restating = (own, False)
        elif up is not None and role is Link.RESTATES:
            self.restating = (up, True)
        if self.names_of is not None:
            self.names_of.register_names(la, lb)

    def deferred(self, name: str) -> bool:
        """Whether member `name` is compared after the others (it restates them)."""
        return deferred(self.scope, name)

    def link(self, name: str) -> tuple[Scope, Link] | None:
        """The link member `name`, an archive, has to this scope (a .deb's tars)."""
        role = link_of(self.scope, name)
        return None if self.scope is None or role is None else (self.scope, role)

    def unread(self, name: str, path: str, verdict: ArtifactVerdict) -> None:
        """Member `name` (result `path`) differs but its content could not be compared."""
        if self.names_of is not None:
            self.names_of.register(name, Changed(path, verdict))

    def compared(
        self, name: str, results: tuple[ArtifactResult, ...], files: tuple[Path, Path],
        digests: tuple[Digest, Digest],
    ) -> tuple[ArtifactResult, ...]:  # fmt: skip
        """A member whose content differs, compared: a restating member's result resolved
        (its own only when explained), a named member's registered with its scope.

        Raises:
            OSError: a file cannot be read.
        """
        own = results[0]
        if self.restating is not None and restates(self.restating[0], name,
                                                   linked=self.restating[1]):  # fmt: skip
            resolved = resolve(self.restating[0], name, own, files)
            return (resolved,) if resolved.verdict in ACCEPTED else (resolved, *results[1:])
        if self.names_of is not None:
            wanted = self.names_of.kind != "record" and own.verdict in ACCEPTED  # else unused
            md5 = md5_pair(*files) if wanted else None
            self.names_of.register(name, Changed(own.path, own.verdict, *digests, md5))
        return results


def md5_pair(released: Path, rebuilt: Path) -> tuple[str, str]:
    """The hex MD5 of two files' content (Debian's md5sums' digest).

    Raises:
        OSError: a file cannot be read.
    """
    return _md5(released), _md5(rebuilt)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)  # the format's digest, compared, never trusted alone
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def resolve(
    scope: Scope, name: str, result: ArtifactResult, files: tuple[Path, Path]
) -> ArtifactResult:
    """The restating member's result: explained (`equivalent`) or `result` with a note why not.

    Raises:
        OSError: a file cannot be read.
    """
    if result.verdict is not ArtifactVerdict.DIFFERENT:
        return result
    try:
        return _explained(scope, name, result, files)
    except NotRestated as exc:
        verdict = ArtifactVerdict.INCONCLUSIVE if exc.undecided else result.verdict
        note = f"restated digests not explained: {exc}"
        return replace(result, verdict=verdict, notes=(*result.notes, note))


def _explained(
    scope: Scope, name: str, result: ArtifactResult, files: tuple[Path, Path]
) -> ArtifactResult:
    if scope.unsure:
        raise NotRestated("; ".join(dict.fromkeys(scope.unsure)))
    if any(p.stat().st_size > MAX_RESTATING for p in files):
        raise NotRestated(f"larger than {MAX_RESTATING} bytes: not read")
    released, rebuilt = (p.read_bytes() for p in files)
    if scope.database is not None:
        found, note = explain_msi(name, scope.database, (released, rebuilt), scope.changed,
                                  scope.names)  # fmt: skip
        return ArtifactResult(result.path, ArtifactVerdict.EQUIVALENT, result.released,
                              result.rebuilt, tuple(found), (note,))  # fmt: skip
    fmt = FORMATS[scope.kind]
    entries_a, entries_b = fmt.parse(released, "released"), fmt.parse(rebuilt, "rebuilt")
    ends = {e.line.endswith(b"\r\n") for e in (*entries_a, *entries_b)}
    if len(ends) > 1:
        raise NotRestated("the released and rebuilt files end their lines otherwise")
    sides = ((entries_a, scope.names[0], "released"), (entries_b, scope.names[1], "rebuilt"))
    for entries, names, side in sides:
        for e in entries:
            if e.path not in names and not fmt.self_entry(e):
                raise NotRestated(f"the {side} entry {quote(e.path)!r} names no member")
    expected, replaced, want, undecided = _expected(fmt, scope, entries_a, entries_b)
    if bytes(expected) != released:
        raise NotRestated(_why(fmt.name, entries_a, entries_b, want))
    if undecided:
        raise NotRestated("; ".join(undecided), undecided=True)
    if not replaced:  # defence: unreachable while the parse covers every byte of both sides
        raise NotRestated("no entry names a member whose content differs")
    diffs = tuple(
        Difference(at, length, f"{fmt.name}[{quote(e.path)}]", Kind.DATA, allowed=True,
                   cause=Cause.CONSEQUENCE, rule=f"restates {c.path} ({c.verdict.value})",
                   detail=f"{fmt.values} of the released content of {c.path}")
        for at, length, e, c in replaced
    )  # fmt: skip
    note = (f"{fmt.name}: released = rebuilt with the {fmt.values} of {len(replaced)} "
            "member(s) whose content differs and is accepted, computed from the released "
            "content; every other byte identical")  # fmt: skip
    return ArtifactResult(result.path, ArtifactVerdict.EQUIVALENT, result.released,
                          result.rebuilt, diffs, (note,))  # fmt: skip


def _expected(
    fmt: Format, scope: Scope, entries_a: list[Entry], entries_b: list[Entry]
) -> tuple[bytearray, list[tuple[int, int, Entry, Changed]], dict[str, bytes], list[str]]:
    """The released file the rebuilt entries call for: its bytes, the restated entries
    (offset, length, entry, member), each path's expected line, and why some are undecided.

    Raises:
        NotRestated: a named member is not accepted, or its rebuilt entry is stale.
    """
    replaced: list[tuple[int, int, Entry, Changed]] = []
    want: dict[str, bytes] = {}
    undecided: list[str] = []
    expected = bytearray()
    released_lines = {e.path: e.line for e in entries_a}
    for e in entries_b:
        changed = scope.changed.get(e.path)
        line = e.line
        if changed is not None and not fmt.self_entry(e):
            if changed.verdict is ArtifactVerdict.INCONCLUSIVE:
                # any value may be right for it: every other line is still checked, so a
                # forged line beside an undecided member is `different`, not `inconclusive`
                undecided.append(f"{changed.path}, named by {quote(e.path)!r}, is not decided")
                line = released_lines.get(e.path, e.line)
            else:
                _acceptable(e, changed)
                if not fmt.states_rebuilt(e, changed):
                    raise NotRestated(f"the rebuilt entry of {changed.path} does not restate "
                                      "the rebuilt content")  # fmt: skip
                line = fmt.restate(e, changed)
                replaced.append((len(expected), len(line), e, changed))
        want[e.path] = line
        expected += line
    return expected, replaced, want, undecided


def _acceptable(e: Entry, changed: Changed) -> None:
    if changed.verdict not in ACCEPTED or changed.released is None:
        raise NotRestated(f"{changed.path}, named by {quote(e.path)!r}, is "
                          f"{changed.verdict.value}: not accepted")  # fmt: skip


def _why(name: str, entries_a: list[Entry], entries_b: list[Entry],
         want: dict[str, bytes]) -> str:  # fmt: skip
    """The first released entry that is not what it should be, in words."""
    by_path = {e.path: e for e in entries_a}
    for e in entries_b:
        other = by_path.pop(e.path, None)
        if other is None:
            return f"the entry {quote(e.path)!r} is not in the released {name}"
        if other.line == want[e.path]:
            continue
        if want[e.path] == e.line:
            return f"the entry {quote(e.path)!r} differs but the member's content does not"
        if other.line == e.line:
            return (f"the released entry {quote(e.path)!r} keeps the rebuilt content's "
                    "values (stale)")  # fmt: skip
        return f"the released entry {quote(e.path)!r} is not the released content's values"
    if by_path:
        extra = quote(next(iter(by_path)))
        return f"the released {name} has an entry the rebuilt lacks: {extra!r}"
    return "the entries are in another order"
