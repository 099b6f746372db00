"""Prove that a signed RPM is exactly its unsigned rebuild plus OpenPGP signatures.

Owns: `prove_rpm_signature_only`. The released package's lead, main header and payload are
the rebuild's, byte for byte. Its signature header holds every tag of the rebuild's with the
same type, count and value, plus signature tags only (RSA or DSA over the main header;
the legacy PGP or GPG over the main header and payload), each once; the region trailer is
the one its index size implies; the reserved space (tag 1008) holds only zeros and shrank by
exactly what the signatures added: the signature header keeps the rebuild's size and its store
is laid out with no byte but the alignment padding rpm writes, so no slack is left anywhere.
Every signature tag is one OpenPGP signature packet, strictly framed, that gpgv verifies over
exactly the bytes rpm signs, made by a pinned OpenPGP key (`signatures.openpgp`).
Does not own: reading the RPM into fields and hidden bytes (`rpmfmt`, whose accounting the
driver reports), OpenPGP (`signatures.openpgp`, `signatures.openpgp_packet`).

Refused, so the artifact stays `different`: the PGP5 tag (1006), a rebuild that is already
signed, a release whose reserved space did not absorb the signatures (rpmsign then rewrites
the whole file: the signature header grows instead).
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reprover.compare.archives.listing import CHUNK, MalformedArchive
from reprover.compare.archives.rpmfmt import HEADER_MAGIC, MAGIC, check_strings, tag_length
from reprover.compare.signatures.openpgp import PinnedKeys
from reprover.compare.signatures.pkcs7 import SignerDetails
from reprover.errors import VerificationError

HEADER_ONLY = {267: "DSA", 268: "RSA"}  # over the main header
HEADER_PAYLOAD = {1002: "PGP", 1005: "GPG"}  # over the main header and the payload
SIGNATURES = {**HEADER_ONLY, **HEADER_PAYLOAD}
PGP5 = 1006
REGION, RESERVED = 62, 1008
BIN = 7
ALIGN = {3: 2, 4: 4, 5: 8}
LEAD = 96
MAX_STORE = 64 << 20


@dataclass(frozen=True)
class _Header:
    """One header structure as stored: index entries in index order and the data store."""

    start: int
    entries: tuple[tuple[int, int, int, int], ...]  # (tag, type, offset, count)
    store: bytes

    @property
    def end(self) -> int:
        return self.start + 16 + 16 * len(self.entries) + len(self.store)

    def values(self) -> dict[int, tuple[int, int, bytes]]:
        """Each tag's (type, count, data bytes); the last one of a repeated tag."""
        out = {}
        for tag, kind, offset, count in self.entries:
            length = tag_length(self.store, kind, offset, count)
            out[tag] = (kind, count, self.store[offset : offset + length])
        return out


def _read(f: BinaryIO, at: int, size: int, what: str) -> bytes:
    f.seek(at)
    data = f.read(size)
    if len(data) != size:
        raise VerificationError(f"{what}: truncated at {at}")
    return data


def _header(f: BinaryIO, start: int, what: str) -> _Header:
    """Read the header structure at `start`, every tag's data inside its store.

    Raises:
        VerificationError: not a header, or a tag's data lies outside the store.
    """
    head = _read(f, start, 16, what)
    if head[:4] != HEADER_MAGIC or head[4:8] != b"\0\0\0\0":
        raise VerificationError(f"{what}: no header at {start}")
    count, size = struct.unpack(">II", head[8:16])
    if count > 65536 or size > MAX_STORE:
        raise VerificationError(f"{what}: header too large")
    index = _read(f, start + 16, 16 * count, what)
    header = _Header(start, tuple(struct.iter_unpack(">IIII", index)), _read(
        f, start + 16 + 16 * count, size, what))  # fmt: skip
    try:
        check_strings(index, size, what)
    except MalformedArchive as exc:
        raise VerificationError(str(exc)) from exc
    for tag, kind, offset, n in header.entries:
        try:
            length = None if offset > size else tag_length(header.store, kind, offset, n)
        except MalformedArchive:
            length = None
        if length is None or offset + length > size:
            raise VerificationError(f"{what}: tag {tag} runs outside its store")
    return header


def _stream(f: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    f.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        block = f.read(CHUNK if left is None else min(CHUNK, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield block


def _hashed(blocks: Iterator[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for block in blocks:
        digest.update(block)
        yield block


def _same_rest(fr: BinaryIO, at_r: int, fb: BinaryIO, at_b: int) -> None:
    """The main header and payload (everything from `at_*` on) are byte-identical.

    Raises:
        VerificationError: they differ; the message says where.
    """
    main = _header(fr, at_r, "released RPM main header")
    if _read(fr, at_r, main.end - at_r, "released") != _read(fb, at_b, main.end - at_r,
                                                             "rebuilt"):  # fmt: skip
        raise VerificationError("the main header differs from the rebuild's (signing never "
                                "changes it)")  # fmt: skip
    hr, hb = hashlib.sha256(), hashlib.sha256()
    for block in _stream(fr, main.end, None):
        hr.update(block)
    for block in _stream(fb, at_b + main.end - at_r, None):
        hb.update(block)
    if hr.digest() != hb.digest():
        raise VerificationError("the payload differs from the rebuild's")


def _check_index(h: _Header, side: str) -> None:
    tags = [e[0] for e in h.entries]
    repeated = sorted(t for t, n in Counter(tags).items() if n > 1)
    if repeated:
        raise VerificationError(f"the {side} signature header holds tag {repeated[0]} twice")
    if tags != sorted(tags):
        raise VerificationError(f"the {side} signature header's index is not sorted by tag")


def _check_layout(h: _Header) -> None:
    """Each tag's data starts where the previous one ends, after only rpm's zero alignment.

    Raises:
        VerificationError: slack, overlap or non-zero padding in the store.
    """
    pos = 0
    for tag, kind, offset, count in sorted(h.entries, key=lambda e: (e[2], e[0])):
        align = ALIGN.get(kind, 1)
        want = -(-pos // align) * align
        if offset != want or h.store[pos:want].strip(b"\0"):
            raise VerificationError(
                f"the released signature header's tag {tag} starts at {offset}, not at {want}: "
                "its store is not laid out as rpm writes it (slack or overlap)"
            )
        pos = offset + tag_length(h.store, kind, offset, count)
    if pos != len(h.store):
        raise VerificationError(
            f"{len(h.store) - pos} byte(s) after the released signature header's last tag "
            "(the reserved space did not absorb them)"
        )


def _check_signature_header(rel: _Header, reb: _Header) -> list[tuple[int, bytes]]:
    """The released signature header is the rebuild's plus signature tags; return those.

    Raises:
        VerificationError: any other difference; the message names the tag.
    """
    _check_index(rel, "released")
    _check_index(reb, "rebuilt")
    rv, bv = rel.values(), reb.values()
    if any(t in bv for t in (*SIGNATURES, PGP5)):
        raise VerificationError("the rebuilt RPM is already signed; compare an unsigned rebuild")
    for tag in sorted(rv.keys() - bv.keys()):
        if tag == PGP5:
            raise VerificationError("the PGP5 signature tag (1006) is not supported")
        if tag not in SIGNATURES:
            raise VerificationError(f"the released signature header holds tag {tag}, which the "
                                    "rebuild's has not and which is not a signature")  # fmt: skip
    missing = sorted(bv.keys() - rv.keys())
    if missing:
        raise VerificationError(f"the released signature header lacks the rebuild's tag "
                                f"{missing[0]}")  # fmt: skip
    for tag in sorted(bv.keys() - {REGION, RESERVED}):
        if rv[tag] != bv[tag]:
            raise VerificationError(f"signature header tag {tag} differs from the rebuild's")
    signed = [(t, rv[t][2]) for t in sorted(rv.keys() - bv.keys())]
    if not signed:
        raise VerificationError("the released RPM carries no signature tag")
    for tag, _ in signed:
        if rv[tag][0] != BIN:
            raise VerificationError(f"signature tag {tag} is not binary data")
    _check_room(rel, reb)
    return signed


def _check_room(rel: _Header, reb: _Header) -> None:
    """The region trailer, the reserved space and the store's layout leave no room for data.

    Raises:
        VerificationError: a trailer that is not rpm's, data in or slack beside the reserved
            space, or a signature header whose size changed while it has reserved space.
    """
    rv, bv = rel.values(), reb.values()
    if REGION in bv:
        trailer = struct.pack(">IIiI", REGION, BIN, -16 * len(rel.entries), 16)
        first = rel.entries[0]
        if first[0] != REGION or rv[REGION] != (BIN, 16, trailer) or first[2] != len(
                rel.store) - 16:  # fmt: skip
            raise VerificationError("the released signature header's region trailer is not "
                                    "the one its index implies")  # fmt: skip
    if RESERVED in bv:
        if rv[RESERVED][0] != BIN or rv[RESERVED][2].strip(b"\0"):
            raise VerificationError("the released reserved space (tag 1008) holds data")
        if rel.end != reb.end:
            raise VerificationError(
                f"the released signature header is {rel.end - LEAD} bytes, the rebuild's "
                f"{reb.end - LEAD}: the reserved space did not shrink by exactly what the "
                "signatures added"
            )
    _check_layout(rel)


def _pad(f: BinaryIO, end: int, what: str) -> int:
    """Where the main header starts: after zero padding to 8 bytes.

    Raises:
        VerificationError: the padding holds data.
    """
    pad = (8 - end % 8) % 8
    if _read(f, end, pad, what).strip(b"\0"):
        raise VerificationError(f"{what}: data in the signature header's padding")
    return end + pad


def prove_rpm_signature_only(
    files: tuple[Path, Path], trusted: tuple[Path, ...]
) -> tuple[SignerDetails, ...]:
    """Prove released = rebuilt + OpenPGP signatures by pinned keys; return every signer.

    `files` is (released, rebuilt).

    Raises:
        VerificationError: any part of the proof fails, or no OpenPGP key is pinned.
        InputError: a pinned file is neither an X.509 certificate nor an OpenPGP public key.
        ToolMissingError: gpg or gpgv is missing.
    """
    with files[0].open("rb") as fr, files[1].open("rb") as fb:
        lead = _read(fr, 0, LEAD, "released")
        if lead[:4] != MAGIC or lead != _read(fb, 0, LEAD, "rebuilt"):
            raise VerificationError("the RPM lead differs from the rebuild's")
        rel = _header(fr, LEAD, "released RPM signature header")
        reb = _header(fb, LEAD, "rebuilt RPM signature header")
        main_r, main_b = _pad(fr, rel.end, "released"), _pad(fb, reb.end, "rebuilt")
        _same_rest(fr, main_r, fb, main_b)
        signed = _check_signature_header(rel, reb)
        main_end = _header(fr, main_r, "released RPM main header").end
        signers = []
        with PinnedKeys(trusted) as keys:
            for tag, data in signed:
                name = SIGNATURES[tag]
                covers = "main header" if tag in HEADER_ONLY else "main header and payload"
                what = f"RPM {name} signature (tag {tag}) over the {covers}"
                end = main_end if tag in HEADER_ONLY else None
                digest = hashlib.sha256()
                s = keys.verify(data, _hashed(_stream(fr, main_r, end), digest), what)
                signers.append(SignerDetails(
                    label=f"RPM {name} signature (tag {tag}, over the {covers}; "
                    f"{s.algorithm} with {s.hash})",
                    subject=f"{s.user_id} (OpenPGP key {s.fingerprint})",
                    issuer=f"pinned OpenPGP key {s.fingerprint}",
                    serial=s.signing_key, digest_algorithm=s.hash,
                    signature_algorithm=s.algorithm,
                    content_digest=f"sha256:{digest.hexdigest()}",
                    chain=(s.fingerprint,), countersignatures=(),
                ))  # fmt: skip
    return tuple(signers)
