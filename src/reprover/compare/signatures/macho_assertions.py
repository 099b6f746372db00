"""What a Mach-O signature asserts, checked against the rebuild's own values or the pins.

Owns: `MachOPins` (the manifest's `[signature] macho_identifier`, `macho_flags` and
`entitlements`), `check_assertions` (identifier, flags other than adhoc/linker-signed, team id,
exec segment, requirements, entitlements: the rebuild's own, or pinned), and the entitlements
as values (XML and DER forms must agree) and as a report line.
Does not own: the byte-level proof (`macho`), blob parsing (`macho_blobs`), verifying the CMS
signer (`macho_cms`).
"""

from __future__ import annotations

import hashlib
import plistlib
from dataclasses import dataclass

from reprover.compare.signatures.macho_blobs import (
    SLOT_ENTITLEMENTS,
    SLOT_ENTITLEMENTS_DER,
    SLOT_REQUIREMENTS,
    CodeSignature,
    der_entitlements,
)
from reprover.compare.signatures.macho_cms import CmsSigner
from reprover.errors import VerificationError

CS_ADHOC = 0x2
CS_LINKER_SIGNED = 0x20000
SIGNATURE_KIND_FLAGS = CS_ADHOC | CS_LINKER_SIGNED
EMPTY_REQUIREMENTS = bytes.fromhex("fade0c010000000c00000000")


@dataclass(frozen=True)
class MachOPins:
    """Values the manifest pins for what a Mach-O signature asserts (None: the rebuild's)."""

    identifier: str | None = None
    flags: int | None = None
    entitlements: bytes | None = None


def describe_entitlements(sig: CodeSignature, name: str) -> str:
    """The entitlements' keys and the SHA-256 of their blobs, for reports ("none" without).

    Raises:
        VerificationError: the entitlements are malformed, or their XML and DER forms disagree.
    """
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


def check_assertions(
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
