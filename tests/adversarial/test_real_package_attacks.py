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
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from archive_support import artifact, regions, report
from package_variants import FIXTURES, repack_times, replace_in_deb, strip_authenticode

ARCHIVE_RULES = [f"--allow=archive.{r}" for r in ("mtime", "order", "owner", "mode", "compression")]
BZIP2 = "bzip2_1.0.8-5+b1_amd64.deb"
CLI = "libcommons-cli-java_1.5.0-1_all.deb"
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


SIX_SDIST = "six-1.16.0.tar.gz"


def test_gzip_os_byte_changed_beside_an_allowed_time_change(tmp_path: Path, run_cli) -> None:
    """The real sdist repacked with other times and another gzip OS byte (1 byte the vendor
    chooses): the time is archive.mtime, the OS byte a compressor setting (archive.compression),
    never a consequence of the changed tar (it passed under archive.mtime alone)."""
    (tmp_path / "b").mkdir()
    rebuilt = repack_times(FIXTURES / SIX_SDIST, tmp_path / "b" / SIX_SDIST, tmp_path)
    data = bytearray(rebuilt.read_bytes())
    assert data[9] == 0xFF  # Python's gzip, as setuptools wrote it
    data[9] = 0x03
    rebuilt.write_bytes(bytes(data))
    code, rep = report(run_cli, "diff", FIXTURES / SIX_SDIST, rebuilt, "--allow=archive.mtime")
    assert code == 1
    os_byte = regions(artifact(rep, SIX_SDIST))["gzip.header.compression.os"]
    assert os_byte["cause"] == "root" and not os_byte["allowed"]
    code, rep = report(run_cli, "diff", FIXTURES / SIX_SDIST, rebuilt, "--allow=archive.mtime",
                       "--allow=archive.compression")  # fmt: skip
    assert code == 0


def test_zip_method_changed_for_a_jar_that_differs_only_in_times(tmp_path: Path,
                                                                 run_cli) -> None:  # fmt: skip
    """A jar (Debian's commons-cli) stored, beside the same jar rebuilt at another time and
    deflated: the method is archive.compression even though the jar's bytes differ."""
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(FIXTURES / CLI)], check=True,
                          capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(fsys)) as t:
        member = t.extractfile("./usr/share/java/commons-cli.jar")
        assert member is not None
        (tmp_path / "commons-cli.jar").write_bytes(member.read())
    later = repack_times(tmp_path / "commons-cli.jar", tmp_path / "later.jar", tmp_path)
    bundles = []
    for side, jar, method in (("a", tmp_path / "commons-cli.jar", zipfile.ZIP_STORED),
                              ("b", later, zipfile.ZIP_DEFLATED)):  # fmt: skip
        (tmp_path / side).mkdir()
        bundle = tmp_path / side / "bundle.zip"
        with zipfile.ZipFile(bundle, "w") as z:
            info = zipfile.ZipInfo("lib/commons-cli.jar", (2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            z.writestr(info, jar.read_bytes())
        bundles.append(bundle)
    code, rep = report(run_cli, "diff", *bundles, "--allow=archive.mtime")
    assert code == 1
    method = regions(artifact(rep, "bundle.zip"))[
        "zip.entry[lib/commons-cli.jar].compression.method"
    ]
    assert method["cause"] == "root" and not method["allowed"]
    assert artifact(rep, "bundle.zip!lib/commons-cli.jar")["verdict"] == "equivalent"
    code, _ = report(
        run_cli, "diff", *bundles, "--allow=archive.mtime", "--allow=archive.compression"
    )
    assert code == 0
