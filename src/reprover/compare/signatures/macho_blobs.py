"""Mach-O code signature blobs: the SuperBlob, CodeDirectories and special-slot blobs, strictly.

Owns: parsing the bytes `LC_CODE_SIGNATURE` points at into a `CodeSignature` (every offset and
length bounds-checked, blobs contiguous, nothing but zero padding after them), decoding each
CodeDirectory's fields (identifier, team id, flags, hash type, page size, exec-segment fields,
special-slot and page hashes) and the DER entitlements blob, and checking special-slot hashes.
Does not own: the load commands (`macho`), the CMS signer (`macho_cms`) or what a pin accepts.

Layout per Apple's `cs_blobs.h`: a SuperBlob (`0xfade0cc0`) indexes blobs by slot: 0 the
CodeDirectory, 2 requirements, 5 XML entitlements, 7 DER entitlements, 0x1000-0x1004 alternate
CodeDirectories, 0x10000 the CMS BlobWrapper (8 bytes, empty, for ad-hoc `codesign -s -`).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from reprover.compare.signatures import der
from reprover.compare.signatures.der import CONTEXT, SEQUENCE, SET, UNIVERSAL, DerError, Tlv
from reprover.errors import VerificationError

SUPERBLOB = 0xFADE0CC0
CODEDIRECTORY = 0xFADE0C02
REQUIREMENTS = 0xFADE0C01
ENTITLEMENTS = 0xFADE7171
ENTITLEMENTS_DER = 0xFADE7172
BLOBWRAPPER = 0xFADE0B01
SLOT_CODEDIRECTORY = 0
SLOT_REQUIREMENTS = 2
SLOT_ENTITLEMENTS = 5
SLOT_ENTITLEMENTS_DER = 7
SLOT_CMS = 0x10000
ALTERNATE_CDS = range(0x1000, 0x1005)
SPECIAL_MAGIC = {
    SLOT_REQUIREMENTS: REQUIREMENTS,
    SLOT_ENTITLEMENTS: ENTITLEMENTS,
    SLOT_ENTITLEMENTS_DER: ENTITLEMENTS_DER,
}
HASHES = {1: ("sha1", 20), 2: ("sha256", 32), 3: ("sha256", 20), 4: ("sha384", 48)}
MAX_BLOBS = 16
CD_HEADER = 44
MAX_VERSION = 0x205FF
# (first version, header size): scatter, team id, 64-bit limit, exec segment, runtime
HEADER_SIZES = (
    (0x20001, 44),
    (0x20100, 48),
    (0x20200, 52),
    (0x20300, 64),
    (0x20400, 88),
    (0x20500, 96),
)
APPLICATION = 1


@dataclass(frozen=True)
class CodeDirectory:
    """The decoded fields of one CodeDirectory, and its bytes (`raw`) and file offset."""

    offset: int
    raw: bytes
    version: int
    flags: int
    identifier: str
    team_id: str | None
    hash_type: str
    hash_size: int
    page_size: int
    code_limit: int
    exec_seg: tuple[int, int, int] | None  # base, limit, flags
    special: dict[int, bytes]
    pages: tuple[bytes, ...]


@dataclass(frozen=True)
class CodeSignature:
    """A parsed SuperBlob: where it lies and what each slot holds (slot -> offset, bytes)."""

    dataoff: int
    datasize: int
    length: int
    blobs: tuple[tuple[int, int, bytes], ...]
    directories: tuple[CodeDirectory, ...]

    def slot(self, number: int) -> bytes | None:
        """The bytes of the blob in slot `number`, or None."""
        return next((b for s, _, b in self.blobs if s == number), None)


def _be32(data: bytes, off: int) -> int:
    return int(struct.unpack_from(">I", data, off)[0])


def parse_signature(
    data: bytes, dataoff: int, datasize: int, name: str, *, previous: bytes = b""
) -> CodeSignature:
    """Parse the code signature at `dataoff` (it must end the file `data`).

    The bytes after the SuperBlob, up to `datasize`, must be zero or, where `previous` (the
    rebuilt file) has a byte at the same offset, that byte: codesign writes its SuperBlob over
    the linker's signature in place and leaves the rest of the old one there.

    Raises:
        VerificationError: malformed, not last in the file, unknown blobs or slot hashes wrong,
            or a byte after the SuperBlob that is neither zero nor the rebuild's.
    """
    if dataoff + datasize != len(data):
        raise VerificationError(
            f"{name}: the code signature ({dataoff:#x}+{datasize:#x}) does not end at end of "
            f"file ({len(data):#x}); bytes outside it would not be covered"
        )
    if datasize < 12 or _be32(data, dataoff) != SUPERBLOB:
        raise VerificationError(f"{name}: the code signature is not a SuperBlob")
    length, count = _be32(data, dataoff + 4), _be32(data, dataoff + 8)
    if length > datasize or count > MAX_BLOBS or 12 + 8 * count > length:
        raise VerificationError(f"{name}: SuperBlob length {length} or count {count} is bad")
    _check_tail(data, dataoff + length, dataoff + datasize, previous, name)
    blobs: list[tuple[int, int, bytes]] = []
    cursor = dataoff + 12 + 8 * count
    for i in range(count):
        slot, rel = struct.unpack_from(">II", data, dataoff + 12 + 8 * i)
        start = dataoff + rel
        if not cursor <= start < cursor + 16 or any(data[cursor:start]) or rel + 8 > length:
            raise VerificationError(
                f"{name}: SuperBlob entry {i} at {rel:#x} overlaps or leaves more than zero "
                "alignment padding before it (blobs must follow each other in order)"
            )
        blob_len = _be32(data, start + 4)
        if blob_len < 8 or rel + blob_len > length:
            raise VerificationError(f"{name}: blob {i} length {blob_len} is out of bounds")
        if any(s == slot for s, _, _ in blobs):
            raise VerificationError(f"{name}: slot {slot:#x} appears twice")
        blobs.append((int(slot), start, data[start : start + blob_len]))
        cursor = start + blob_len
    if cursor != dataoff + length:
        raise VerificationError(
            f"{name}: {dataoff + length - cursor} bytes in the SuperBlob belong to no blob"
        )
    directories = _check_blobs(blobs, name)
    return CodeSignature(dataoff, datasize, length, tuple(blobs), directories)


def _check_tail(data: bytes, start: int, end: int, previous: bytes, name: str) -> None:
    tail = data[start:end]
    if not any(tail):
        return
    same = previous[start:end]
    for i, byte in enumerate(tail):
        if byte and (i >= len(same) or same[i] != byte):
            raise VerificationError(
                f"{name}: non-zero bytes after the SuperBlob (at {start + i:#x}) that are not the "
                "rebuilt file's own (the remains of the signature codesign replaced); bytes "
                "there are covered by no signature"
            )


def _check_blobs(blobs: list[tuple[int, int, bytes]], name: str) -> tuple[CodeDirectory, ...]:
    """Every blob's magic matches its slot; CodeDirectories decode; special slots hash right."""
    directories: list[CodeDirectory] = []
    for slot, start, body in blobs:
        magic = _be32(body, 0)
        if slot == SLOT_CODEDIRECTORY or slot in ALTERNATE_CDS:
            if magic != CODEDIRECTORY:
                raise VerificationError(f"{name}: slot {slot:#x} is not a CodeDirectory")
            directories.append(decode_code_directory(body, start, name))
        elif slot == SLOT_CMS:
            if magic != BLOBWRAPPER:
                raise VerificationError(f"{name}: slot 0x10000 is not a CMS BlobWrapper")
        elif SPECIAL_MAGIC.get(slot) != magic:
            raise VerificationError(
                f"{name}: unknown blob {magic:#x} in slot {slot:#x} at file offset {start:#x}"
            )
    if not directories or blobs[0][0] != SLOT_CODEDIRECTORY:
        raise VerificationError(f"{name}: the first blob must be the CodeDirectory (slot 0)")
    for cd in directories:
        for slot, start, body in blobs:
            if slot not in SPECIAL_MAGIC:
                continue
            want = cd.special.get(slot)
            got = hashlib.new(cd.hash_type, body).digest()[: cd.hash_size]
            if want != got:
                raise VerificationError(
                    f"{name}: special slot {slot} hash in the CodeDirectory at {cd.offset:#x} "
                    f"does not match the blob at {start:#x}"
                )
        unused = [s for s, h in cd.special.items() if s in SPECIAL_MAGIC and any(h)]
        present = {s for s, _, _ in blobs}
        if any(s not in present for s in unused):
            raise VerificationError(f"{name}: a special slot hash names a blob that is absent")
    return tuple(directories)


def decode_code_directory(cd: bytes, offset: int, name: str) -> CodeDirectory:
    """Decode one CodeDirectory's fields with every offset checked.

    Raises:
        VerificationError: truncated or inconsistent.
    """
    if len(cd) < CD_HEADER:
        raise VerificationError(f"{name}: CodeDirectory is truncated")
    (_, length, version, flags, hash_off, ident_off, n_special, n_code, code_limit) = (
        struct.unpack_from(">IIIIIIIII", cd)
    )
    hash_size, hash_type, _, page_log = struct.unpack_from(">BBBB", cd, 36)
    if length != len(cd) or hash_type not in HASHES or HASHES[hash_type][1] != hash_size:
        raise VerificationError(f"{name}: CodeDirectory header is inconsistent")
    if page_log and not 9 <= page_log <= 16:
        raise VerificationError(f"{name}: unsupported page size 2^{page_log}")
    if not 0x20001 <= version <= MAX_VERSION:
        raise VerificationError(f"{name}: unsupported CodeDirectory version {version:#x}")
    header = max(size for since, size in HEADER_SIZES if version >= since)
    if len(cd) < header:
        raise VerificationError(f"{name}: CodeDirectory version {version:#x} is truncated")
    if version >= 0x20100 and _be32(cd, 44):
        raise VerificationError(f"{name}: scatter vectors are not supported")
    if version >= 0x20300 and struct.unpack_from(">Q", cd, 56)[0]:
        raise VerificationError(f"{name}: 64-bit code limits are not supported")
    if version >= 0x20500 and _be32(cd, 92):
        raise VerificationError(f"{name}: encrypted-page hashes are not supported")
    first = hash_off - n_special * hash_size
    if first < header or hash_off + n_code * hash_size != len(cd):
        raise VerificationError(f"{name}: CodeDirectory hash slots lie outside it")
    team_off = _be32(cd, 48) if version >= 0x20200 else 0
    strings = [o for o in (ident_off, team_off) if o]
    if any(not header <= o < first for o in strings) or not ident_off:
        raise VerificationError(f"{name}: identifier or team id lies outside the strings area")
    exec_seg = struct.unpack_from(">QQQ", cd, 64) if version >= 0x20400 else None
    special = {
        s: cd[hash_off - s * hash_size : hash_off - (s - 1) * hash_size]
        for s in range(1, n_special + 1)
    }
    pages = tuple(
        cd[hash_off + i * hash_size : hash_off + (i + 1) * hash_size] for i in range(n_code)
    )
    return CodeDirectory(
        offset=offset,
        raw=cd,
        version=version,
        flags=flags,
        identifier=_cstring(cd, ident_off, first, name),
        team_id=_cstring(cd, team_off, first, name) if team_off else None,
        hash_type=HASHES[hash_type][0],
        hash_size=hash_size,
        page_size=1 << page_log if page_log else 0,
        code_limit=code_limit,
        exec_seg=(int(exec_seg[0]), int(exec_seg[1]), int(exec_seg[2])) if exec_seg else None,
        special=special,
        pages=pages,
    )


def _cstring(cd: bytes, off: int, limit: int, name: str) -> str:
    end = cd.find(b"\0", off, limit)
    if end < 0:
        raise VerificationError(f"{name}: unterminated string in the CodeDirectory")
    try:
        return cd[off:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{name}: identifier is not UTF-8") from exc


def der_entitlements(blob: bytes, name: str) -> object:
    """Decode a DER entitlements blob (slot 7) to Python values (dict, list, str, int, bool).

    Raises:
        VerificationError: not Apple's DER entitlements encoding.
    """
    root = der.parse_one(blob[8:], f"{name}: DER entitlements")
    der.check_well_formed(root, name)
    items = root.expect(APPLICATION, True, 16, name).children(name)
    if len(items) != 2 or der.integer(items[0], name) != 1:
        raise DerError(f"{name}: DER entitlements version is not 1")
    return _der_value(items[1], name)


def _der_value(tlv: Tlv, name: str) -> object:
    if tlv.is_(UNIVERSAL, False, 0x01):
        if tlv.content not in (b"\x00", b"\xff"):
            raise DerError(f"{name}: malformed BOOLEAN")
        return tlv.content == b"\xff"
    if tlv.is_(UNIVERSAL, False, der.INTEGER):
        return der.integer(tlv, name)
    if tlv.is_(UNIVERSAL, False, 0x0C):
        return tlv.content.decode("utf-8", "strict")
    if tlv.is_(UNIVERSAL, True, SEQUENCE):
        return [_der_value(c, name) for c in tlv.children(name)]
    if tlv.is_(CONTEXT, True, 16) or tlv.is_(UNIVERSAL, True, SET):
        out: dict[str, object] = {}
        for pair in tlv.children(name):
            key, value = der.sequence(pair, name, minimum=2, maximum=2)
            text = key.expect(UNIVERSAL, False, 0x0C, name).content.decode("utf-8", "strict")
            if text in out:
                raise DerError(f"{name}: entitlement {text!r} appears twice")
            out[text] = _der_value(value, name)
        return out
    raise DerError(f"{name}: unsupported value in DER entitlements at offset {tlv.start}")
