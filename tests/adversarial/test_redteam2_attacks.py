"""Red team, second round: a hostile vendor's archives and installers against the real CLI.

Each test is one attempt to make `reprover diff` (or `sign-check`) pass, or report fewer
differences than there are, while the released archive carries bytes the rebuilt one does not.
Fixtures come from the real tools (GNU tar, gzip, xz, zstd, zip, gcab, osslsigncode) and are
then changed the way a vendor would. Every archive rule is allowed unless the test says
otherwise, so that only the attack itself can make a test fail. An attempt reprover already
stopped stays here as a passing test: it guards the class.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from archive_support import artifact, regions, report

RULES = ("archive.mtime", "archive.order", "archive.owner", "archive.mode", "archive.compression")
ALLOW = [x for r in RULES for x in ("--allow", r)]


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def pair(tmp_path: Path, released: bytes, rebuilt: bytes, name: str) -> tuple[Path, Path]:
    (tmp_path / "rel").mkdir(exist_ok=True)
    (tmp_path / "reb").mkdir(exist_ok=True)
    a, b = tmp_path / "rel" / name, tmp_path / "reb" / name
    a.write_bytes(released)
    b.write_bytes(rebuilt)
    return a, b


def gnu_tar(tmp_path: Path, files: dict[str, bytes], *args: str) -> bytes:
    """A tar of `files` written by GNU tar (root owner, time 0 unless `args` say otherwise)."""
    src = tmp_path / "src"
    shutil.rmtree(src, ignore_errors=True)
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    out = tmp_path / "out.tar"
    subprocess.run(
        ["tar", "--owner=root", "--group=root", "--mtime=@0", "--sort=name", *args,
         "-C", str(src), "-cf", str(out), *files],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def patch_header(tar: bytes, at: int, value: bytes, block: int = 0) -> bytes:
    """`tar` with `value` written at `at` in the header block at `block`, checksum made right."""
    b = bytearray(tar)
    b[block + at : block + at + len(value)] = value
    b[block + 148 : block + 156] = b" " * 8
    b[block + 148 : block + 156] = b"%06o\0 " % sum(b[block : block + 512])
    return bytes(b)


def tar_listing(path: Path) -> str:
    return subprocess.run(["tar", "tvf", str(path)], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


# --- owner names that hold more than a name -------------------------------------------------


def test_payload_after_the_nul_of_a_ustar_owner_name(tmp_path: Path, run_cli) -> None:
    """27 bytes after the NUL of `uname` and of `gname` (GNU tar reads `root` on both sides),
    under `archive.owner`: bytes no tar reads are hidden, not an owner (was `equivalent`)."""
    need("tar")
    rebuilt = gnu_tar(tmp_path, {"bin/tool": b"#!/bin/sh\necho ok\n"}, "--format=ustar")
    released = patch_header(rebuilt, 265, b"root\0" + b"P" * 27)
    released = patch_header(released, 297, b"root\0" + b"Q" * 27)
    a, b = pair(tmp_path, released, rebuilt, "app.tar")
    assert tar_listing(a) == tar_listing(b)  # tar sees the same owner on both sides
    code, rep = report(run_cli, "diff", a, b, *ALLOW)
    assert code == 1, rep
    found = regions(artifact(rep, "app.tar"))
    assert found["tar.member[bin/tool].uname"]["kind"] == "hidden"
    assert found["tar.member[bin/tool].gname"]["kind"] == "hidden"
    assert not found["tar.member[bin/tool].uname"]["allowed"]


def test_payload_after_the_nul_of_a_name_or_link_target(tmp_path: Path, run_cli) -> None:
    """The same in the member name and the (unused) link target of a regular file: no rule
    covers either field, so this was already `different`; now the kind says why."""
    need("tar")
    rebuilt = gnu_tar(tmp_path, {"bin/tool": b"x\n"}, "--format=ustar")
    released = patch_header(rebuilt, 0, b"bin/tool\0" + b"N" * 40)
    released = patch_header(released, 157, b"\0" + b"T" * 60)
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    found = regions(artifact(rep, "app.tar"))
    assert found["tar.member[bin/tool].name"]["kind"] == "hidden"
    assert found["tar.member[bin/tool].target"]["kind"] == "hidden"


# --- compressed-stream headers ----------------------------------------------------------------


def gzip_with_header_crc(content: bytes, mtime: int, crc: int | None = None) -> bytes:
    """A gzip member with FHCRC set (no common tool writes one; zlib and RFC 1952 read it):
    the header's CRC-32, low half, unless `crc` says otherwise."""
    import struct
    import zlib

    engine = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = engine.compress(content) + engine.flush()
    head = b"\x1f\x8b\x08\x02" + struct.pack("<I", mtime) + b"\x02\x03"
    hcrc = zlib.crc32(head) & 0xFFFF if crc is None else crc
    trailer = struct.pack("<II", zlib.crc32(content), len(content))
    return head + struct.pack("<H", hcrc) + body + trailer


def test_gzip_header_crc_carries_two_bytes_beside_an_allowed_time(tmp_path: Path, run_cli) -> None:
    """The FHCRC bytes were read past, never compared: two chosen bytes rode beside a gzip
    time under `archive.mtime` (`equivalent`; GNU gzip refuses the file, Python's gzip, so
    pip, reads it). A header CRC that is not the header's is hidden now."""
    need("tar", "gzip")
    tar = gnu_tar(tmp_path, {"bin/tool": b"#!/bin/sh\necho ok\n" * 20})
    released = gzip_with_header_crc(tar, 5, crc=0x4141)
    a, b = pair(tmp_path, released, gzip_with_header_crc(tar, 6), "app.tar.gz")
    assert subprocess.run(["gzip", "-t", str(a)], check=False, capture_output=True).returncode
    subprocess.run(["gzip", "-t", str(b)], check=True, capture_output=True)
    code, rep = report(run_cli, "diff", a, b, *ALLOW)
    assert code == 1, rep
    crc = regions(artifact(rep, "app.tar.gz"))["gzip.header.checksum"]
    assert (crc["kind"], crc["allowed"]) == ("hidden", False)


def test_gzip_header_crc_of_its_own_header_follows_the_time(tmp_path: Path, run_cli) -> None:
    """(control) Two honest header CRCs of headers that differ by the time: a consequence."""
    need("tar")
    tar = gnu_tar(tmp_path, {"bin/tool": b"#!/bin/sh\necho ok\n" * 20})
    a, b = pair(tmp_path, gzip_with_header_crc(tar, 5), gzip_with_header_crc(tar, 6), "a.tar.gz")
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 0, rep
    assert artifact(rep, "a.tar.gz")["verdict"] == "equivalent"
