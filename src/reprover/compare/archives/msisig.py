"""Prove that a signed MSI is exactly its unsigned rebuild plus an Authenticode signature.

Owns: the MSI Authenticode hash as osslsigncode (`msi.c`) and Windows compute it, streamed:
each storage's children in the order of their raw UTF-16 names (memcmp, the longer name first
on a tie), a stream's bytes, a storage recursively, then the storage's CLSID; the root's
`\\x05DigitalSignature` and `\\x05MsiDigitalSignatureEx` are skipped. With an
`\\x05MsiDigitalSignatureEx` stream the hash starts with the metadata pre-hash (per entry in
the same order: name, size or CLSID, state bits, creation and modification times), which that
stream must hold. And `prove_msi_signature_only`: the released file's entries are the rebuilt
file's, storage by storage, raw name by raw name, plus the signature stream(s) at the root and
nothing else; every kind and CLSID is the same; every stream is byte for byte the rebuild's
except the `accepted` ones (their content differs but the driver already accepted it: a custom
action DLL in the `Binary` table proven signature-only on its own, signed before packing); the
PKCS#7 names the hash of the RELEASED file's streams (SpcSipInfo: the signature covers exactly
the released bytes, signed inner DLLs included) and verifies (`signatures.pkcs7`), chaining to
pinned certificates when there are any. The extended stream, if present, is the pre-hash of
the released file's metadata, which must be the rebuild's but for the sizes of the accepted
streams (so every name, time and state bit is the rebuild's). Everything else the two compound
files differ in is their sector layout, which `ole.read_ole` has already accounted for byte by
byte, and which must be byte for byte the file osslsigncode writes (`msilayout`) unless
another rule (`archive.order`) allowed it.
Does not own: the PKCS#7 grammar and trust (`signatures.pkcs7`, `signatures.trust`), deciding
the verdict or which members are accepted (`driver`, `verdict`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cmp_to_key
from pathlib import Path
from typing import Any

import olefile

from reprover.compare.archives.listing import Listing, Member
from reprover.compare.archives.msilayout import require_signer_layout
from reprover.compare.archives.msiwriter import EXTENDED as RAW_EXTENDED
from reprover.compare.archives.msiwriter import SIGNATURE as RAW_SIGNATURE
from reprover.compare.archives.ole import (
    ENTRY,
    OleFile,
    entry_offset,
    msi_name,
)
from reprover.compare.signatures.pkcs7 import SPC_SIPINFO, SignerDetails, verify_authenticode
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import VerificationError

STREAM, ROOT = 2, 5


@dataclass
class Node:
    """One directory entry: its raw 128 bytes, decoded path, and children (storages)."""

    raw: bytes
    path: str
    kids: list[Node] = field(default_factory=list)

    @property
    def name(self) -> bytes:
        """The raw name with its terminator (the declared length), as osslsigncode reads it."""
        return self.raw[: int.from_bytes(self.raw[0x40:0x42], "little")]

    @property
    def kind(self) -> int:
        return self.raw[0x42]

    @property
    def clsid(self) -> bytes:
        return self.raw[0x50:0x60]

    @property
    def size(self) -> bytes:
        """A stream's size as the pre-hash takes it (the low 32 bits, as stored)."""
        return self.raw[0x78:0x7C]

    def metadata(self, size: bytes | None = None) -> bytes:
        """What the pre-hash takes of this entry (osslsigncode `prehash_metadata`), a
        stream's size replaced by `size` when given."""
        raw, out = self.raw, b""
        if self.kind != ROOT:
            out += self.name[:-2]
        out += (self.size if size is None else size) if self.kind == STREAM else self.clsid
        out += raw[0x60:0x64]
        if self.kind != ROOT:
            out += raw[0x64:0x74]
        return out

    def signing(self) -> bool:
        """A signature stream by osslsigncode's test (a prefix compare of the raw names)."""
        return any(
            self.name[: min(len(self.name), len(s))] == s[: min(len(self.name), len(s))]
            for s in (RAW_SIGNATURE, RAW_EXTENDED)
        )

    def ordered(self, *, root: bool) -> list[Node]:
        """Children in hash order, without the root's signature streams."""
        kids = [k for k in self.kids if not (root and k.signing())]
        return sorted(kids, key=cmp_to_key(_compare))


def _compare(a: Node, b: Node) -> int:
    n = min(len(a.name), len(b.name))
    x, y = a.name[:n], b.name[:n]
    if x != y:
        return -1 if x < y else 1
    return -1 if len(a.name) > len(b.name) else 1


def read_tree(path: Path) -> Node:
    """The directory tree of the compound file at `path`, each entry's raw bytes.

    Raises:
        VerificationError: the file does not parse.
    """
    try:
        ole = OleFile(str(path), raise_defects=olefile.DEFECT_INCORRECT)
    except (OSError, ValueError, IndexError, RecursionError) as exc:
        raise VerificationError(f"{path.name}: not a compound file: {exc}") from exc
    with ole:

        def node(entry: Any, prefix: str) -> Node:
            ole.fp.seek(entry_offset(ole, entry.sid))
            here = Node(ole.fp.read(ENTRY), prefix + msi_name(entry.name) if entry.sid else "")
            todo.append((entry, here))
            return here

        todo: list[tuple[Any, Node]] = []
        root = node(ole.root, "")
        while todo:
            entry, parent = todo.pop()
            prefix = "" if parent.kind == ROOT else parent.path + "/"  # as `ole.read_ole` names
            parent.kids = [node(kid, prefix) for kid in entry.kids]
    return root


def members_by_path(listing: Listing) -> dict[str, Member]:
    """The members of `listing` by name.

    Raises:
        VerificationError: two members share a name.
    """
    out: dict[str, Member] = {}
    for m in listing.members:
        if m.name in out:
            raise VerificationError(f"two entries are named {m.name!r}")
        out[m.name] = m
    return out


def _content(node: Node, members: dict[str, Member]) -> Iterator[bytes]:
    member = members.get(node.path)
    if member is None or member.opener is None:
        raise VerificationError(f"stream {node.path!r} cannot be read")
    yield from member.opener()


def msi_hash(root: Node, members: dict[str, Member], algorithm: str, prehash: bytes = b"") -> bytes:
    """The MSI Authenticode hash: `prehash` (extended signatures), streams, CLSIDs.

    Raises:
        VerificationError: a stream named in the directory is missing from the listing.
    """
    digest = hashlib.new(algorithm)
    digest.update(prehash)

    def walk(node: Node, *, root: bool) -> None:
        for kid in node.ordered(root=root):
            if kid.kind == STREAM:
                for block in _content(kid, members):
                    digest.update(block)
            else:
                walk(kid, root=False)
        digest.update(node.clsid)

    walk(root, root=True)
    return digest.digest()


def metadata_prehash(root: Node, algorithm: str, sizes: Mapping[str, bytes] | None = None) -> bytes:
    """The MsiDigitalSignatureEx pre-hash: every entry's metadata, in hash order; the streams
    named (by path) in `sizes` take that size instead of their own."""
    digest = hashlib.new(algorithm)
    sizes = sizes or {}

    def walk(node: Node, *, root: bool) -> None:
        digest.update(node.metadata())
        for kid in node.ordered(root=root):
            if kid.kind == STREAM:
                digest.update(kid.metadata(sizes.get(kid.path)))
            else:
                walk(kid, root=False)

    walk(root, root=True)
    return digest.digest()


def _same(
    rel: Node,
    reb: Node,
    members: tuple[dict[str, Member], dict[str, Member]],
    accepted: frozenset[str],
    differing: dict[str, Node],
) -> None:
    """Released = rebuilt below `rel`/`reb`, except the root's signature streams and the
    content of `accepted` streams; put each released stream whose content differs (all
    accepted) into `differing`, by path.

    Raises:
        VerificationError: an entry, a kind or a CLSID differs, or the bytes of a stream
            not accepted.
    """
    if rel.clsid != reb.clsid:
        raise VerificationError(
            f"the CLSID of {rel.path or 'the root'!r} differs from the rebuild's"
        )
    root = rel.kind == ROOT
    kept = [k for k in rel.kids if not (root and k.signing())]
    a, b = {k.name: k for k in kept}, {k.name: k for k in reb.kids}
    if len(a) != len(kept) or len(b) != len(reb.kids):
        raise VerificationError(f"two entries of {rel.path or 'the root'!r} share a name")
    if a.keys() != b.keys():
        where = rel.path or "the root"
        raise VerificationError(
            f"{where!r} holds other entries than the rebuild's (plus the signature)"
        )
    for name, kid in a.items():
        other = b[name]
        if kid.kind != other.kind:
            raise VerificationError(f"{kid.path!r} is a stream on one side, a storage on the other")
        if kid.kind == STREAM:
            if _sha(_content(kid, members[0])) == _sha(_content(other, members[1])):
                continue
            if kid.path not in accepted:
                raise VerificationError(f"stream {kid.path!r} differs from the rebuild's and "
                                        "is not accepted on its own")  # fmt: skip
            differing[kid.path] = kid
        else:
            _same(kid, other, members, accepted, differing)


def _prehash(
    dse: bytes, trees: tuple[Node, Node], sizes: Mapping[str, bytes], algorithm: str
) -> bytes:
    """The pre-hash an extended signature must hold: the released file's entry metadata,
    which is the rebuild's but for the sizes of the differing (accepted) streams, `sizes`.

    Raises:
        VerificationError: `dse` is not that pre-hash, or the metadata differ otherwise.
    """
    prehash = metadata_prehash(trees[0], algorithm)
    if dse != prehash:
        raise VerificationError(
            f"MsiDigitalSignatureEx is not the pre-hash of the released file's entry metadata "
            f"({algorithm})"
        )
    if metadata_prehash(trees[1], algorithm, sizes) != prehash:
        raise VerificationError(
            "the released file's entry metadata is not the rebuild's (names, state bits, "
            "times, or sizes of streams equal to the rebuild's differ)"
        )
    return prehash


def _sha(blocks: Iterator[bytes]) -> bytes:
    h = hashlib.sha256()
    for block in blocks:
        h.update(block)
    return h.digest()


def prove_msi_signature_only(
    files: tuple[Path, Path],
    listings: tuple[Listing, Listing],
    trusted: tuple[Path, ...],
    accepted: frozenset[str] = frozenset(),
    *,
    signer_layout: bool = False,
) -> tuple[SignerDetails, ...]:
    """Prove released = rebuilt + an Authenticode signature (extended or not); return signers.

    `files` and `listings` are (released, rebuilt), the listings from `ole.read_ole`;
    `accepted` names the streams whose content may differ (the driver accepted each on its
    own): the signature must then cover the released streams, and an extended signature the
    released metadata, which differs from the rebuild's only in those streams' sizes. With
    `signer_layout` the released file must also be laid out byte for byte as osslsigncode
    writes it (`msilayout`): its sector layout is then explained by signing.

    Raises:
        VerificationError: any part of the proof fails; the message says which.
        InputError: a pinned certificate cannot be read.
    """
    anchors = load_trusted(trusted)
    rel, reb = read_tree(files[0]), read_tree(files[1])
    if any(k.signing() for k in reb.kids):
        raise VerificationError("the rebuilt MSI is already signed; compare an unsigned rebuild")
    signs = {k.name: k for k in rel.kids if k.signing()}
    if set(signs) - {RAW_SIGNATURE, RAW_EXTENDED}:
        raise VerificationError("a root entry's name imitates a signature stream's")
    if RAW_SIGNATURE not in signs:
        raise VerificationError("the released MSI has no DigitalSignature stream")
    if any(k.kind != STREAM for k in signs.values()):
        raise VerificationError("a signature entry is a storage, not a stream")
    members = (members_by_path(listings[0]), members_by_path(listings[1]))
    differing: dict[str, Node] = {}
    _same(rel, reb, members, accepted, differing)
    sizes = {path: node.size for path, node in differing.items()}
    if signer_layout:
        require_signer_layout(files[0], files[1])
    blob = b"".join(_content(signs[RAW_SIGNATURE], members[0]))
    extended = signs.get(RAW_EXTENDED)
    dse = None if extended is None else b"".join(_content(extended, members[0]))
    cache: dict[str, bytes] = {}

    def expected(algorithm: str) -> bytes:
        if algorithm not in cache:
            prehash = b"" if dse is None else _prehash(dse, (rel, reb), sizes, algorithm)
            # the streams as released (equal to the rebuild's but the accepted ones, checked)
            cache[algorithm] = msi_hash(rel, members[0], algorithm, prehash)
        return cache[algorithm]

    signers = verify_authenticode(blob, expected, trusted=anchors, label="MSI signature",
                                  content=SPC_SIPINFO)  # fmt: skip
    return tuple(signers)
