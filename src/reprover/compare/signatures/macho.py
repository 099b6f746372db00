"""Mach-O code signatures: released = rebuilt + a code signature, per slice, with what it asserts.

Owns: thin and universal (fat) Mach-O layout for signatures (load commands, `LC_CODE_SIGNATURE`,
`__LINKEDIT`, the fat header and its slices), the proof `prove_macho_signature_only` and its
result, and the pins (`MachOPins`) that decide which asserted fields a release may change.
Does not own: blob parsing (`macho_blobs`) or the CMS signer (`macho_cms`).

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
import plistlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from reprover.compare.signatures import quoted
from reprover.compare.signatures.macho_blobs import (
    SLOT_CMS,
    SLOT_ENTITLEMENTS,
    SLOT_ENTITLEMENTS_DER,
    SLOT_REQUIREMENTS,
    CodeDirectory,
    CodeSignature,
    der_entitlements,
    parse_signature,
)
from reprover.compare.signatures.macho_cms import CmsSigner, verify_cms
from reprover.compare.signatures.macho_layout import (
    SliceLayout,
    fat_slices,
    find_code_signature,
    first_difference,
    is_fat,
    is_macho,
    slice_layout,
)
from reprover.compare.signatures.pe_certtable import SignatureRegion
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import InputError, VerificationError
from reprover.model import Kind

__all__ = [
    "MachOPins",
    "MachOSignatureProof",
    "NoSignerError",
    "find_code_signature",
    "is_macho",
]

CS_ADHOC = 0x2
CS_LINKER_SIGNED = 0x20000
SIGNATURE_KIND_FLAGS = CS_ADHOC | CS_LINKER_SIGNED
EMPTY_REQUIREMENTS = bytes.fromhex("fade0c010000000c00000000")
# special slots whose hashes bind files outside the binary (a bundle's): reported, not checked
EXTERNAL_SLOTS = {
    1: "Info.plist",
    3: "the resource directory",
    4: "application data",
    6: "rep-specific data",
}


class NoSignerError(VerificationError):
    """Pinned trust was asked for, but the signature names no signer (ad-hoc)."""


@dataclass(frozen=True)
class MachOPins:
    """Values the manifest pins for what a Mach-O signature asserts (None: the rebuild's)."""

    identifier: str | None = None
    flags: int | None = None
    entitlements: bytes | None = None


@dataclass(frozen=True)
class SliceProof:
    """What was proven about one slice."""

    offset: int
    identifier: str
    team_id: str | None
    flags: int
    hash_type: str
    page_size: int
    pages: int
    exec_seg: tuple[int, int, int] | None
    requirements: str
    entitlements: str
    signer: CmsSigner | None
    external: tuple[str, ...] = ()

    def lines(self) -> tuple[str, ...]:
        """Report lines for this slice."""
        where = f"slice at {self.offset:#x}: " if self.offset else ""
        if not self.pages:
            return (f"{where}not signed, and byte-identical to the rebuilt slice",)
        seg = (
            "none"
            if self.exec_seg is None
            else f"base {self.exec_seg[0]:#x} limit {self.exec_seg[1]:#x} flags "
            f"{self.exec_seg[2]:#x}"
        )
        who = (
            "ad-hoc (no signer; integrity, not identity)"
            if self.signer is None
            else f"CMS signer {quoted(self.signer.subject)}, issuer {quoted(self.signer.issuer)}"
            + (" (chains to pinned trust)" if self.signer.chain else " (signer not pinned)")
        )
        return (
            f"{where}identifier {self.identifier}; team id {self.team_id or 'none'}; flags "
            f"{self.flags:#x}; hash {self.hash_type}; page size {self.page_size}; {self.pages} "
            "pages match the rebuilt file",
            f"{where}exec segment {seg}",
            f"{where}requirements {self.requirements}",
            f"{where}entitlements {self.entitlements}",
            f"{where}signer: {who}",
            *(f"{where}binds a file outside the binary: {e}" for e in self.external),
            *(
                f"{where}{c.kind} timestamp at {c.time.isoformat()} by {c.signer}"
                f"{' (pinned)' if c.trusted else ' (TSA not pinned)'}"
                for c in (self.signer.countersignatures if self.signer else ())
            ),
        )


@dataclass(frozen=True)
class MachOSignatureProof:
    """What was proven about a Mach-O pair (every slice) and the regions signing wrote."""

    slices: tuple[SliceProof, ...]
    regions: tuple[SignatureRegion, ...]

    def summary(self) -> str:
        """One line: what was proven."""
        first = next(s for s in self.slices if s.pages)
        count = f"{len(self.slices)} slices; " if len(self.slices) > 1 else ""
        kind = "ad-hoc " if all(s.signer is None for s in self.slices) else ""
        return (
            f"released = rebuilt + {kind}code signature; {count}identifier '{first.identifier}'; "
            f"every page of the rebuilt file covered ({first.hash_type})"
        )

    def findings(self) -> tuple[str, ...]:
        """Lines for reports: what each slice asserts, who signed, and the regions."""
        return (
            *(line for s in self.slices for line in s.lines()),
            *(f"region {r.region}: {r.offset:#x}+{r.length:#x}" for r in self.regions),
        )


def _describe_entitlements(sig: CodeSignature, name: str) -> str:
    xml, der_blob = sig.slot(SLOT_ENTITLEMENTS), sig.slot(SLOT_ENTITLEMENTS_DER)
    if xml is None and der_blob is None:
        return "none"
    value = _entitlements_value(sig, name)
    keys = sorted(value) if isinstance(value, dict) else value
    return f"{keys} (sha256 {hashlib.sha256((xml or b'') + (der_blob or b'')).hexdigest()})"


def _entitlements_value(sig: CodeSignature, name: str) -> object:
    """The entitlements as Python values; XML and DER forms must agree when both are present."""
    xml, der_blob = sig.slot(SLOT_ENTITLEMENTS), sig.slot(SLOT_ENTITLEMENTS_DER)
    values: list[object] = []
    if xml is not None:
        values.append(_plist(xml[8:], f"{name}: entitlements"))
    if der_blob is not None:
        values.append(der_entitlements(der_blob, name))
    if len(values) == 2 and values[0] != values[1]:
        raise VerificationError(f"{name}: the XML and DER entitlements say different things")
    return values[0] if values else None


def _plist(data: bytes, what: str) -> object:
    try:
        return plistlib.loads(data, fmt=plistlib.FMT_XML)
    except Exception as exc:  # plistlib raises several types on malformed XML
        raise VerificationError(f"{what}: not an XML property list ({exc})") from exc


def _check_assertions(
    rel: CodeSignature,
    reb: CodeSignature,
    signer: CmsSigner | None,
    pins: MachOPins,
    name: str,
) -> None:
    """Identifier, flags, team id, exec segment, requirements and entitlements: rebuild's or pinned.

    Raises:
        VerificationError: a field differs and is not pinned; the message names the pin.
    """
    base = reb.directories[0]
    for cd in rel.directories:
        if cd.identifier not in (base.identifier, pins.identifier):
            raise VerificationError(
                f"{name}: the signature's identifier {cd.identifier!r} is not the rebuild's "
                f"({base.identifier!r}) nor pinned ([signature] macho_identifier)"
            )
        got, own = cd.flags & ~SIGNATURE_KIND_FLAGS, base.flags & ~SIGNATURE_KIND_FLAGS
        pinned = None if pins.flags is None else pins.flags & ~SIGNATURE_KIND_FLAGS
        if got not in (own, pinned):
            raise VerificationError(
                f"{name}: CodeDirectory flags {cd.flags:#x} assert {got:#x} (hardened runtime "
                f"0x10000, restrict 0x800, ...), not the rebuild's {own:#x} nor pinned "
                "([signature] macho_flags)"
            )
        if bool(cd.flags & CS_ADHOC) != (signer is None):
            raise VerificationError(
                f"{name}: the adhoc flag is {'set' if cd.flags & CS_ADHOC else 'clear'} but the "
                f"signature {'has' if signer else 'has no'} CMS signer"
            )
        ou = signer.organizational_unit if signer else None
        if cd.team_id not in (base.team_id, ou):
            raise VerificationError(
                f"{name}: team id {cd.team_id!r} is neither the rebuild's nor the CMS signer's"
            )
        if cd.exec_seg != base.exec_seg:
            raise VerificationError(
                f"{name}: exec segment (base, limit, flags) {cd.exec_seg} is not the rebuild's "
                f"{base.exec_seg}"
            )
    requirements = rel.slot(SLOT_REQUIREMENTS)
    if requirements not in (reb.slot(SLOT_REQUIREMENTS), EMPTY_REQUIREMENTS) and not (
        signer and signer.chain
    ):
        raise VerificationError(
            f"{name}: the requirements blob is not the rebuild's nor the empty set, and no "
            "signer chains to pinned trust"
        )
    got_ent = _entitlements_value(rel, name)
    own_ent = _entitlements_value(reb, "rebuilt file")
    pin_ent = _plist(pins.entitlements, "pinned entitlements") if pins.entitlements else None
    if got_ent != own_ent and (pins.entitlements is None or got_ent != pin_ent):
        raise VerificationError(
            f"{name}: the signature's entitlements {_keys(got_ent)} are not the rebuild's "
            f"{_keys(own_ent)}"
            + (f" nor the pinned {_keys(pin_ent)}" if pins.entitlements else "")
            + " ([signature] entitlements)"
        )


def _keys(value: object) -> str:
    return str(sorted(value)) if isinstance(value, dict) else "none" if value is None else "?"


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
    _check_assertions(sig, own, signer, pins, name)
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
        entitlements=_describe_entitlements(sig, name),
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
