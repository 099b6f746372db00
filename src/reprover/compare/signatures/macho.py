"""Mach-O code signatures: find `LC_CODE_SIGNATURE`, read its SuperBlob, check page hashes.

Owns: recognising thin Mach-O files, locating the code signature through `LC_CODE_SIGNATURE`,
strict parsing of the SuperBlob and its CodeDirectory (every offset bounds-checked), labelling
the signature's byte regions, and `prove_macho_signature_only`.

What `prove_macho_signature_only(released, rebuilt)` proves, exactly:

- the released file is a thin Mach-O whose code signature is the last thing in the file
  (`dataoff + datasize` = end of file) and is a well-formed SuperBlob holding one CodeDirectory
  (plus, optionally, a requirements blob and an entitlements blob whose special-slot hashes
  match), with only zero bytes after the SuperBlob;
- the CodeDirectory covers every byte before the signature (`codeLimit = dataoff`), and each of
  its page hashes equals the hash of the same page of the *rebuilt* file;
- every byte of the released file before the signature equals the rebuilt file's (so the page
  hashes are not the only thing relied on), and the rebuilt file's own signature also ends
  exactly at its end of file (nothing of the rebuild is left out).

What it does not prove: that anyone in particular signed the file. An ad-hoc signature (what
`ld64.lld` writes, and the only kind generated here) names no signer; it is a checksum list.
A CMS blob (Apple's signer identity) is refused, not verified: no Apple CMS signing or
verification tool runs here, and unverified bytes are never accepted. Nor does it prove that
macOS would run the file (no trust cache, notarization or hardened-runtime policy is
consulted). Fat (universal) files are refused: check each slice (`llvm-lipo -thin`).

Because the load command and `__LINKEDIT` sizes are inside page 0, a rebuild must carry a code
signature of the same size at the same offset (link it with `-adhoc_codesign`) for the
page-hash proof to hold; otherwise the proof fails and says so.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from reprover.compare.signatures.pe_certtable import SignatureRegion
from reprover.errors import InputError, VerificationError
from reprover.model import Kind

MH_MAGIC_64 = 0xFEEDFACF
MH_MAGIC = 0xFEEDFACE
FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xbe\xba\xfe\xca", b"\xca\xfe\xba\xbf", b"\xbf\xba\xfe\xca")
LC_CODE_SIGNATURE = 0x1D
SUPERBLOB = 0xFADE0CC0
CODEDIRECTORY = 0xFADE0C02
REQUIREMENTS = 0xFADE0C01
ENTITLEMENTS = 0xFADE7171
ENTITLEMENTS_DER = 0xFADE7172
BLOBWRAPPER = 0xFADE0B01
CSSLOT_CODEDIRECTORY = 0
SPECIAL_SLOTS = {2: REQUIREMENTS, 5: ENTITLEMENTS, 7: ENTITLEMENTS_DER}
HASHES = {1: ("sha1", 20), 2: ("sha256", 32), 3: ("sha256", 20), 4: ("sha384", 48)}
MAX_BLOBS = 16


@dataclass(frozen=True)
class MachOSignatureProof:
    """What was proven about a Mach-O pair: identifier, hash type, pages, regions."""

    identifier: str
    hash_type: str
    page_size: int
    pages: int
    flags: int
    regions: tuple[SignatureRegion, ...]

    def summary(self) -> str:
        """One line: what was proven."""
        kind = "ad-hoc " if self.flags & 0x2 else ""
        return (
            f"released = rebuilt + {kind}code signature; CodeDirectory '{self.identifier}' "
            f"covers {self.pages} pages of the rebuilt file ({self.hash_type})"
        )

    def findings(self) -> tuple[str, ...]:
        """Lines for reports: what was and was not proven, and the regions."""
        return (
            f"identifier {self.identifier}; flags {self.flags:#x}; hash {self.hash_type}; "
            f"page size {self.page_size}; {self.pages} pages match the rebuilt file",
            "not proven: who signed (ad-hoc signatures name no signer; CMS is not verified)",
            *(f"region {r.region}: {r.offset:#x}+{r.length:#x}" for r in self.regions),
        )


@dataclass(frozen=True)
class _CodeSig:
    dataoff: int
    datasize: int
    cd_offset: int
    cd: bytes
    blobs: tuple[tuple[int, int, int], ...]  # (slot type, file offset, length)
    superblob_length: int


def is_macho(head: bytes) -> bool:
    """Whether the first bytes are a thin or fat Mach-O magic."""
    if len(head) < 4:
        return False
    magic = struct.unpack_from("<I", head)[0]
    return magic in (MH_MAGIC, MH_MAGIC_64) or head[:4] in FAT_MAGICS


def _be32(data: bytes, off: int) -> int:
    return int(struct.unpack_from(">I", data, off)[0])


def find_code_signature(data: bytes, name: str) -> tuple[int, int] | None:
    """Return (dataoff, datasize) of `LC_CODE_SIGNATURE`, or None when the file has none.

    Raises:
        VerificationError: not a thin little-endian Mach-O, or a load command is out of bounds.
    """
    if data[:4] in FAT_MAGICS:
        raise VerificationError(f"{name}: fat Mach-O; check each slice (llvm-lipo -thin)")
    if len(data) < 28:
        raise VerificationError(f"{name}: not a Mach-O file")
    magic = struct.unpack_from("<I", data)[0]
    if magic not in (MH_MAGIC, MH_MAGIC_64):
        raise VerificationError(f"{name}: not a little-endian thin Mach-O file")
    ncmds, sizeofcmds = struct.unpack_from("<II", data, 16)
    pos = 32 if magic == MH_MAGIC_64 else 28
    end = pos + sizeofcmds
    if end > len(data):
        raise VerificationError(f"{name}: load commands run past the end of the file")
    found: tuple[int, int] | None = None
    for _ in range(ncmds):
        if pos + 8 > end:
            raise VerificationError(f"{name}: load command at {pos:#x} is truncated")
        cmd, size = struct.unpack_from("<II", data, pos)
        if size < 8 or pos + size > end:
            raise VerificationError(f"{name}: load command at {pos:#x} has a bad size {size}")
        if cmd == LC_CODE_SIGNATURE:
            if found is not None or size != 16:
                raise VerificationError(f"{name}: malformed or repeated LC_CODE_SIGNATURE")
            off, sz = struct.unpack_from("<II", data, pos + 8)
            found = (int(off), int(sz))
        pos += size
    return found


def _parse_signature(data: bytes, name: str) -> _CodeSig:
    found = find_code_signature(data, name)
    if found is None:
        raise VerificationError(f"{name}: no LC_CODE_SIGNATURE: the file is not signed")
    off, size = found
    if off + size != len(data):
        raise VerificationError(
            f"{name}: the code signature ({off:#x}+{size:#x}) does not end at end of file "
            f"({len(data):#x}); bytes outside it would not be covered"
        )
    if size < 12 or _be32(data, off) != SUPERBLOB:
        raise VerificationError(f"{name}: the code signature is not a SuperBlob")
    length, count = _be32(data, off + 4), _be32(data, off + 8)
    if length > size or count > MAX_BLOBS or 12 + 8 * count > length:
        raise VerificationError(f"{name}: SuperBlob length {length} or count {count} is bad")
    if any(data[off + length : off + size]):
        raise VerificationError(f"{name}: non-zero bytes after the SuperBlob")
    blobs = _walk_blobs(data, off, length, count, name)
    _check_blob_kinds(data, blobs, name)
    cd_start, cd_len = next((s, n) for t, s, n in blobs if t == CSSLOT_CODEDIRECTORY)
    return _CodeSig(off, size, cd_start, data[cd_start : cd_start + cd_len], blobs, length)


def _walk_blobs(
    data: bytes, off: int, length: int, count: int, name: str
) -> tuple[tuple[int, int, int], ...]:
    """The SuperBlob's index: blobs in order, contiguous but for zero alignment padding."""
    blobs: list[tuple[int, int, int]] = []
    cursor = off + 12 + 8 * count
    for i in range(count):
        slot, rel = struct.unpack_from(">II", data, off + 12 + 8 * i)
        start = off + rel
        if not cursor <= start < cursor + 16 or any(data[cursor:start]) or rel + 8 > length:
            raise VerificationError(
                f"{name}: SuperBlob entry {i} at {rel:#x} overlaps or leaves more than zero "
                "alignment padding before it (blobs must follow each other in order)"
            )
        blob_len = _be32(data, start + 4)
        if blob_len < 8 or rel + blob_len > length:
            raise VerificationError(f"{name}: blob {i} length {blob_len} is out of bounds")
        blobs.append((int(slot), start, blob_len))
        cursor = start + blob_len
    if cursor != off + length:
        raise VerificationError(
            f"{name}: {off + length - cursor} bytes in the SuperBlob belong to no blob"
        )
    return tuple(blobs)


def _check_blob_kinds(data: bytes, blobs: tuple[tuple[int, int, int], ...], name: str) -> None:
    """One CodeDirectory; other blobs only requirements or entitlements; CMS refused."""
    cds = [b for b in blobs if b[0] == CSSLOT_CODEDIRECTORY]
    if len(cds) != 1 or _be32(data, cds[0][1]) != CODEDIRECTORY:
        raise VerificationError(f"{name}: expected exactly one CodeDirectory")
    for slot, start, _ in blobs:
        magic = _be32(data, start)
        if slot == CSSLOT_CODEDIRECTORY:
            continue
        if magic == BLOBWRAPPER:
            raise VerificationError(
                f"{name}: a CMS signature blob is present; reprover cannot verify Apple CMS "
                "signatures, so it refuses the bytes rather than accept them unverified"
            )
        if SPECIAL_SLOTS.get(slot) != magic:
            raise VerificationError(f"{name}: unknown blob {magic:#x} in slot {slot:#x}")


def _check_code_directory(
    sig: _CodeSig, released: bytes, rebuilt: bytes, name: str
) -> MachOSignatureProof:
    cd = sig.cd
    if len(cd) < 44:
        raise VerificationError(f"{name}: CodeDirectory is truncated")
    (
        _,
        length,
        version,
        flags,
        hash_off,
        ident_off,
        n_special,
        n_code,
        code_limit,
        hash_size,
        hash_type,
        _,
        page_log,
    ) = struct.unpack_from(">IIIIIIIIIBBBB", cd)
    if length != len(cd) or hash_type not in HASHES or HASHES[hash_type][1] != hash_size:
        raise VerificationError(f"{name}: CodeDirectory header is inconsistent")
    if version >= 0x20300 and len(cd) >= 64 and struct.unpack_from(">Q", cd, 56)[0]:
        raise VerificationError(f"{name}: 64-bit code limits are not supported")
    if code_limit != sig.dataoff:
        raise VerificationError(
            f"{name}: the CodeDirectory covers {code_limit:#x} bytes, not everything before "
            f"the signature ({sig.dataoff:#x})"
        )
    if not 9 <= page_log <= 16:
        raise VerificationError(f"{name}: unsupported page size 2^{page_log}")
    page = 1 << page_log
    if n_code != (code_limit + page - 1) // page:
        raise VerificationError(f"{name}: {n_code} page hashes for {code_limit} bytes")
    first = hash_off - n_special * hash_size
    if first < 44 or hash_off + n_code * hash_size > len(cd) or not 44 <= ident_off < len(cd):
        raise VerificationError(f"{name}: CodeDirectory hash slots lie outside it")
    algo = HASHES[hash_type][0]
    end_ident = cd.find(b"\0", ident_off)
    identifier = cd[ident_off : end_ident if end_ident >= 0 else len(cd)].decode("utf-8", "replace")
    _check_special_slots(sig, released, (algo, hash_off, hash_size, n_special), name)
    _check_pages(sig, released, rebuilt, (algo, hash_off, hash_size, n_code, page), name)
    return MachOSignatureProof(identifier, algo, page, n_code, flags, _regions(sig))


def _check_special_slots(
    sig: _CodeSig, released: bytes, hashing: tuple[str, int, int, int], name: str
) -> None:
    algo, hash_off, hash_size, n_special = hashing
    cd = sig.cd
    for slot, start, blob_len in sig.blobs:
        if slot == CSSLOT_CODEDIRECTORY:
            continue
        if slot > n_special:
            raise VerificationError(f"{name}: blob in slot {slot} has no special-slot hash")
        want = cd[hash_off - slot * hash_size : hash_off - (slot - 1) * hash_size]
        got = hashlib.new(algo, released[start : start + blob_len]).digest()[:hash_size]
        if want != got:
            raise VerificationError(f"{name}: special slot {slot} hash does not match its blob")


def _check_pages(
    sig: _CodeSig,
    released: bytes,
    rebuilt: bytes,
    hashing: tuple[str, int, int, int, int],
    name: str,
) -> None:
    algo, hash_off, hash_size, n_code, page = hashing
    code_limit, cd = sig.dataoff, sig.cd
    if rebuilt[:code_limit] != released[:code_limit]:
        at = next(i for i in range(code_limit) if i >= len(rebuilt) or rebuilt[i] != released[i])
        raise VerificationError(
            f"the released file differs from the rebuilt file before the code signature: first "
            f"differing byte at {at:#x}"
        )
    for i in range(n_code):
        want = cd[hash_off + i * hash_size : hash_off + (i + 1) * hash_size]
        chunk = rebuilt[i * page : min((i + 1) * page, code_limit)]
        if hashlib.new(algo, chunk).digest()[:hash_size] != want:
            raise VerificationError(
                f"{name}: page {i} hash in the CodeDirectory does not match the rebuilt file's "
                f"page at {i * page:#x}"
            )


def _regions(sig: _CodeSig) -> tuple[SignatureRegion, ...]:
    regions = [
        SignatureRegion(
            sig.dataoff,
            sig.blobs[0][1] - sig.dataoff,
            "macho.code_signature.superblob",
            Kind.SIGNATURE,
        )
    ]
    for slot, start, blob_len in sig.blobs:
        label = "code_directory" if slot == CSSLOT_CODEDIRECTORY else f"blob[{slot:#x}]"
        regions.append(
            SignatureRegion(start, blob_len, f"macho.code_signature.{label}", Kind.SIGNATURE)
        )
    if sig.superblob_length < sig.datasize:
        regions.append(
            SignatureRegion(
                sig.dataoff + sig.superblob_length,
                sig.datasize - sig.superblob_length,
                "macho.code_signature.padding",
                Kind.PADDING,
            )
        )
    return tuple(regions)


def prove_macho_signature_only(released: Path, rebuilt: Path) -> MachOSignatureProof:
    """Prove released = rebuilt + a well-formed code signature whose pages are the rebuild's.

    See the module docstring for exactly what this proves and what it does not.

    Raises:
        InputError: a file cannot be read.
        VerificationError: any part of the proof fails; the message says which.
    """
    try:
        rel, reb = released.read_bytes(), rebuilt.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    sig = _parse_signature(rel, "released file")
    reb_sig = find_code_signature(reb, "rebuilt file")
    if reb_sig is None or reb_sig[0] != sig.dataoff:
        raise VerificationError(
            "the rebuilt file has no code signature at the released one's offset "
            f"({sig.dataoff:#x}); page 0 holds LC_CODE_SIGNATURE, so link the rebuild with "
            "-adhoc_codesign"
        )
    if reb_sig[0] + reb_sig[1] != len(reb):
        raise VerificationError(
            f"the rebuilt file has {len(reb) - reb_sig[0] - reb_sig[1]:+d} bytes after its own "
            "code signature's end; released = rebuilt + signature cannot hold"
        )
    return _check_code_directory(sig, rel, reb, "released file")
