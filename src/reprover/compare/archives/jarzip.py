"""What jarsigner's ZIP writer may change in a JAR beside its signature files.

Owns: which member names Java reads as the manifest or a signature file (`signing_related`,
case-blind as Java), the entry fields jarsigner's writer rewrites on every member and the bits
it may change (`REWRITTEN`), and `check_container`: the released JAR's member order, ZIP
comment and entry flags differ from the rebuild's only as jarsigner makes them differ, and the
signature files' own entries carry no bytes a signature does not cover.
Does not own: the manifest and signature-file proof (`jarsig`), reading ZIPs (`zipfmt`).
"""

from __future__ import annotations

from collections.abc import Mapping

from reprover.compare.archives.listing import Field, Listing, Member
from reprover.errors import VerificationError

META = "META-INF/"
MANIFEST = "META-INF/MANIFEST.MF"
# entry fields jarsigner's ZIP writer rewrites on every member, and the bits it may change:
# the UTF-8 name flag (harmless for an ASCII name) and the data-descriptor flag
REWRITTEN = {".flags": 0x0800, ".compression.flags": 0x0008}


def signing_related(name: str) -> bool:
    """Whether Java treats `name` as the manifest or a signature file (case-blind, as Java)."""
    upper = name.upper()
    if not upper.startswith(META):
        return False
    rest = upper[len(META) :]
    if not rest or "/" in rest:
        return False
    return (
        rest == "MANIFEST.MF"
        or rest.endswith((".SF", ".RSA", ".EC", ".DSA"))
        or (rest.startswith("SIG-"))
    )


def check_container(released: Listing, rebuilt: Listing, signing: list[str]) -> None:
    """Order, comment and the signature files' entries: only what jarsigner changes.

    Raises:
        VerificationError: another order, a comment kept but changed, or extra bytes.
    """
    names = {m.name for m in rebuilt.members}
    order = [m.name for m in released.members if m.name in names]
    mine = set(order)
    theirs = [m.name for m in rebuilt.members if m.name in mine]
    moved = sorted(theirs, key=lambda n: 0 if n == MANIFEST else 1 if n.startswith(META) else 2)
    if order not in (theirs, moved):
        raise VerificationError(
            "members are stored in another order than the rebuild's with META-INF/ first "
            "(the only reordering jarsigner does)"
        )
    comment = released.fields.get("zip.comment")
    if comment is not None and comment.value not in (b"", _value(rebuilt.fields, "zip.comment")):
        raise VerificationError("the ZIP comment is neither the rebuild's nor empty")
    by_name = {m.name: m for m in released.members}
    for member in rebuilt.members:
        if member.name in by_name and not signing_related(member.name):
            _rewritten(by_name[member.name], member)
    for name in signing:
        fields = by_name[name].fields
        extra = [k for k in fields if k.startswith(("extra", "local.extra"))]  # times too
        extra += ["comment"] if fields["comment"].value else []
        flags = _value(fields, "flags")
        if not isinstance(flags, int) or flags & ~REWRITTEN[".flags"]:
            extra.append("flags")
        if extra:
            raise VerificationError(
                f"the entry of {name} carries bytes no signature covers ({', '.join(extra)})"
            )


def _value(fields: Mapping[str, Field], key: str) -> object:
    found = fields.get(key)
    return None if found is None else found.value


def _rewritten(mine: Member, theirs: Member) -> None:
    """An entry's flags differ from the rebuild's only in bits jarsigner's ZIP writer sets.

    Raises:
        VerificationError: other bits, or the UTF-8 flag on a name it would change.
    """
    if mine.key is not None and mine.key == theirs.key:
        return  # equal headers: equal fields
    ours, rebuilt = mine.fields, theirs.fields  # built on each read: once
    for key, bits in REWRITTEN.items():
        a, b = _value(ours, key[1:]), _value(rebuilt, key[1:])
        if a == b:
            continue
        if not isinstance(a, int) or not isinstance(b, int) or (a ^ b) & ~bits:
            raise VerificationError(f"entry {mine.name!r}: {key[1:]} {b} -> {a} is more than "
                                    "jarsigner's ZIP writer changes")  # fmt: skip
        if bits == 0x0800 and not mine.name.isascii():
            raise VerificationError(f"entry {mine.name!r}: UTF-8 flag changed on a non-ASCII name")
