"""Write Mach-O code signatures the way Apple's tools lay them out (for fixtures and attacks).

No `codesign` runs on Linux, so this re-signs a thin Mach-O that already carries a signature at
its end (ld64's linker signature): it rebuilds the SuperBlob with a CodeDirectory (version
0x20400: identifier, team id, flags, exec-segment fields, special slots), optional requirements,
XML and DER entitlements blobs and a CMS BlobWrapper (empty for `codesign -s -`, or a detached
CMS SignedData over the CodeDirectory made by `cms_sign`), then fixes `LC_CODE_SIGNATURE`'s size
and `__LINKEDIT`'s sizes and hashes every page of the result, as codesign does. It also builds
universal (fat) files from slices. The layout follows Apple's published `cs_blobs.h`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

CODEDIRECTORY = 0xFADE0C02
SUPERBLOB = 0xFADE0CC0
REQUIREMENTS = 0xFADE0C01
ENTITLEMENTS = 0xFADE7171
ENTITLEMENTS_DER = 0xFADE7172
BLOBWRAPPER = 0xFADE0B01
EMPTY_REQUIREMENTS = struct.pack(">III", REQUIREMENTS, 12, 0)
ADHOC = 0x2
LINKER_SIGNED = 0x20000
RUNTIME = 0x10000
CPU_X86_64 = (0x01000007, 3)
CPU_ARM64 = (0x0100000C, 0)


def _load_commands(data: bytes) -> dict[str, int]:
    """Offsets of LC_CODE_SIGNATURE and __LINKEDIT in a thin 64-bit Mach-O."""
    ncmds = struct.unpack_from("<I", data, 16)[0]
    pos, out = 32, {}
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, pos)
        if cmd == 0x1D:
            out["cs"] = pos
        if cmd == 0x19 and data[pos + 8 : pos + 24].rstrip(b"\0") == b"__LINKEDIT":
            out["linkedit"] = pos
        if cmd == 0x19 and data[pos + 8 : pos + 24].rstrip(b"\0") == b"__TEXT":
            out["text"] = pos
        pos += size
    return out


def blob(magic: int, payload: bytes) -> bytes:
    return struct.pack(">II", magic, 8 + len(payload)) + payload


def der_entitlements(entitlements: dict[str, object]) -> bytes:
    """Apple's DER entitlements: [APPLICATION 16] { INTEGER 1, [CONTEXT 16] dict }."""

    def tlv(tag: int, content: bytes) -> bytes:
        n = len(content)
        if n < 0x80:
            return bytes([tag, n]) + content
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return bytes([tag, 0x80 | len(raw)]) + raw + content

    def value(v: object) -> bytes:
        if isinstance(v, bool):
            return tlv(0x01, b"\xff" if v else b"\0")
        if isinstance(v, int):
            return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big", signed=True))
        if isinstance(v, str):
            return tlv(0x0C, v.encode())
        if isinstance(v, list):
            return tlv(0x30, b"".join(value(x) for x in v))
        if isinstance(v, dict):
            items = sorted((tlv(0x0C, k.encode()), value(x)) for k, x in v.items())
            return tlv(0xB0, b"".join(tlv(0x30, k + x) for k, x in items))
        raise TypeError(v)

    return tlv(0x70, tlv(0x02, b"\x01") + value(entitlements))


def sign(
    data: bytes,
    *,
    identifier: str,
    flags: int = ADHOC,
    team: str | None = None,
    exec_seg_flags: int = 1,
    exec_seg: tuple[int, int] | None = None,
    requirements: bytes | None = EMPTY_REQUIREMENTS,
    entitlements: bytes | None = None,
    entitlements_der: bytes | None = None,
    cms: bool = True,
    cms_sign: Callable[[bytes], bytes] | None = None,
    page_log: int = 12,
    size: int | None = None,
    info_plist: bytes | None = None,
) -> bytes:
    """Re-sign `data` (thin, 64-bit, signature last) like `codesign -s -` or with a CMS signer.

    `cms_sign(code_directory) -> DER` makes the CMS; without it the wrapper is empty (ad-hoc);
    with `cms=False` and `requirements=None` (and flags 0x20002) it writes what ld64 writes.
    `exec_seg` is (base, limit), by default (0, the size of __TEXT). `size` forces the
    signature's size (codesign re-signing in place keeps the old allocation). `info_plist`
    is hashed into special slot 1, as for a bundle's executable (the file is not embedded).
    """
    lcs = _load_commands(data)
    dataoff = struct.unpack_from("<I", data, lcs["cs"] + 8)[0]
    specials: dict[int, bytes] = {}
    if requirements is not None:
        specials[2] = requirements
    if entitlements is not None:
        specials[5] = blob(ENTITLEMENTS, entitlements)
    if entitlements_der is not None:
        specials[7] = blob(ENTITLEMENTS_DER, entitlements_der)
    external = {1: info_plist} if info_plist is not None else {}
    n_special = max([*specials, *external], default=0)
    page = 1 << page_log
    n_code = (dataoff + page - 1) // page
    ident = identifier.encode() + b"\0"
    team_bytes = team.encode() + b"\0" if team else b""
    hash_offset = 88 + len(ident) + len(team_bytes) + 32 * n_special
    cd_len = hash_offset + 32 * n_code
    reserve = 0 if cms_sign is None else 9000
    blobs = [0] + sorted(specials) + ([0x10000] if cms or cms_sign else [])
    needed = 12 + 8 * len(blobs) + cd_len + sum(len(b) for b in specials.values()) + 8 + reserve
    needed = (needed + 15) & ~15
    size = needed if size is None else size
    out = bytearray(data[:dataoff])
    struct.pack_into("<I", out, lcs["cs"] + 12, size)
    link = lcs["linkedit"]
    old_vm, fileoff, old_file = struct.unpack_from("<QQQ", out, link + 32)
    filesize = dataoff + size - fileoff
    vmsize = filesize if old_vm == old_file else (filesize + 0x3FFF) & ~0x3FFF
    struct.pack_into("<QQQ", out, link + 32, vmsize, fileoff, filesize)
    seg_base, text_size = exec_seg or (0, struct.unpack_from("<Q", out, lcs["text"] + 48)[0])
    header = struct.pack(
        ">IIIIIIIIIBBBBIIIIQQQQ",
        CODEDIRECTORY, cd_len, 0x20400, flags, hash_offset, 88, n_special, n_code, dataoff,
        32, 2, 0, page_log, 0, 0, 88 + len(ident) if team else 0, 0, 0, seg_base, text_size,
        exec_seg_flags,
    )  # fmt: skip
    hashed = {**specials, **external}
    slots = b"".join(
        hashlib.sha256(hashed[i]).digest() if i in hashed else b"\0" * 32
        for i in range(n_special, 0, -1)
    )
    pages = b"".join(
        hashlib.sha256(bytes(out[i * page : min((i + 1) * page, dataoff)])).digest()
        for i in range(n_code)
    )
    cd = header + ident + team_bytes + slots + pages
    wrapper = blob(BLOBWRAPPER, cms_sign(cd) if cms_sign else b"")
    contents = [cd] + [specials[s] for s in sorted(specials)]
    if len(blobs) > len(contents):
        contents.append(wrapper)
    index, cursor = b"", 12 + 8 * len(blobs)
    for slot, body in zip(blobs, contents, strict=True):
        index += struct.pack(">II", slot, cursor)
        cursor += len(body)
    superblob = struct.pack(">III", SUPERBLOB, cursor, len(blobs)) + index + b"".join(contents)
    if len(superblob) > size:
        raise ValueError("reserved signature space too small")
    return bytes(out) + superblob + b"\0" * (size - len(superblob))


def fat(slices: list[tuple[tuple[int, int], bytes]], align: int = 14) -> bytes:
    """A universal file as llvm-lipo writes it: big-endian fat header, slices aligned to 2^align,
    zero padding between them, the last slice ending the file."""
    step = 1 << align
    offsets, offset = [], step
    for _, data in slices:
        offsets.append(offset)
        offset = (offset + len(data) + step - 1) & ~(step - 1)
    head = struct.pack(">II", 0xCAFEBABE, len(slices)) + b"".join(
        struct.pack(">IIIII", cpu, sub, off, len(data), align)
        for ((cpu, sub), data), off in zip(slices, offsets, strict=True)
    )
    out = bytearray(head.ljust(step, b"\0"))
    for (_, data), off in zip(slices, offsets, strict=True):
        out += b"\0" * (off - len(out)) + data
    return bytes(out)
