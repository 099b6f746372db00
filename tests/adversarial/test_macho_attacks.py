"""Issue 12 item 4 and issue 13 item 2: a Mach-O signer who changes what the signature asserts,
or hides bytes in a universal file, fails through the real CLI (exit 1) with the reason named."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reprover.cli import main
from reprover.compare.signatures import der
from signature_support import FIXTURES, encode, fx, oid_der, replace_in_der

sys.path.insert(0, str(FIXTURES.parent.parent))
import macho_sign

LINKED = fx("macho-adhoc").read_bytes()
UNIVERSAL = fx("macho-universal-codesign").read_bytes()


def _fat_entry(data: bytes, index: int) -> tuple[int, int]:
    return struct.unpack_from(">II", data, 8 + 20 * index + 8)


def hardened_runtime() -> bytes:
    return macho_sign.sign(LINKED, identifier="engine", flags=macho_sign.ADHOC | 0x10000)


def restrict() -> bytes:
    return macho_sign.sign(LINKED, identifier="engine", flags=macho_sign.ADHOC | 0x800)


def identifier() -> bytes:
    return macho_sign.sign(LINKED, identifier="com.vendor.other")


def entitlement_added() -> bytes:
    plist = fx("entitlements.plist").read_bytes()
    return macho_sign.sign(LINKED, identifier="engine", entitlements=plist)


def bytes_after_signature_in_a_slice() -> bytes:
    """The first slice grows over the zero padding that follows it, with a payload there."""
    out = bytearray(UNIVERSAL)
    offset, size = _fat_entry(UNIVERSAL, 0)
    out[offset + size : offset + size + 8] = b"PAYLOAD!"
    struct.pack_into(">I", out, 8 + 8 + 4, size + 8)
    return bytes(out)


def overlapping_slices() -> bytes:
    out = bytearray(UNIVERSAL)
    offset, _ = _fat_entry(UNIVERSAL, 0)
    struct.pack_into(">I", out, 8 + 20 + 8, offset)  # slice 1 starts where slice 0 does
    return bytes(out)


def payload_between_slices() -> bytes:
    out = bytearray(UNIVERSAL)
    offset, size = _fat_entry(UNIVERSAL, 0)
    out[offset + size + 16 : offset + size + 24] = b"PAYLOAD!"
    return bytes(out)


def _cms_with_payload(code_directory: bytes) -> bytes:
    """A Developer ID style CMS (openssl cms, the test leaf) with an unknown unsigned attribute
    carrying 4 KiB."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cd").write_bytes(code_directory)
        subprocess.run(
            ["openssl", "cms", "-sign", "-binary", "-nosmimecap", "-md", "sha256",
             "-in", f"{tmp}/cd", "-signer", str(fx("leaf.pem")), "-inkey", str(fx("leaf.key")),
             "-outform", "DER", "-out", f"{tmp}/sig"],
            check=True, capture_output=True,
        )  # fmt: skip
        blob = (Path(tmp) / "sig").read_bytes()
    root = der.parse_one(blob, "cms")
    content = root.children("cms")[1]
    signed_data = der.explicit(content, 0, "cms")
    infos = signed_data.children("cms")[-1]
    (info,) = infos.children("cms")
    attr = encode(0x30, oid_der("1.2.3.4.5") + encode(0x31, encode(0x04, b"EVIL" * 1024)))
    new_info = encode(0x30, info.content + encode(0xA1, attr))
    return replace_in_der(blob, [root, content, signed_data, infos, info], new_info)


def cms_unknown_unsigned_attribute() -> bytes:
    return macho_sign.sign(
        LINKED, identifier="engine", flags=macho_sign.RUNTIME, cms_sign=_cms_with_payload
    )


ATTACKS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "unknown unsigned attribute in a Developer ID CMS": (
        cms_unknown_unsigned_attribute,
        "macho-adhoc",
        r"CMS signature: unsigned attribute 1\.2\.3\.4\.5 at file offset 0x[0-9a-f]+ is not",
    ),
    "hardened runtime flag added": (hardened_runtime, "macho-adhoc", r"flags 0x10002.*macho_flags"),
    "restrict flag added": (restrict, "macho-adhoc", r"flags 0x802.*macho_flags"),
    "identifier changed": (identifier, "macho-adhoc", "identifier 'com.vendor.other'"),
    "entitlement added by the signer": (
        entitlement_added,
        "macho-adhoc",
        r"entitlements \['com.apple.security.cs.allow-jit'\] are not the rebuild's none",
    ),
    "bytes after the signature in a slice of a fat file": (
        bytes_after_signature_in_a_slice,
        "macho-universal-linker",
        "does not end at end of file",
    ),
    "fat file whose slices overlap": (
        overlapping_slices,
        "macho-universal-linker",
        "overlaps the fat header or the previous slice",
    ),
    "payload between the slices of a fat file": (
        payload_between_slices,
        "macho-universal-linker",
        "non-zero bytes between",
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_macho_signature_attack_fails(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, rebuilt, reason = ATTACKS[name]
    bad = tmp_path / "engine"
    bad.write_bytes(make())
    assert main(["sign-check", str(fx(rebuilt)), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "[FAIL] macho-code-signature" in captured.out
    assert re.search(reason, captured.err), captured.err
    assert main(["diff", str(bad), str(fx(rebuilt)), "--allow", "signature", "-q"]) == 1
