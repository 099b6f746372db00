"""Helpers for the signature tests: fixture paths, PE field surgery, DER re-encoding."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from reprover.compare.signatures import der
from reprover.compare.signatures.pe_certtable import align8, pe_checksum, read_layout

FIXTURES = Path(__file__).parent / "fixtures" / "signature"


def fx(name: str) -> Path:
    return FIXTURES / name


def with_table(unsigned: bytes, table: bytes) -> bytes:
    """What a signer does: pad to 8, append `table`, set the directory entry and checksum."""
    layout = read_layout(unsigned, "unsigned")
    offset = align8(len(unsigned))
    out = bytearray(unsigned + b"\0" * (offset - len(unsigned)) + table)
    struct.pack_into("<II", out, layout.security_entry_offset, offset, len(table))
    struct.pack_into("<I", out, layout.checksum_offset, pe_checksum(out, layout.checksum_offset))
    return bytes(out)


def table_of(signed: bytes) -> bytes:
    layout = read_layout(signed, "signed")
    return signed[layout.table_offset :]


def unsigned_part(signed: bytes) -> bytes:
    layout = read_layout(signed, "signed")
    return signed[: layout.table_offset]


def entry(pkcs7: bytes, *, pad_inside: bool = True) -> bytes:
    """One WIN_CERTIFICATE holding `pkcs7`, padded to 8."""
    padded = align8(8 + len(pkcs7))
    length = padded if pad_inside else 8 + len(pkcs7)
    return struct.pack("<IHH", length, 0x0200, 0x0002) + pkcs7 + b"\0" * (padded - 8 - len(pkcs7))


def first_pkcs7(signed: bytes) -> bytes:
    table = table_of(signed)
    length = struct.unpack_from("<I", table)[0]
    tlv = der.read_tlv(table, 8, length, "pkcs7")
    return tlv.raw


def set_table_fields(data: bytes, *, offset: int | None = None, size: int | None = None) -> bytes:
    layout = read_layout(data, "f")
    out = bytearray(data)
    struct.pack_into(
        "<II",
        out,
        layout.security_entry_offset,
        layout.table_offset if offset is None else offset,
        layout.table_size if size is None else size,
    )
    return bytes(out)


def _encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def replace_in_der(blob: bytes, path: list[der.Tlv], new: bytes) -> bytes:
    """Replace the element `path[-1]` by `new`, re-encoding the lengths of `path[:-1]`."""
    target = path[-1]
    inner = blob[target.start : target.start] + new
    prefix_end, suffix_start = target.start, target.end
    for parent in reversed(path[:-1]):
        content = blob[parent.body : prefix_end] + inner + blob[suffix_start : parent.end]
        inner = bytes([blob[parent.start]]) + _encode_length(len(content)) + content
        prefix_end, suffix_start = parent.start, parent.end
    return blob[:prefix_end] + inner + blob[suffix_start:]


def find_path(root: der.Tlv, predicate: object) -> list[der.Tlv]:
    """Depth-first search for the first element satisfying `predicate`; return its ancestry."""
    assert callable(predicate)
    stack: list[list[der.Tlv]] = [[root]]
    while stack:
        path = stack.pop()
        node = path[-1]
        if predicate(node):
            return path
        if node.constructed:
            stack.extend([*path, child] for child in reversed(node.children("search")))
    raise AssertionError("element not found")


def osslsign(inp: Path, out: Path, key: str, *extra: str) -> None:
    subprocess.run(
        [
            "osslsigncode",
            "sign",
            "-certs",
            str(fx(f"{key}.pem")),
            "-key",
            str(fx(f"{key}.key")),
            "-h",
            "sha256",
            "-time",
            "1700000000",
            *extra,
            "-in",
            str(inp),
            "-out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def encode(tag: int, content: bytes) -> bytes:
    """One DER element."""
    return bytes([tag]) + _encode_length(len(content)) + content


def oid_der(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER element."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk, rest = [arc & 0x7F], arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return encode(0x06, bytes(body))
