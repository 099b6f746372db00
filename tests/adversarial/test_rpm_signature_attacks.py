"""Attacks on the RPM signature proof: a signed RPM that is not its rebuild plus signatures.

Each is a vendor trying to make `reprover diff --allow signature --trusted signer.asc` call an
RPM `signature-only` when it carries something else. Packages are built by rpmbuild and signed
by rpmsign with a fresh key (`rpm_support`); forged signature headers are laid out exactly as
rpm lays them out, so each test changes one thing. Where the driver already refuses (a
difference no signature explains), the prover is also called on its own: it must refuse by
itself, with its reason.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import pytest

from archive_support import artifact, regions, report
from reprover.compare.archives.rpmsig import prove_rpm_signature_only
from reprover.errors import VerificationError
from rpm_support import (
    Rpms,
    build_rpm,
    layout,
    main_header,
    read_signature_header,
    resign,
    rpmkeys_check,
    rpms,
    write_rpm,
)

__all__ = ["rpms"]
RSA = 268


def _diff(run_cli: Any, released: Path, rpms: Rpms) -> tuple[int, Any]:
    code, rep = report(run_cli, "diff", released, rpms.unsigned, "--allow", "signature",
                       "--trusted", rpms.signer.public)  # fmt: skip
    assert artifact(rep, "hello.rpm")["verdict"] != "signature-only"
    return code, artifact(rep, "hello.rpm")


def _refused(run_cli: Any, released: Path, rpms: Rpms, reason: str) -> None:
    """The CLI fails, and the note says the proof was refused for `reason`."""
    code, outer = _diff(run_cli, released, rpms)
    assert code == 1
    notes = "\n".join(outer["notes"])
    assert "signature-only refused: " in notes and reason in notes, notes


def _prover_refuses(released: Path, rpms: Rpms, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        prove_rpm_signature_only((released, rpms.unsigned), (rpms.signer.public,))


def _tags(path: Path) -> dict[int, bytes]:
    return {t[0]: t[3] for t in read_signature_header(path)[1]}


def test_payload_changed_then_resigned(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    """The vendor changes a byte of the binary in the payload and signs the result: the
    header-only signature stays valid (the header is untouched) and a new header+payload one
    covers the new payload. (rpmsign refuses to sign it, the payload digest being wrong: the
    vendor signs with gpg directly.)"""
    lead, tags, _, rest = read_signature_header(rpms.unsigned)
    head = main_header(rest)
    cpio = bytearray(gzip.decompress(rest[len(head) :]))
    at = cpio.index(b"\x7fELF") + 0x200
    cpio[at] ^= 0xFF
    forged = head + gzip.compress(bytes(cpio), mtime=0)
    tampered = write_rpm(tmp_path / "tampered" / "hello.rpm", lead, layout(tags, None), forged)
    payload_sig = rpms.signer.detached(forged)
    released = resign(tampered, tmp_path / "rel" / "hello.rpm",
                      {RSA: _tags(rpms.signed)[RSA], 1002: payload_sig})  # fmt: skip
    code, outer = _diff(run_cli, released, rpms)
    assert code == 1
    assert "cpio.member[./usr/bin/hello].data" in regions(outer)
    _prover_refuses(released, rpms, "the payload differs from the rebuild's")


def test_signature_by_an_unpinned_key(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    released = rpms.other.rpmsign(rpms.unsigned, tmp_path / "rel" / "hello.rpm")
    assert ": OK" in rpmkeys_check(released, rpms.other.public, tmp_path / "db")  # valid for rpm
    _refused(run_cli, released, rpms, "the signature was made by a key that is not pinned")


def test_signature_tag_moved_to_the_main_header(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    lead, _, size, rest = read_signature_header(rpms.signed)
    sig = _tags(rpms.signed)[RSA]
    head = main_header(rest)
    count, store = struct.unpack(">II", head[8:16])
    index = [head[16 + 16 * i : 32 + 16 * i] for i in range(count)]
    index.append(struct.pack(">IIII", RSA, 7, store, len(sig)))
    index.sort(key=lambda e: struct.unpack(">I", e[:4])[0])  # the region tag, 63, stays first
    moved = (head[:8] + struct.pack(">II", count + 1, store + len(sig)) + b"".join(index)
             + head[16 + 16 * count :] + sig)  # fmt: skip
    unsigned_tags = read_signature_header(rpms.unsigned)[1]
    released = write_rpm(tmp_path / "rel" / "hello.rpm", lead, layout(unsigned_tags, size),
                         moved + rest[len(head) :])  # fmt: skip
    code, outer = _diff(run_cli, released, rpms)
    assert code == 1
    assert regions(outer)["rpm.header.tag[268]"]["allowed"] is False
    _prover_refuses(released, rpms, "the main header differs from the rebuild's")


@pytest.mark.parametrize(
    ("tag", "region"),
    [(274, "rpm.signature.tag[274]"), (271, "rpm.signature.longarchivesize.digest")],
    ids=["unknown tag", "a digest-named tag (a consequence to the driver)"],
)
def test_extra_non_signature_tag_in_the_signature_header(
    rpms: Rpms, run_cli, tmp_path: Path, tag: int, region: str
) -> None:
    released = resign(rpms.signed, tmp_path / "rel" / "hello.rpm", {tag: b"hidden payload!!"})
    code, outer = _diff(run_cli, released, rpms)
    assert code == 1
    assert region in regions(outer)
    _prover_refuses(released, rpms, f"holds tag {tag}, which the rebuild's has not")


def test_duplicate_signature_tag(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    lead, tags, size, rest = read_signature_header(rpms.signed)
    second = rpms.other.detached(main_header(rest))
    released = write_rpm(tmp_path / "rel" / "hello.rpm", lead,
                         layout([*tags, (RSA, 7, len(second), second)], size), rest)  # fmt: skip
    _refused(run_cli, released, rpms, "the released signature header holds tag 268 twice")


def test_signature_of_another_package_transplanted(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    """A valid signature by the pinned key, over another package's header."""
    other = build_rpm(tmp_path, tmp_path / "other" / "hello.rpm", b"\x7fELF other", 1_700_000_001)
    signed_other = rpms.signer.rpmsign(other, tmp_path / "other-signed" / "hello.rpm")
    released = resign(rpms.unsigned, tmp_path / "rel" / "hello.rpm",
                      {RSA: _tags(signed_other)[RSA]})  # fmt: skip
    assert "BAD" in rpmkeys_check(released, rpms.signer.public, tmp_path / "db")
    _refused(run_cli, released, rpms, "the signature does not verify")


def test_reserved_space_not_shrunk(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    """The signature is added but the reserved space keeps its size: the header grows."""
    released = resign(rpms.unsigned, tmp_path / "rel" / "hello.rpm",
                      {RSA: _tags(rpms.signed)[RSA]}, size=None)  # fmt: skip
    _refused(run_cli, released, rpms, "the reserved space did not shrink by exactly")


def test_reserved_space_shrunk_too_far_leaves_slack(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    """The reserved space shrinks 8 bytes more than the signature needs; the header keeps its
    size with 8 zero bytes of slack before the region trailer (no hidden non-zero byte)."""
    lead, tags, size, rest = read_signature_header(rpms.signed)
    header = layout(tags, size - 8)
    count, store = struct.unpack(">II", header[8:16])
    base = 16 + 16 * count
    region = struct.unpack(">IIII", header[16:32])
    index = struct.pack(">IIII", region[0], region[1], region[2] + 8, region[3]) + header[32:base]
    slack = (header[:8] + struct.pack(">II", count, store + 8) + index
             + header[base:-16] + bytes(8) + header[-16:])  # fmt: skip
    assert len(slack) == size
    released = write_rpm(tmp_path / "rel" / "hello.rpm", lead, slack, rest)
    _refused(run_cli, released, rpms, "its store is not laid out as rpm writes it")


def test_garbage_after_the_signature_packet(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    sig = _tags(rpms.signed)[RSA]
    released = resign(rpms.signed, tmp_path / "rel" / "hello.rpm", {RSA: sig + b"\0hidden"})
    _refused(run_cli, released, rpms, "7 byte(s) after the signature packet")


def _with_unhashed_notation(sig: bytes, value: bytes) -> bytes:
    """`sig` (old-format, two-byte length) with a notation subpacket in its unhashed area."""
    assert sig[0] == 0x89
    body = sig[3:]
    hlen = struct.unpack(">H", body[4:6])[0]
    at = 6 + hlen
    ulen = struct.unpack(">H", body[at : at + 2])[0]
    name = b"x@example.com"
    data = b"\0\0\0\0" + struct.pack(">HH", len(name), len(value)) + name + value
    sub = bytes([len(data) + 1, 20]) + data
    body = body[:at] + struct.pack(">H", ulen + len(sub)) + body[at + 2 : at + 2 + ulen] + sub + (
        body[at + 2 + ulen :])  # fmt: skip
    return b"\x89" + struct.pack(">H", len(body)) + body


def test_extra_unhashed_subpacket_in_the_signature(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    """Unhashed subpackets are covered by no signature: rpm (and gpgv) still accept the
    signature, so they would carry 40 bytes of the vendor's choosing."""
    sig = _with_unhashed_notation(_tags(rpms.signed)[RSA], b"A" * 40)
    released = resign(rpms.signed, tmp_path / "rel" / "hello.rpm", {RSA: sig})
    assert ": OK" in rpmkeys_check(released, rpms.signer.public, tmp_path / "db")
    _refused(run_cli, released, rpms, "unhashed subpacket of type 20")


@pytest.mark.parametrize(
    ("options", "reason"),
    [(("--textmode",), "not a binary-document signature"),
     (("--digest-algo", "SHA1"), "SHA1 digest (too weak")],
    ids=["text mode", "SHA-1"],
)  # fmt: skip
def test_signature_of_a_kind_that_covers_other_bytes(
    rpms: Rpms, run_cli, tmp_path: Path, options: tuple[str, ...], reason: str
) -> None:
    """A text-mode signature hashes the header with its line ends rewritten; a SHA-1 one is
    open to chosen-prefix collisions. Both verify in gpgv; both are refused."""
    rest = read_signature_header(rpms.signed)[3]
    sig = rpms.signer.detached(main_header(rest), *options)
    released = resign(rpms.signed, tmp_path / "rel" / "hello.rpm", {RSA: sig})
    _refused(run_cli, released, rpms, reason)
