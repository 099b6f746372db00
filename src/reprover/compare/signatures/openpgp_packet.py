"""The framing of one OpenPGP signature packet, read strictly (RFC 4880 section 5.2).

Owns: `read_signature`: the bytes are exactly one v3 or v4 signature packet, nothing before or
after it, over binary data (class 0x00), with a SHA-2 digest, an RSA, DSA, ECDSA or EdDSA
value that ends the packet, and only the subpackets a signing tool writes: in the hashed
area creation time, expiry, issuer, issuer fingerprint and signer's user id; in the unhashed
area (which no signature covers) the issuer key id alone, each at most once.
Does not own: any cryptography. Whether the signature verifies, and by which key, is gpgv's
job (`openpgp`); gpgv accepts unhashed subpackets, trailing packets and text-mode signatures,
all of which would carry bytes no signature covers, so they are refused here first. Hand
written because no installed library exposes the raw subpacket areas; it checks framing only.
"""

from __future__ import annotations

from dataclasses import dataclass

from reprover.errors import VerificationError

SIGNATURE_PACKET = 2
HASHES = {8: "SHA256", 9: "SHA384", 10: "SHA512", 11: "SHA224"}
WEAK_HASHES = {1: "MD5", 2: "SHA1", 3: "RIPEMD160"}
VALUES = {1: ("RSA", 1), 3: ("RSA", 1), 17: ("DSA", 2), 19: ("ECDSA", 2), 22: ("EdDSA", 2)}
HASHED_OK = {2: "creation time", 3: "expiry", 16: "issuer", 28: "signer's user id",
             33: "issuer fingerprint"}  # fmt: skip
UNHASHED_OK = {16: "issuer"}


@dataclass(frozen=True)
class SignaturePacket:
    """What the framing of one signature packet says (nothing here is verified yet)."""

    version: int
    algorithm: str
    hash: str
    issuer: str | None  # key id (16 hex digits) from the issuer subpacket or the v3 field
    fingerprint: str | None  # from the issuer fingerprint subpacket (v4)


def _fail(what: str, why: str) -> VerificationError:
    return VerificationError(f"{what}: {why}")


def _packet_body(data: bytes, what: str) -> bytes:
    """The body of the one packet `data` holds.

    Raises:
        VerificationError: not exactly one signature packet of definite length.
    """
    if not data or not data[0] & 0x80:
        raise _fail(what, "not an OpenPGP packet")
    first = data[0]
    if first & 0x40:  # new format
        tag, pos = first & 0x3F, 1
        if len(data) < 2:
            raise _fail(what, "truncated packet header")
        o1 = data[1]
        if o1 < 192:
            length, pos = o1, 2
        elif o1 < 224 and len(data) >= 3:
            length, pos = ((o1 - 192) << 8) + data[2] + 192, 3
        elif o1 == 255 and len(data) >= 6:
            length, pos = int.from_bytes(data[2:6], "big"), 6
        else:
            raise _fail(what, "partial or truncated packet length (refused)")
    else:
        tag, kind = (first >> 2) & 0x0F, first & 3
        if kind == 3:
            raise _fail(what, "packet of indeterminate length (refused)")
        width = 1 << kind
        length, pos = int.from_bytes(data[1 : 1 + width], "big"), 1 + width
    if tag != SIGNATURE_PACKET:
        raise _fail(what, f"packet type {tag}, not a signature")
    if pos + length != len(data):
        extra = len(data) - pos - length
        raise _fail(
            what,
            f"{extra} byte(s) after the signature packet (unsigned data, refused)"
            if extra > 0
            else "signature packet truncated",
        )
    return data[pos:]


def _subpackets(area: bytes, allowed: dict[int, str], which: str, what: str) -> dict[int, bytes]:
    """The subpackets of one area by type, each allowed and at most once.

    Raises:
        VerificationError: malformed, unexpected or repeated subpackets.
    """
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(area):
        o1 = area[pos]
        if o1 < 192:
            length, pos = o1, pos + 1
        elif o1 < 255:
            if pos + 1 >= len(area):
                raise _fail(what, f"truncated {which} subpacket")
            length, pos = ((o1 - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            length, pos = int.from_bytes(area[pos + 1 : pos + 5], "big"), pos + 5
        if length < 1 or pos + length > len(area):
            raise _fail(what, f"malformed {which} subpacket")
        kind = area[pos] & 0x7F
        if kind not in allowed:
            accepted = ", ".join(allowed.values())
            raise _fail(what, f"{which} subpacket of type {kind} (only {accepted} are accepted: "
                        "anything else is data beside the signature)")  # fmt: skip
        if kind in out:
            raise _fail(what, f"repeated {which} subpacket {allowed[kind]}")
        out[kind] = area[pos + 1 : pos + length]
        pos += length
    return out


def _values(body: bytes, at: int, algorithm: int, what: str) -> str:
    """Check the signature value MPIs end the packet; return the algorithm's name.

    Raises:
        VerificationError: an unsupported algorithm, or bytes before or after the value.
    """
    if algorithm not in VALUES:
        raise _fail(what, f"public-key algorithm {algorithm} is not supported")
    name, count = VALUES[algorithm]
    pos = at + 2  # the left 16 bits of the digest
    for _ in range(count):
        if pos + 2 > len(body):
            raise _fail(what, "signature value truncated")
        bits = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2 + (bits + 7) // 8
    if pos != len(body):
        raise _fail(what, "signature value truncated" if pos > len(body) else
                    f"{len(body) - pos} byte(s) after the signature value (refused)")  # fmt: skip
    return name


def read_signature(data: bytes, what: str) -> SignaturePacket:
    """Read `data` as exactly one OpenPGP signature over binary data, strictly.

    Raises:
        VerificationError: anything but one well-formed v3/v4 binary signature packet with a
            SHA-2 digest and only the expected subpackets; the message says what.
    """
    body = _packet_body(data, what)
    if len(body) < 19:
        raise _fail(what, "signature packet too short")
    version = body[0]
    if version == 3:
        if body[1] != 5:
            raise _fail(what, "malformed v3 signature")
        sigclass, pk, digest, end = body[2], body[15], body[16], 17
        issuer: str | None = body[7:15].hex().upper()
        fingerprint = None
    elif version == 4:
        sigclass, pk, digest = body[1], body[2], body[3]
        hlen = int.from_bytes(body[4:6], "big")
        hashed = _subpackets(body[6 : 6 + hlen], HASHED_OK, "hashed", what)
        at = 6 + hlen
        ulen = int.from_bytes(body[at : at + 2], "big")
        unhashed = _subpackets(body[at + 2 : at + 2 + ulen], UNHASHED_OK, "unhashed", what)
        end = at + 2 + ulen
        if 2 not in hashed:
            raise _fail(what, "no signature creation time in the hashed area")
        keyids = {hashed[16].hex().upper()} if 16 in hashed else set()
        keyids |= {unhashed[16].hex().upper()} if 16 in unhashed else set()
        if len(keyids) > 1:
            raise _fail(what, "two different issuer key ids")
        issuer = keyids.pop() if keyids else None
        fpr = hashed.get(33)
        fingerprint = fpr[1:].hex().upper() if fpr else None
    else:
        raise _fail(what, f"signature version {version} is not supported")
    if sigclass != 0:
        raise _fail(what, f"signature class 0x{sigclass:02x}, not a binary-document signature "
                    "(a text signature covers other bytes than the file's)")  # fmt: skip
    if digest in WEAK_HASHES:
        raise _fail(what, f"{WEAK_HASHES[digest]} digest (too weak: refused)")
    if digest not in HASHES:
        raise _fail(what, f"digest algorithm {digest} is not supported")
    algorithm = _values(body, end, pk, what)
    return SignaturePacket(version, algorithm, HASHES[digest], issuer, fingerprint)
