"""A small, strict DER reader for the signatures reprover checks (PKCS#7, X.509 names, TSTInfo).

Owns: decoding tag-length-value triples from bytes with every bound checked, rejecting what DER
forbids (indefinite lengths, non-minimal lengths, high tag numbers, trailing bytes), decoding the
few primitive types signatures use (INTEGER, OBJECT IDENTIFIER, OCTET STRING, times), and a
bounded, non-recursive walk proving that a whole structure is well-formed DER.
Does not own: what the structures mean (see `pkcs7`) or any cryptography.

Every decoding error raises `DerError`, a `VerificationError`: a signature that does not decode
is a signature that does not verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from reprover.errors import VerificationError

UNIVERSAL = 0
CONTEXT = 2

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x10
SET = 0x11

MAX_DEPTH = 48
MAX_NODES = 200_000


class DerError(VerificationError):
    """The bytes are not the well-formed DER structure expected."""


@dataclass(frozen=True)
class Tlv:
    """One decoded element: where it lies in `buf` and what its identifier says.

    `start` is the offset of the identifier octet, `body` the offset of the contents, `end` the
    offset just past the contents, all within `buf`.
    """

    buf: bytes
    start: int
    body: int
    end: int
    cls: int
    constructed: bool
    number: int

    @property
    def content(self) -> bytes:
        """The contents octets (without identifier and length)."""
        return self.buf[self.body : self.end]

    @property
    def raw(self) -> bytes:
        """The whole encoding, identifier and length included."""
        return self.buf[self.start : self.end]

    def is_(self, cls: int, constructed: bool, number: int) -> bool:
        """Whether the identifier is exactly (class, constructed, number)."""
        return (self.cls, self.constructed, self.number) == (cls, constructed, number)

    def expect(self, cls: int, constructed: bool, number: int, what: str) -> Tlv:
        """Return self when the identifier matches.

        Raises:
            DerError: it does not.
        """
        if not self.is_(cls, constructed, number):
            raise DerError(
                f"{what}: expected tag class {cls} number {number}"
                f"{' (constructed)' if constructed else ''}, found class {self.cls} "
                f"number {self.number} at offset {self.start}"
            )
        return self

    def children(self, what: str) -> list[Tlv]:
        """Decode the contents of a constructed element as a sequence of elements.

        Raises:
            DerError: the element is primitive or its contents are not exactly a list of TLVs.
        """
        if not self.constructed:
            raise DerError(f"{what}: expected a constructed element at offset {self.start}")
        out: list[Tlv] = []
        pos = self.body
        while pos < self.end:
            child = read_tlv(self.buf, pos, self.end, what)
            out.append(child)
            pos = child.end
        return out


def read_tlv(buf: bytes, pos: int, limit: int, what: str) -> Tlv:
    """Decode one element starting at `pos` that must end at or before `limit`.

    Raises:
        DerError: truncated, indefinite or non-minimal length, or a high tag number.
    """
    if pos < 0 or limit > len(buf) or pos >= limit:
        raise DerError(f"{what}: truncated (no element at offset {pos})")
    start = pos
    ident = buf[pos]
    number = ident & 0x1F
    if number == 0x1F:
        raise DerError(f"{what}: high tag numbers are not used here (offset {pos})")
    pos += 1
    if pos >= limit:
        raise DerError(f"{what}: truncated length at offset {pos}")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError(f"{what}: indefinite length is BER, not DER (offset {pos - 1})")
    else:
        count = first & 0x7F
        if count > 4:
            raise DerError(f"{what}: length of {count} octets is too large (offset {pos - 1})")
        if pos + count > limit:
            raise DerError(f"{what}: truncated length at offset {pos}")
        raw_len = buf[pos : pos + count]
        if raw_len[0] == 0:
            raise DerError(f"{what}: non-minimal length encoding (offset {pos - 1})")
        length = int.from_bytes(raw_len, "big")
        if length < 0x80:
            raise DerError(f"{what}: long form used for a short length (offset {pos - 1})")
        pos += count
    end = pos + length
    if end > limit:
        raise DerError(
            f"{what}: element at offset {pos} claims {length} bytes but only {limit - pos} remain"
        )
    return Tlv(buf, start, pos, end, ident >> 6, bool(ident & 0x20), number)


def parse_one(buf: bytes, what: str) -> Tlv:
    """Decode `buf` as exactly one element with nothing after it.

    Raises:
        DerError: malformed, or bytes follow the element.
    """
    tlv = read_tlv(buf, 0, len(buf), what)
    if tlv.end != len(buf):
        raise DerError(f"{what}: {len(buf) - tlv.end} bytes follow the DER structure")
    return tlv


def check_well_formed(root: Tlv, what: str) -> None:
    """Walk every constructed element under `root` without recursion, bounded in depth and size.

    Raises:
        DerError: any element is malformed, too deep or there are too many.
    """
    stack: list[tuple[Tlv, int]] = [(root, 0)]
    nodes = 0
    while stack:
        tlv, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise DerError(f"{what}: more than {MAX_NODES} elements")
        if depth > MAX_DEPTH:
            raise DerError(f"{what}: nested deeper than {MAX_DEPTH} levels")
        if tlv.constructed:
            stack.extend((child, depth + 1) for child in tlv.children(what))


def sequence(tlv: Tlv, what: str, *, minimum: int = 0, maximum: int | None = None) -> list[Tlv]:
    """The children of a SEQUENCE, with a count check.

    Raises:
        DerError: not a SEQUENCE, or too few/many children.
    """
    items = tlv.expect(UNIVERSAL, True, SEQUENCE, what).children(what)
    if len(items) < minimum or (maximum is not None and len(items) > maximum):
        raise DerError(f"{what}: unexpected number of fields ({len(items)})")
    return items


def explicit(tlv: Tlv, number: int, what: str) -> Tlv:
    """The single element inside a constructed context tag `[number] EXPLICIT`.

    Raises:
        DerError: another tag, or not exactly one element inside.
    """
    items = tlv.expect(CONTEXT, True, number, what).children(what)
    if len(items) != 1:
        raise DerError(f"{what}: [{number}] EXPLICIT holds {len(items)} elements, not one")
    return items[0]


def integer(tlv: Tlv, what: str) -> int:
    """Decode an INTEGER (minimal two's complement).

    Raises:
        DerError: not an INTEGER or not minimally encoded.
    """
    data = tlv.expect(UNIVERSAL, False, INTEGER, what).content
    if not data:
        raise DerError(f"{what}: empty INTEGER")
    if len(data) > 1 and (
        (data[0] == 0 and data[1] < 0x80) or (data[0] == 0xFF and data[1] >= 0x80)
    ):
        raise DerError(f"{what}: non-minimal INTEGER")
    return int.from_bytes(data, "big", signed=True)


def oid(tlv: Tlv, what: str) -> str:
    """Decode an OBJECT IDENTIFIER to dotted form.

    Raises:
        DerError: not an OID or malformed.
    """
    data = tlv.expect(UNIVERSAL, False, OID, what).content
    if not data or data[-1] & 0x80:
        raise DerError(f"{what}: malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    fresh = True
    for byte in data:
        if fresh and byte == 0x80:
            raise DerError(f"{what}: non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (byte & 0x7F)
        fresh = not byte & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def octets(tlv: Tlv, what: str) -> bytes:
    """The contents of a primitive OCTET STRING.

    Raises:
        DerError: not a primitive OCTET STRING.
    """
    return tlv.expect(UNIVERSAL, False, OCTET_STRING, what).content


def time(tlv: Tlv, what: str) -> datetime:
    """Decode a UTCTime or GeneralizedTime in the DER profile (UTC, `Z`), fractions allowed.

    Raises:
        DerError: another type, or not in the DER profile.
    """
    if tlv.constructed or tlv.cls != UNIVERSAL or tlv.number not in (UTC_TIME, GENERALIZED_TIME):
        raise DerError(f"{what}: expected a time")
    text = tlv.content.decode("ascii", "replace")
    if not text.endswith("Z"):
        raise DerError(f"{what}: time {text!r} is not in UTC")
    try:
        if tlv.number == UTC_TIME:
            parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
        elif "." in text:
            parsed = datetime.strptime(text, "%Y%m%d%H%M%S.%fZ")
        else:
            parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
    except ValueError as exc:
        raise DerError(f"{what}: malformed time {text!r}") from exc
    return parsed.replace(tzinfo=timezone.utc)
