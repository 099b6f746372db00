"""Mach-O code signatures: released = rebuilt + a code signature, per slice, with what it asserts.

Owns: the proof `prove_macho_signature_only`, slice by slice: the transplant of the rebuilt
bytes, the page hashes, the signer, the regions signing wrote, and why it fails. Does not own:
the layout walk (`macho_layout`: load commands, `LC_CODE_SIGNATURE`, `__LINKEDIT`, the fat
header and its slices), blob parsing (`macho_blobs`), the CMS signer (`macho_cms`), what the
signature may assert (`macho_assertions`, with the pins `MachOPins`), or the result and its
report lines (`macho_report`).

What `prove_macho_signature_only(released, rebuilt)` proves, per slice (a thin file is one slice;
a universal file's slices must match the rebuild's by CPU type, lie in order without overlap,
with only zero bytes between them and after the fat header, the last one ending the file):

- transplant: the rebuilt slice carries its own code signature (ld64 signs every arm64 link;
  link x86_64 with `-adhoc_codesign`) at the same offset, ending the slice; replacing, in the
  rebuilt bytes before it, only `LC_CODE_SIGNATURE.datasize` and `__LINKEDIT`'s `vmsize` and
  `filesize` by the released values gives the released bytes before the signature, byte for
  byte; the released signature ends the slice and `__LINKEDIT`;
- the released signature is a well-formed SuperBlob (see `macho_blobs`; the bytes after it are
  zero or, where codesign left the linker signature it replaced, the rebuild's own) whose every
  CodeDirectory covers every byte before it with page hashes that match, and whose special
  slots (requirements, entitlements) hash to the blobs present;
- what the signature asserts is the rebuild's own, or pinned: identifier
  (`[signature] macho_identifier`), flags other than adhoc/linker-signed (`macho_flags`),
  entitlements (`entitlements`, a plist from the reviewed source), team id (the rebuild's, or
  the verified CMS signer's organizational unit), exec-segment base, limit and flags (the
  rebuild's), requirements (the rebuild's, the empty set, or any when a CMS signer chains to
  pinned trust);
- signer: an empty CMS wrapper or none (ad-hoc: integrity, no identity; the adhoc flag must be
  set) or a CMS SignedData over the CodeDirectory (`macho_cms`; the adhoc flag must be clear),
  verified, and with pinned certificates chained to one.

Not proven: that macOS would run the file (no notarization, trust cache or OS policy).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509

from reprover.compare.signatures.macho_assertions import (
    EMPTY_REQUIREMENTS,
    MachOPins,
    check_assertions,
    describe_entitlements,
)
from reprover.compare.signatures.macho_blobs import (
    SLOT_CMS,
    SLOT_ENTITLEMENTS,
    SLOT_ENTITLEMENTS_DER,
    SLOT_REQUIREMENTS,
    CodeDirectory,
    CodeSignature,
    parse_signature,
)
from reprover.compare.signatures.macho_cms import verify_cms
from reprover.compare.signatures.macho_layout import (
    SliceLayout,
    fat_slices,
    find_code_signature,
    first_difference,
    is_fat,
    is_macho,
    slice_layout,
)
from reprover.compare.signatures.macho_report import MachOSignatureProof, SliceProof
from reprover.compare.signatures.pe_certtable import SignatureRegion
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import InputError, VerificationError
from reprover.model import Kind

__all__ = [
    "NoSignerError",
    "find_code_signature",
    "is_macho",
]

# special slots whose hashes bind files outside the binary (a bundle's): reported, not checked
EXTERNAL_SLOTS = {
    1: "Info.plist",
    3: "the resource directory",
    4: "application data",
    6: "rep-specific data",
}


class NoSignerError(VerificationError):
    """Pinned trust was asked for, but the signature names no signer (ad-hoc)."""


def _check_pages(cd: CodeDirectory, data: bytes, dataoff: int, name: str) -> None:
    if cd.code_limit != dataoff:
        raise VerificationError(
            f"{name}: the CodeDirectory covers {cd.code_limit:#x} bytes, not everything before "
            f"the signature ({dataoff:#x})"
        )
    page = cd.page_size or dataoff
    if len(cd.pages) != (dataoff + page - 1) // page:
        raise VerificationError(f"{name}: {len(cd.pages)} page hashes for {dataoff} bytes")
    for i, want in enumerate(cd.pages):
        chunk = data[i * page : min((i + 1) * page, dataoff)]
        if hashlib.new(cd.hash_type, chunk).digest()[: cd.hash_size] != want:
            raise VerificationError(
                f"{name}: page {i} hash in the CodeDirectory does not match the rebuilt file's "
                f"page at {i * page:#x}"
            )


def _transplant(
    rel: bytes, r: SliceLayout, reb: bytes, b: SliceLayout, *, name: str, base: int
) -> None:
    """The released bytes before the signature are the rebuild's but for three size fields."""
    if b.dataoff != r.dataoff or (b.cs_command, b.linkedit) != (r.cs_command, r.linkedit):
        raise VerificationError(
            f"{name}: the rebuilt file has no code signature at the released one's offset "
            f"({r.dataoff:#x}) with the same load commands; page 0 holds LC_CODE_SIGNATURE, so "
            "link the rebuild with -adhoc_codesign (ld64 does so by default on arm64)"
        )
    if b.dataoff + b.datasize != len(reb):
        raise VerificationError(
            f"the rebuilt file has {len(reb) - b.dataoff - b.datasize:+d} bytes after its own "
            "code signature's end; released = rebuilt + signature cannot hold"
        )
    candidate = bytearray(reb[: b.dataoff])
    struct.pack_into("<I", candidate, r.cs_command + 12, r.datasize)
    struct.pack_into("<Q", candidate, r.linkedit + 32, r.linkedit_vmsize)
    struct.pack_into("<Q", candidate, r.linkedit + 48, r.linkedit_filesize)
    if bytes(candidate) != rel[: r.dataoff]:
        at = first_difference(candidate, rel[: r.dataoff])
        where = f" (file offset {base + at:#x}, in the slice at {base:#x})" if base else ""
        raise VerificationError(
            f"the released file differs from the rebuilt file before the code signature: first "
            f"differing byte at {at:#x}{where}"
        )
    if r.linkedit_fileoff + r.linkedit_filesize != len(rel):
        raise VerificationError(f"{name}: __LINKEDIT does not end with the code signature")
    size = r.linkedit_filesize
    allowed = {b.linkedit_vmsize, size, (size + 0xFFF) & ~0xFFF, (size + 0x3FFF) & ~0x3FFF}
    if r.linkedit_vmsize not in allowed:
        raise VerificationError(
            f"{name}: __LINKEDIT vmsize {r.linkedit_vmsize:#x} is not its file size rounded "
            "to a page"
        )


def _prove_slice(
    rel: bytes,
    reb: bytes,
    *,
    offset: int,
    trusted: Sequence[x509.Certificate],
    pins: MachOPins,
    now: datetime | None,
) -> tuple[SliceProof, list[SignatureRegion]]:
    name = f"released file{f' (slice at {offset:#x})' if offset else ''}"
    r = slice_layout(rel, name)
    b = slice_layout(reb, "rebuilt file")
    if r.dataoff < 0:
        raise VerificationError(f"{name}: no LC_CODE_SIGNATURE: the file is not signed")
    sig = parse_signature(rel, r.dataoff, r.datasize, name, previous=reb)
    _transplant(rel, r, reb, b, name=name, base=offset)
    own = parse_signature(reb, b.dataoff, b.datasize, "rebuilt file")
    for cd in sig.directories:
        _check_pages(cd, rel, r.dataoff, name)
    wrapper = sig.slot(SLOT_CMS)
    anchors = tuple(trusted)
    signer = None
    if wrapper is not None:
        start = next(s for slot, s, _ in sig.blobs if slot == SLOT_CMS)
        signer = verify_cms(
            wrapper,
            sig.directories[0].raw,
            trusted=anchors,
            base=offset + start,
            name=name,
            now=now,
        )
    if anchors and signer is None:
        raise NoSignerError(
            f"{name}: pinned trust ([signature] trusted / --trusted) was given, but this "
            "signature is ad-hoc and names no signer"
        )
    check_assertions(sig, own, signer, pins, name)
    cd = sig.directories[0]
    req = sig.slot(SLOT_REQUIREMENTS)
    proof = SliceProof(
        offset=offset,
        identifier=cd.identifier,
        team_id=cd.team_id,
        flags=cd.flags,
        hash_type=cd.hash_type,
        page_size=cd.page_size,
        pages=len(cd.pages),
        exec_seg=cd.exec_seg,
        requirements="none"
        if req is None
        else "empty set"
        if req == EMPTY_REQUIREMENTS
        else f"{len(req)} bytes (sha256 {hashlib.sha256(req).hexdigest()})",
        entitlements=describe_entitlements(sig, name),
        signer=signer,
        external=tuple(
            f"{EXTERNAL_SLOTS.get(slot, f'special slot {slot}')} (hash {value.hex()})"
            for slot, value in sorted(cd.special.items())
            if slot not in (SLOT_REQUIREMENTS, SLOT_ENTITLEMENTS, SLOT_ENTITLEMENTS_DER)
            and any(value)
        ),
    )
    return proof, _regions(sig, r, b, offset)


def _regions(
    sig: CodeSignature, r: SliceLayout, b: SliceLayout, base: int
) -> list[SignatureRegion]:
    regions: list[SignatureRegion] = []
    fields = (
        (r.cs_command + 12, 4, r.datasize != b.datasize, "LC_CODE_SIGNATURE.datasize"),
        (r.linkedit + 32, 8, r.linkedit_vmsize != b.linkedit_vmsize, "__LINKEDIT.vmsize"),
        (r.linkedit + 48, 8, r.linkedit_filesize != b.linkedit_filesize, "__LINKEDIT.filesize"),
    )
    regions.extend(
        SignatureRegion(base + off, size, f"macho.load_command.{label}", Kind.SIGNATURE)
        for off, size, changed, label in fields
        if changed
    )
    first_blob = sig.blobs[0][1]
    regions.append(
        SignatureRegion(
            base + sig.dataoff,
            first_blob - sig.dataoff,
            "macho.code_signature.superblob",
            Kind.SIGNATURE,
        )
    )
    for slot, start, body in sig.blobs:
        label = "code_directory" if slot == 0 else f"blob[{slot:#x}]"
        regions.append(
            SignatureRegion(
                base + start, len(body), f"macho.code_signature.{label}", Kind.SIGNATURE
            )
        )
    if sig.length < sig.datasize:
        regions.append(
            SignatureRegion(
                base + sig.dataoff + sig.length,
                sig.datasize - sig.length,
                "macho.code_signature.padding",
                Kind.PADDING,
            )
        )
    return regions


def prove_macho_signature_only(
    released: Path,
    rebuilt: Path,
    *,
    trusted: Sequence[Path | bytes] = (),
    pins: MachOPins | None = None,
    now: datetime | None = None,
) -> MachOSignatureProof:
    """Prove released = rebuilt + a code signature, slice by slice; see the module docstring.

    Raises:
        InputError: a file or a pinned certificate cannot be read, or a file is not Mach-O.
        NoSignerError: `trusted` was given but a slice is ad-hoc signed.
        VerificationError: any part of the proof fails; the message says which.
    """
    try:
        rel, reb = released.read_bytes(), rebuilt.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    anchors = load_trusted(trusted)
    pins = pins or MachOPins()
    if is_fat(rel) != is_fat(reb):
        raise VerificationError("one file is universal (fat) and the other is not")
    pairs = [(0, rel, reb)]
    regions: list[SignatureRegion] = []
    if is_fat(rel):
        rel_slices, reb_slices = fat_slices(rel, "released file"), fat_slices(reb, "rebuilt file")
        if [s[:2] for s in rel_slices] != [s[:2] for s in reb_slices]:
            raise VerificationError("the universal files hold different CPU types")
        pairs = [
            (r[2], rel[r[2] : r[2] + r[3]], reb[b[2] : b[2] + b[3]])
            for r, b in zip(rel_slices, reb_slices, strict=True)
        ]
        regions.append(
            SignatureRegion(0, 8 + 20 * len(rel_slices), "macho.fat_header", Kind.SIGNATURE)
        )
    slices: list[SliceProof] = []
    for offset, rel_slice, reb_slice in pairs:
        if len(pairs) > 1 and slice_layout(rel_slice, "released slice").dataoff < 0:
            slices.append(_unsigned_slice(rel_slice, reb_slice, offset))
            continue
        proof, slice_regions = _prove_slice(
            rel_slice, reb_slice, offset=offset, trusted=anchors, pins=pins, now=now
        )
        slices.append(proof)
        regions.extend(slice_regions)
    if all(not s.pages for s in slices):
        raise VerificationError("released file: no slice is signed")
    return MachOSignatureProof(tuple(slices), tuple(regions))


def _unsigned_slice(rel: bytes, reb: bytes, offset: int) -> SliceProof:
    """A slice a universal release left unsigned must be the rebuilt slice, byte for byte.

    Raises:
        VerificationError: it is not.
    """
    if rel != reb:
        at = first_difference(rel, reb)
        raise VerificationError(
            f"the unsigned slice at {offset:#x} differs from the rebuilt slice: first differing "
            f"byte at {at:#x} (file offset {offset + at:#x})"
        )
    return SliceProof(offset, "", None, 0, "none", 0, 0, None, "none", "none", None)
