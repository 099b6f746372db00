"""RPM tags that restate the package's own bytes: each must hold what those bytes give.

Owns: `check_restated`, which recomputes, from one RPM's own bytes, the values its tags
restate (signature header: the SHA-1 and SHA-256 of the main header, the MD5 and size of the
main header and payload, the payload's expanded size, the reserved space's zeros; main header:
the payload digests, compressed and expanded, both headers' region trailers, each file's
digest and size, and their total) and marks a tag that holds anything else kind `hidden`.
Does not own: reading the RPM (`rpmfmt`), when file digests may differ at all (only beside a
file whose content differs: `verdict`), signatures (`rpmsig`).

Why: these tags differ whenever anything they cover does, so they are consequences, allowed
beside any allowed difference (a build time). A consequence must be a consequence: a chosen
value there (32 bytes in a payload digest) was data riding on the time.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO

from reprover.compare.archives.listing import CHUNK, Field, Listing
from reprover.model import Kind

ALGORITHMS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512"}  # PGPHASHALGO


@dataclass(frozen=True)
class Layout:
    """Where one RPM's parts lie: the main header (its region tag count too) and the payload,
    and what its payload expands to."""

    header: tuple[int, int]  # start, end of the main header (magic to the end of its store)
    payload: tuple[int, int]  # start, end of the compressed payload
    counts: dict[str, int]  # section -> number of index entries
    expanded_size: int
    expanded: BinaryIO  # the expanded payload


def _digest(f: BinaryIO, start: int, end: int, algorithm: str) -> hashlib._Hash:
    h = hashlib.new(algorithm)
    f.seek(start)
    left = end - start
    while left > 0:
        block = f.read(min(CHUNK, left))
        if not block:
            break
        h.update(block)
        left -= len(block)
    return h


def _expected(key: str, value: tuple[int, int, bytes], f: BinaryIO, at: Layout,
              algorithm: str | None) -> bytes | None:  # fmt: skip
    """The bytes the tag named `key` must hold, or None when it restates nothing checked."""
    (h0, h1), (p0, p1) = at.header, at.payload
    whole, expanded = p1 - h0, at.expanded_size

    def hexed(g: BinaryIO, start: int, end: int, algo: str | None) -> bytes | None:
        return None if algo is None else _digest(g, start, end, algo).hexdigest().encode() + b"\0"

    def number(fmt: str, n: int) -> bytes | None:
        return struct.pack(fmt, n) if n < 1 << (8 * struct.calcsize(fmt)) else None

    def region(section: str, tag: int) -> bytes:
        return struct.pack(">IIiI", tag, 7, -16 * at.counts[section], 16)

    rules: dict[str, Callable[[], bytes | None]] = {
        "rpm.signature.sha1.digest": lambda: hexed(f, h0, h1, "sha1"),
        "rpm.signature.sha256.digest": lambda: hexed(f, h0, h1, "sha256"),
        "rpm.signature.md5.digest": lambda: _digest(f, h0, p1, "md5").digest(),
        "rpm.signature.size.digest": lambda: number(">I", whole),
        "rpm.signature.longsize.digest": lambda: number(">Q", whole),
        "rpm.signature.payloadsize.digest": lambda: number(">I", expanded),
        "rpm.signature.longarchivesize.digest": lambda: number(">Q", expanded),
        "rpm.signature.reserved.digest": lambda: bytes(len(value[2])),
        "rpm.signature.region.digest": lambda: region("signature", 62),
        "rpm.header.region.digest": lambda: region("header", 63),
        "rpm.header.payloaddigest.digest": lambda: hexed(f, p0, p1, algorithm),
        "rpm.header.payloaddigestalt.digest": lambda: hexed(at.expanded, 0, expanded, algorithm),
    }
    rule = rules.get(key)
    return None if rule is None else rule()


def check_restated(listing: Listing, f: BinaryIO, at: Layout) -> None:
    """Mark each tag of `listing` that restates the file's own bytes wrongly as hidden."""
    algo_field = listing.fields.get("rpm.header.payloaddigestalgo")
    algorithm = None
    if algo_field is not None and isinstance(algo_field.value, tuple):
        kind, n, data = algo_field.value
        if kind == 4 and n == 1:
            algorithm = ALGORITHMS.get(struct.unpack(">I", data)[0])
    for key, found in list(listing.fields.items()):
        if not isinstance(found.value, tuple):
            continue
        expected = _expected(key, found.value, f, at, algorithm)
        if expected is not None and found.value[2] != expected:
            listing.fields[key] = _hidden(found)
    for key in _wrong_files(listing):
        listing.fields[key] = _hidden(listing.fields[key])


def _tag(listing: Listing, key: str) -> tuple[int, int, bytes] | None:
    found = listing.fields.get(f"rpm.header.{key}")
    value = None if found is None else found.value
    return value if isinstance(value, tuple) and len(value) == 3 else None


def _strings(value: tuple[int, int, bytes] | None) -> list[bytes] | None:
    if value is None or value[0] != 8:
        return None
    return value[2].split(b"\0")[: value[1]]


def _ints(value: tuple[int, int, bytes] | None) -> tuple[int, ...] | None:
    if value is None or value[0] != 4 or len(value[2]) != 4 * value[1]:
        return None
    return struct.unpack(f">{value[1]}I", value[2])


def _wrong_total(listing: Listing, sizes: tuple[int, ...]) -> list[str]:
    """The header's total size (1009) when it is not its files' sizes summed, each inode once
    (rpm's rule: a hard link's size counts once)."""
    total = _ints(_tag(listing, "size"))
    devices, inodes = _ints(_tag(listing, "tag[1095]")), _ints(_tag(listing, "tag[1096]"))
    if total is None or devices is None or inodes is None or len(total) != 1:
        return []
    if not len(devices) == len(inodes) == len(sizes):
        return ["rpm.header.size"]
    seen = dict(zip(zip(devices, inodes, strict=True), sizes, strict=True))
    return [] if sum(seen.values()) & 0xFFFFFFFF == total[0] else ["rpm.header.size"]


def _wrong_files(listing: Listing) -> list[str]:
    """The header's per-file digests and sizes that are not what the payload's files give.

    They change whenever a file's content does, so they follow any member whose content
    differs and is accepted (an ELF with another build id); chosen bytes there rode along.
    Each regular file in the payload is hashed with the header's file digest algorithm (MD5
    when it names none); a directory or symlink must have an empty digest (and a symlink the
    size of its target); a hard link whose payload entry is empty (rpm stores the content
    once) and a file the payload does not hold (`%ghost`) are not checked.
    """
    digests = _strings(_tag(listing, "filedigests.digest"))
    sizes = _ints(_tag(listing, "filesizes.size"))
    names, dirs = _strings(_tag(listing, "tag[1117]")), _strings(_tag(listing, "tag[1118]"))
    index = _ints(_tag(listing, "tag[1116]"))
    algo = _ints(_tag(listing, "tag[5011]"))
    algorithm = ALGORITHMS.get(algo[0] if algo else 1)
    if None in (digests, sizes, names, dirs, index) or algorithm is None:
        return []
    assert digests is not None and sizes is not None and names is not None  # noqa: S101
    assert dirs is not None and index is not None  # noqa: S101 - narrowed above
    if not len(digests) == len(sizes) == len(names) == len(index) or max(index, default=0) >= len(
        dirs
    ):
        return ["rpm.header.filedigests.digest", "rpm.header.filesizes.size"]
    members = {m.name: m for m in listing.members}
    wrong: set[str] = set(_wrong_total(listing, sizes))
    for i, name in enumerate(names):
        path = "." + (dirs[index[i]] + name).decode("utf-8", "surrogateescape")
        member = members.get(path)
        if member is None or member.opener is None:
            continue
        field = member.fields.get("size")
        stored = field.number if field is not None else None
        if member.kind != "file":  # rpm states no digest for a directory or symlink: any
            if digests[i]:  # string there (of any length) was data riding along
                wrong.add("rpm.header.filedigests.digest")
            if member.kind == "symlink" and stored != sizes[i]:  # its size: the target's
                wrong.add("rpm.header.filesizes.size")
            continue
        if stored != sizes[i]:
            links = member.fields.get("nlink")
            if not (stored == 0 and links is not None and (links.number or 0) > 1):
                wrong.add("rpm.header.filesizes.size")
            continue
        h = hashlib.new(algorithm)
        for block in member.opener():
            h.update(block)
        if h.hexdigest().encode() != digests[i]:
            wrong.add("rpm.header.filedigests.digest")
    return sorted(wrong)


def _hidden(found: Field) -> Field:
    return replace(found, kind=Kind.HIDDEN,
                   show=f"{found.display()} (not what the package's own bytes give)")  # fmt: skip
