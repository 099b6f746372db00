"""Attacks on real packages (issue 15): a vendor's own .deb and signed PE, tampered.

Each runs through the real CLI against the package as Debian published it
(tests/fixtures/real-packages), every archive rule allowed where that matters, so only the
attack can make it fail.
"""

from __future__ import annotations

import lzma
import struct
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from archive_support import artifact, regions, report
from package_variants import FIXTURES, replace_in_deb, strip_authenticode

ARCHIVE_RULES = [f"--allow=archive.{r}" for r in ("mtime", "order", "owner", "mode", "compression")]
BZIP2 = "bzip2_1.0.8-5+b1_amd64.deb"
SHIM = "shim-signed_1.51~1+deb12u1+16.1-2~deb12u1_amd64.deb"
SHIM_EFI = "./usr/lib/shim/shimx64.efi.signed"


def _ar_member(deb: bytes, index: int) -> tuple[int, int, int]:
    """(header offset, data offset, size) of the `index`th member of an ar archive."""
    pos = 8
    for _ in range(index):
        size = int(deb[pos + 48 : pos + 58])
        pos += 60 + size + (size & 1)
    return pos, pos + 60, int(deb[pos + 48 : pos + 58])


def test_a_hardlink_in_a_real_deb_pointed_at_another_file(tmp_path: Path, run_cli) -> None:
    """bzip2's ./bin/bzip2 is a hard link to ./bin/bunzip2: retarget it at ./bin/bzexe."""
    deb = (FIXTURES / BZIP2).read_bytes()
    header, start, size = _ar_member(deb, 2)
    tar = bytearray(lzma.decompress(deb[start : start + size]))
    with tarfile.open(fileobj=BytesIO(bytes(tar))) as t:
        link = t.getmember("./bin/bzip2")
    assert link.islnk() and link.linkname == "./bin/bunzip2"
    at = link.offset
    tar[at + 157 : at + 257] = b"./bin/bzexe".ljust(100, b"\0")
    tar[at + 148 : at + 156] = b" " * 8
    tar[at + 148 : at + 156] = b"%06o\0 " % sum(tar[at : at + 512])
    data = lzma.compress(bytes(tar))
    head = bytearray(deb[header:start])
    head[48:58] = str(len(data)).ljust(10).encode()
    (tmp_path / "b").mkdir()
    tampered = tmp_path / "b" / BZIP2
    tampered.write_bytes(deb[:header] + head + data + b"\n" * (len(data) & 1))
    code, rep = report(run_cli, "diff", FIXTURES / BZIP2, tampered, *ARCHIVE_RULES)
    assert code == 1
    target = regions(artifact(rep, f"{BZIP2}!data.tar.xz"))["tar.member[./bin/bzip2].target"]
    assert not target["allowed"] and "./bin/bzexe" in target["detail"]


@pytest.mark.slow  # a 1 MB PE parsed on both sides, two dpkg-deb builds
def test_a_third_certificate_entry_beside_microsofts_two(tmp_path: Path, run_cli) -> None:
    """shim carries two WIN_CERTIFICATE entries; a third one smuggles a payload."""
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(FIXTURES / SHIM)], check=True,
                          capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(fsys)) as t:
        member = t.extractfile(SHIM_EFI)
        assert member is not None
        signed = bytearray(member.read())
    security = struct.unpack_from("<I", signed, 0x3C)[0] + 24 + 112 + 32
    offset, size = struct.unpack_from("<II", signed, security)
    payload = b"config: https://attacker.example/c2\n".ljust(1016, b"\0")
    entry = struct.pack("<IHH", 8 + len(payload), 0x200, 2) + payload
    struct.pack_into("<II", signed, security, offset, size + len(entry))
    released = replace_in_deb(FIXTURES / SHIM, tmp_path / "rel" / SHIM, tmp_path / "r",
                              SHIM_EFI, bytes(signed) + entry)  # fmt: skip
    unsigned = replace_in_deb(FIXTURES / SHIM, tmp_path / "reb" / SHIM, tmp_path / "u",
                              SHIM_EFI, strip_authenticode(bytes(signed)))  # fmt: skip
    code, rep = report(run_cli, "sign-check", unsigned, released)
    assert code == 1
    assert artifact(rep, f"{SHIM}!data.tar.xz!{SHIM_EFI}")["verdict"] == "different"
    assert any("WIN_CERTIFICATE #2" in n for a in rep["artifacts"] for n in a["notes"]) or any(
        "WIN_CERTIFICATE #2" in str(c) for c in rep["checks"]
    )
