"""Red team, second round: a hostile vendor's archives and installers against the real CLI.

Each test is one attempt to make `reprover diff` (or `sign-check`) pass, or report fewer
differences than there are, while the released archive carries bytes the rebuilt one does not.
Fixtures come from the real tools (GNU tar, gzip, xz, zstd, zip, gcab, osslsigncode) and are
then changed the way a vendor would. Every archive rule is allowed unless the test says
otherwise, so that only the attack itself can make a test fail. An attempt reprover already
stopped stays here as a passing test: it guards the class.
"""

from __future__ import annotations

import os
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


def test_extension_header_owner_and_time_carry_bytes(tmp_path: Path, run_cli) -> None:
    """A pax extension header's own `uname` (32 bytes, no NUL) and `mtime` (GNU tar writes an
    empty name and the member's time; no tar reads either), under `archive.owner` and
    `archive.mtime`: 44 bytes per member no listing shows were allowed as an owner and a time
    (`equivalent`). An extension header's owner or time is hidden now unless a writer's:
    empty or zero, the member's own, or GNU's `root`."""
    need("tar")
    name = "bin/" + "t" * 110  # longer than the ustar name: a pax `path` record
    rebuilt = gnu_tar(tmp_path, {name: b"#!/bin/sh\necho ok\n"}, "--format=posix",
                      "--pax-option=delete=atime,delete=ctime")  # fmt: skip
    assert rebuilt[156:157] == b"x"
    released = patch_header(rebuilt, 265, b"Z" * 32)
    released = patch_header(released, 136, b"77777777777\0")
    a, b = pair(tmp_path, released, rebuilt, "app.tar")
    assert tar_listing(a) == tar_listing(b)
    code, rep = report(run_cli, "diff", a, b, *ALLOW)
    assert code == 1, rep
    found = regions(artifact(rep, "app.tar"))
    for key in ("uname", "mtime"):
        field = found[f"tar.member[{name}].pax.header.{key}"]
        assert (field["kind"], field["allowed"]) == ("hidden", False)


def test_long_name_headers_of_two_owners_stay_allowed(tmp_path: Path, run_cli) -> None:
    """(control) GNU tar's long-name header says `root` whoever owns the member: two builds
    by two owners differ by the members' owners only, which `archive.owner` allows."""
    need("tar")
    files = {"lib/" + "n" * 120: b"x\n"}
    rebuilt = gnu_tar(tmp_path, files, "--format=gnu")
    released = gnu_tar(tmp_path, files, "--format=gnu", "--owner=builder:1000",
                       "--group=builder:1000")  # fmt: skip
    assert rebuilt[156:157] == b"L"
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "a.tar"),
                       "--allow", "archive.owner")  # fmt: skip
    assert code == 0, rep


# --- pax records: every byte of the extended header read as a reader does ----------------------


def pax_record(key: bytes, value: bytes) -> bytes:
    """One pax record, `LEN KEY=VALUE\\n`, LEN counting itself."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax_tar(headers: list[bytes], other_mtime: int) -> bytes:
    """`bin/tool` after one pax `x` header per item of `headers` (its records), then `other`
    with time `other_mtime` (the allowed difference the payload rides beside)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for records in headers:
            info = tarfile.TarInfo("././@PaxHeader")
            info.type, info.size = tarfile.XHDTYPE, len(records)
            tar.addfile(info, io.BytesIO(records))
        for name, mtime in (("bin/tool", 0), ("other", other_mtime)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = 2, mtime
            tar.addfile(info, io.BytesIO(b"x\n"))
    return buf.getvalue()


def comment_read_by_python(tar: bytes) -> str:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return t.getmembers()[0].pax_headers["comment"]


def _newline(records: bytes) -> list[bytes]:
    return [records[:-1] + b"X"]  # the record's last byte: Python 3.11's tarfile skips it


def _key_twice(records: bytes) -> list[bytes]:
    return [pax_record(b"comment", b"P" * 20) + records]  # the later one wins in tarfile


def _leading_zero(records: bytes) -> list[bytes]:
    body = records[records.index(b" ") :]
    return [b"0" + str(len(body) + 3).encode() + body]  # "053 comment=...": one more spelling


def _two_headers(records: bytes) -> list[bytes]:
    return [pax_record(b"comment", b"P" * 40), records]  # tarfile applies the first last


@pytest.mark.parametrize(
    ("attack", "region"),
    [
        (_newline, "pax.records"),
        (_key_twice, "pax[comment]#32"),
        (_two_headers, "pax#2[comment]"),
        (_leading_zero, "pax.records"),
    ],
    ids=["record's newline", "a key twice", "two pax headers", "length with a leading zero"],
)
def test_pax_bytes_a_comparison_read_past_beside_an_allowed_time(
    tmp_path: Path, run_cli, attack, region: str
) -> None:
    """Bytes of a pax extended header that were folded away, beside another member's time
    under `archive.mtime` (each was `equivalent`, `bin/tool` counted identical): a record's
    closing newline (a byte no field held), a key given twice (the first value a payload;
    fields kept the last), and two `x` headers before one member (the first's fields were
    overwritten by the second's, while Python's tarfile reads the first's `comment`: the
    comparison showed the rebuild's value, the reader another). Each is hidden now."""
    records = pax_record(b"comment", b"A" * 40)
    rebuilt = pax_tar([records], 0)
    released = pax_tar(attack(records), 5)
    if attack is _two_headers:
        assert comment_read_by_python(released) == "P" * 40
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "a.tar"), *ALLOW)
    assert code == 1, rep
    found = regions(artifact(rep, "a.tar"))[f"tar.member[bin/tool].{region}"]
    assert (found["kind"], found["allowed"]) == ("hidden", False)


def test_mode_bits_above_the_file_type_under_archive_mode(tmp_path: Path, run_cli) -> None:
    """A member's mode `7000644` (GNU tar lists and extracts `-rw-r--r--`: it reads 16 bits)
    against `644`, under `archive.mode`: only setuid, setgid, sticky, executable and type
    bits were special, so three bits no reader uses passed as permissions (`equivalent`;
    sixteen in a cpio mode). Any bit above the file type is `.mode.special` now."""
    need("tar")
    rebuilt = gnu_tar(tmp_path, {"bin/tool": b"hi\n"}, "--format=ustar", "--mode=644")
    released = patch_header(rebuilt, 100, b"7000644\0")
    a, b = pair(tmp_path, released, rebuilt, "app.tar")
    assert tar_listing(a) == tar_listing(b)
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mode")
    assert code == 1, rep
    assert not regions(artifact(rep, "app.tar"))["tar.member[bin/tool].mode.special"]["allowed"]


# --- numbers spelt otherwise: the spelling is data ---------------------------------------------


def test_tar_size_spelt_with_underscores_beside_an_allowed_time(tmp_path: Path, run_cli) -> None:
    """A member's size spelt `0_0_0_0_0_6` (Python's `int` and `tarfile` read 6; GNU tar
    refuses the archive), beside a time under `archive.mtime`: the size was a consequence and
    its spelling rode along (`equivalent`). A TAR number is octal digits and padding only now."""
    need("tar")
    rebuilt = gnu_tar(tmp_path, {"bin/tool": b"hello\n"}, "--format=ustar")
    released = patch_header(patch_header(rebuilt, 136, b"00000000005\0"), 124, b"0_0_0_0_0_6\0")
    a, b = pair(tmp_path, released, rebuilt, "app.tar")
    assert subprocess.run(["tar", "tf", str(a)], check=False, capture_output=True).returncode
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 1, rep
    size = regions(artifact(rep, "app.tar"))["tar.member[bin/tool].size"]
    assert (size["kind"], size["allowed"]) == ("hidden", False)


@pytest.mark.parametrize(("field", "at", "spelt"), [("mtime", 16, b"+1700000000 "),
                                                     ("uid", 28, b"0_0   ")])  # fmt: skip
def test_deb_ar_number_spelt_otherwise(
    tmp_path: Path, run_cli, field: str, at: int, spelt: bytes
) -> None:
    """A .deb (real `dpkg-deb`, two build times) whose first ar header spells its time
    `+1700000000` or its uid `0_0`: `int` reads them, so they were a time and an owner under
    `archive.mtime` and `archive.owner` (`equivalent`); dpkg-deb and ar read the package. An
    ar number is digits and spaces only now, else hidden."""
    need("dpkg-deb")
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: x\nVersion: 1\nArchitecture: all\nMaintainer: a <a@b>\nDescription: x\n"
    )
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "x").write_bytes(b"#!/bin/sh\n")
    debs = []
    for epoch in (1_700_000_000, 1_700_000_100):
        out = tmp_path / f"{epoch}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(out)],
                       check=True, capture_output=True, env={**os.environ,
                       "SOURCE_DATE_EPOCH": str(epoch)})  # fmt: skip
        debs.append(out.read_bytes())
    released = bytearray(debs[0])
    released[8 + at : 8 + at + len(spelt)] = spelt
    a, b = pair(tmp_path, bytes(released), debs[1], "x.deb")
    subprocess.run(["dpkg-deb", "-I", str(a)], check=True, capture_output=True)
    code, rep = report(
        run_cli, "diff", a, b, "--allow", "archive.mtime", "--allow", "archive.owner"
    )
    assert code == 1, rep
    found = regions(artifact(rep, "x.deb"))[f"ar.member[debian-binary].{field}"]
    assert (found["kind"], found["allowed"]) == ("hidden", False)


def test_member_order_is_data_only_archive_order_lets_through(tmp_path: Path, run_cli) -> None:
    """64 members stored in an order that spells 32 bits (each pair swapped or not by a bit
    of `EVIL`, Info-ZIP writing them in that order): `different` without a rule; with
    `archive.order` it passes, as documented (an order of n members is about log2(n!) bits,
    which the README now says instead of "a few bits")."""
    need("zip")
    src = tmp_path / "src"
    src.mkdir()
    names = [f"f{i:02}.txt" for i in range(64)]
    for name in names:
        (src / name).write_text(name)
    bits = [(byte >> i) & 1 for byte in b"EVIL" for i in range(8)]
    order = []
    for n in range(32):
        pair_ = names[2 * n : 2 * n + 2]
        order += reversed(pair_) if bits[n] else pair_
    for folder, listed in (("rel", order), ("reb", names)):
        (tmp_path / folder).mkdir()
        subprocess.run(["zip", "-X", "-q", str(tmp_path / folder / "a.zip"), *listed], cwd=src,
                       check=True)  # fmt: skip
    a, b = tmp_path / "rel" / "a.zip", tmp_path / "reb" / "a.zip"
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1, rep
    assert regions(artifact(rep, "a.zip"))["zip.order"]["allowed"] is False
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.order")
    assert code == 0, rep


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


# --- ZIP: how a data descriptor is spelt ---------------------------------------------------------


def streamed_zip(entries: list[tuple[bytes, int, bool, bool]]) -> bytes:
    """A ZIP of deflated `hello`s written as a streaming writer does (flag 3, data descriptors),
    each entry (name, DOS time, local CRC and sizes zero, descriptor signature)."""
    import struct
    import zlib

    out, central = bytearray(), bytearray()
    for name, when, zero, signed in entries:
        data = b"hello " * 50
        engine = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = engine.compress(data) + engine.flush()
        crc, offset = zlib.crc32(data), len(out)
        sizes = (crc, len(packed), len(data))
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 8, 8, when & 0xFFFF, when >> 16,
                           *((0, 0, 0) if zero else sizes), len(name), 0)  # fmt: skip
        out += name + packed + (b"PK\x07\x08" if signed else b"") + struct.pack("<3I", *sizes)
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 8, 8, when & 0xFFFF,
                               when >> 16, *sizes, len(name), 0, 0, 0, 0, 0, offset)  # fmt: skip
        central += name
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
                      len(out), 0)  # fmt: skip
    return bytes(out + central + end)


def test_data_descriptor_spelling_carries_bits_beside_an_allowed_time(
    tmp_path: Path, run_cli
) -> None:
    """`a.txt`'s local header holding its CRC and sizes and its descriptor without signature
    (both legal; `unzip -t` accepts them), where the rebuild spells them as streaming writers
    do (zeros, signature), beside `b.txt`'s time under `archive.mtime`: equal central records
    made `a.txt` identical and the two bits rode along (`equivalent`). An unusual spelling is
    a field now (`local.descriptor`), which no rule allows."""
    need("unzip")
    rebuilt = streamed_zip([(b"a.txt", 0x58210000, True, True), (b"b.txt", 0x58210000, True, True)])
    released = streamed_zip([(b"a.txt", 0x58210000, False, False),
                             (b"b.txt", 0x58220000, True, True)])  # fmt: skip
    a, b = pair(tmp_path, released, rebuilt, "a.zip")
    subprocess.run(["unzip", "-tq", str(a)], check=True, capture_output=True)
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 1, rep
    found = regions(artifact(rep, "a.zip"))["zip.entry[a.txt].local.descriptor"]
    assert not found["allowed"]


@pytest.mark.parametrize(
    ("extra", "key"),
    [(b"\x55\x54\x05\x00" + bytes([0x01 | 0xA8]) + (1_700_000_000).to_bytes(4, "little"),
      "extra[0x5455]"),
     (b"\x0a\x00\x20\x00" + b"EVIL" + b"\x01\x00\x18\x00" + bytes(24), "extra[0x000a]")],
    ids=["UT flags' unused bits", "NTFS reserved bytes"],
)  # fmt: skip
def test_time_extra_bits_no_time_reads(tmp_path: Path, run_cli, extra: bytes, key: str) -> None:
    """A time extra whose bytes no time reads (5 unused flag bits of a 0x5455 extra, the 4
    reserved bytes of an NTFS extra) under `archive.mtime`: a well-formed time record was a
    time (`equivalent`); those bits must now be zero, else the record is `extra[ID]`."""
    import zipfile

    for folder, payload in (("rel", extra), ("reb", b"")):
        (tmp_path / folder).mkdir()
        with zipfile.ZipFile(tmp_path / folder / "a.zip", "w") as z:
            info = zipfile.ZipInfo("a.txt", (2024, 1, 2, 3, 4, 6))
            info.extra = payload
            z.writestr(info, b"hello\n")
    code, rep = report(run_cli, "diff", tmp_path / "rel" / "a.zip", tmp_path / "reb" / "a.zip",
                       "--allow", "archive.mtime")  # fmt: skip
    assert code == 1, rep
    assert not regions(artifact(rep, "a.zip"))[f"zip.entry[a.txt].{key}"]["allowed"]


# --- RPM: bytes of the cpio payload and header that restate or pad ----------------------------

RPM_BINARY = b"\x7fELF" + b"hello" * 100 + b"!"  # 505 bytes: its data is padded to 508


@pytest.fixture(scope="module")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """(an rpmbuild package of one file, the same package built 100 s later, in a folder)."""
    from rpm_support import MISSING, build_rpm

    if MISSING:
        pytest.skip(f"{', '.join(MISSING)}: .ci/apt-packages.txt")
    root = tmp_path_factory.mktemp("rpm")
    released = build_rpm(root, root / "rel" / "x.rpm", RPM_BINARY, 1_700_000_000)
    rebuilt = build_rpm(root, root / "reb" / "x.rpm", RPM_BINARY, 1_700_000_100)
    return released.read_bytes(), rebuilt


def with_payload(rpm: bytes, edit) -> bytes:
    """`rpm` with its gzip payload edited, recompressed by zlib level 9 (what rpmbuild's
    gzip payload is: the encoding check holds) and every digest rpm checks made right."""
    import gzip
    import zlib

    from rpm_support import restate

    at = rpm.index(b"\x1f\x8b\x08")
    cpio = edit(bytearray(gzip.decompress(rpm[at:])))
    engine = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = engine.compress(bytes(cpio)) + engine.flush()
    trailer = zlib.crc32(cpio).to_bytes(4, "little") + len(cpio).to_bytes(4, "little")
    return restate(rpm[:at] + rpm[at : at + 10] + body + trailer)


def rpm_digests_ok(path: Path) -> None:
    """rpm itself checks every digest of the package and lists it."""
    out = subprocess.run(["rpmkeys", "-Kv", str(path)], check=True, capture_output=True,
                         text=True).stdout  # fmt: skip
    assert "digest: OK" in out and "BAD" not in out, out
    subprocess.run(["rpm", "-qlp", str(path)], check=True, capture_output=True)


def _trailer_data(cpio: bytearray) -> bytearray:
    """The cpio trailer given 1 KB of data (its size field set): rpm and cpio skip it."""
    at = cpio.rindex(b"070701", 0, cpio.rindex(b"TRAILER!!!"))
    payload = b"EVIL" * 256
    cpio[at + 54 : at + 62] = b"%08X" % len(payload)
    data = (at + 110 + 11 + 3) // 4 * 4
    out = cpio[:data] + payload
    return out + bytes(-len(out) % 512)


def _name_padding(cpio: bytearray) -> bytearray:
    """Two bytes in the padding after the first member's name (110 + 16 -> 128)."""
    cpio[126:128] = b"PP"
    return cpio


def _data_padding(cpio: bytearray) -> bytearray:
    """Three bytes in the padding after the first member's 505 bytes of data."""
    cpio[128 + len(RPM_BINARY) : 128 + 508] = b"PPP"
    return cpio


def _name_terminator(cpio: bytearray) -> bytearray:
    """A byte in place of the NUL that ends the first member's name (namesize counts it)."""
    cpio[125] = ord("N")
    return cpio


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (_trailer_data, "data of the cpio trailer"),
        (_name_padding, "the NUL and padding after"),
        (_data_padding, "the padding after"),
        (_name_terminator, "the NUL and padding after"),
    ],
    ids=["1 KB as the trailer's data", "name padding", "data padding", "name terminator"],
)
def test_rpm_cpio_bytes_no_reader_reads_beside_an_allowed_time(
    rpms: tuple[bytes, Path], tmp_path: Path, run_cli, edit, why: str
) -> None:
    """Bytes of the cpio payload that rpm and cpio skip (the trailer's data, the padding after
    a name or data, a name's terminator), every digest made right (`rpmkeys -K`: OK), beside
    the build times under `archive.mtime`: the payload's bytes were consequences of the times
    (`equivalent`). They are hidden now, and the trailer's header a field of its own."""
    released, rebuilt = rpms
    path = tmp_path / "rel" / "x.rpm"
    path.parent.mkdir()
    path.write_bytes(with_payload(released, edit))
    if edit is not _name_terminator:  # rpm reads the name by its length: it refuses that one
        rpm_digests_ok(path)
    code, rep = report(run_cli, "diff", path, rebuilt, "--allow", "archive.mtime")
    assert code == 1, rep
    hidden = [d for d in artifact(rep, "x.rpm")["differences"] if d["region"] == "archive.hidden"]
    assert any(why in d["detail"] for d in hidden), hidden


def test_rpm_honest_restated_rebuild_stays_equivalent(
    rpms: tuple[bytes, Path], tmp_path: Path, run_cli
) -> None:
    """(control) The released package's payload recompressed and every digest restated:
    each digest is what the package's own bytes give, so they follow the times."""
    released, rebuilt = rpms
    path = tmp_path / "rel" / "x.rpm"
    path.parent.mkdir()
    path.write_bytes(with_payload(released, lambda cpio: cpio))
    rpm_digests_ok(path)
    code, rep = report(run_cli, "diff", path, rebuilt, "--allow", "archive.mtime")
    assert code == 0, rep


@pytest.mark.parametrize(
    ("tag", "region"),
    [(5092, "rpm.header.payloaddigest.digest"), (5097, "rpm.header.payloaddigestalt.digest")],
)
def test_rpm_payload_digest_holds_chosen_bytes_beside_an_allowed_time(
    rpms: tuple[bytes, Path], tmp_path: Path, run_cli, tag: int, region: str
) -> None:
    """32 chosen bytes as the header's payload digest (the signature header's digests of the
    header made right, so only this tag lies): digests were consequences of anything allowed
    (`equivalent`); a tag that restates the package's own bytes must now hold what they give."""
    import hashlib
    import struct

    from rpm_support import _header, restate

    released, rebuilt = rpms
    _, end = _header(released, 96)
    main = end + (8 - end % 8) % 8
    data = bytearray(released)
    count = struct.unpack(">I", data[main + 8 : main + 12])[0]
    base = main + 16 + 16 * count
    for i in range(count):
        t, _, offset, _ = struct.unpack_from(">IIII", data, main + 16 + 16 * i)
        if t == tag:
            data[base + offset : base + offset + 64] = b"deadbeef" * 8
    evil = restate(bytes(data), keep=(tag,))  # the signature header's digests made right
    at = evil.index(b"\x1f\x8b\x08")
    assert hashlib.sha256(evil[main:at]).hexdigest().encode() in evil[:main]
    path = tmp_path / "rel" / "x.rpm"
    path.parent.mkdir()
    path.write_bytes(evil)
    code, rep = report(run_cli, "diff", path, rebuilt, "--allow", "archive.mtime")
    assert code == 1, rep
    found = regions(artifact(rep, "x.rpm"))[region]
    assert (found["kind"], found["allowed"]) == ("hidden", False)


@pytest.mark.slow
@pytest.mark.parametrize(("tag", "value", "region"), [
    (1035, b"deadbeef" * 8, "rpm.header.filedigests.digest"),
    (1028, (4097).to_bytes(4, "big"), "rpm.header.filesizes.size"),
    (1009, (0x45564C).to_bytes(4, "big"), "rpm.header.size"),
], ids=["file digest", "file size", "total size"])  # fmt: skip
def test_rpm_file_digest_of_an_accepted_file_holds_chosen_bytes(
    tmp_path: Path, run_cli, tag: int, value: bytes, region: str
) -> None:
    """A PE whose TimeDateStamp differs (`pe.timestamp`) in two rpmbuild packages: the file's
    header digest and size (and the package's total size) follow its content, so they were
    consequences; the released header's digest or size of that file, or the total, replaced by
    chosen bytes, every package digest restated, rode along (`equivalent`). Each must now be
    what the payload's files give (the total: their sizes, each inode once)."""
    import struct

    from archive_support import FIXTURES
    from rpm_support import MISSING, _header, _set, build_rpm, restate

    if MISSING:
        pytest.skip(f"{', '.join(MISSING)}: .ci/apt-packages.txt")
    pe = bytearray((FIXTURES / "signature" / "other-unsigned.exe").read_bytes())
    stamped = bytearray(pe)
    struct.pack_into("<I", stamped, struct.unpack_from("<I", pe, 0x3C)[0] + 8, 0x12345678)
    released = build_rpm(tmp_path, tmp_path / "rel" / "x.rpm", bytes(stamped), 1_700_000_000)
    rebuilt = build_rpm(tmp_path, tmp_path / "reb" / "x.rpm", bytes(pe), 1_700_000_000)
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "pe.timestamp")
    assert code == 0, rep  # the control: the file's digest and size follow its content
    data = bytearray(released.read_bytes())
    _, end = _header(bytes(data), 96)
    _set(data, end + (8 - end % 8) % 8, tag, value)
    released.write_bytes(restate(bytes(data)))
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "pe.timestamp")
    assert code == 1, rep
    found = regions(artifact(rep, "x.rpm"))[region]
    assert (found["kind"], found["allowed"]) == ("hidden", False)


# --- CAB: the folder's data is its files' content ------------------------------------------------


@pytest.mark.parametrize("where", ["between two files", "after the last file"])
def test_cab_folder_bytes_in_no_file_beside_an_allowed_time(
    tmp_path: Path, run_cli, where: str
) -> None:
    """A gcab cabinet (stored folder) whose folder data holds 100 bytes of payload no file
    claims, between `a.txt` and `b.txt` (b's offset moved) or after the last file, beside
    `a.txt`'s time under `archive.mtime`: the folder's data and the offsets were
    consequences of the time (`equivalent`; `gcab -x` extracts both files). A folder's data
    must now be its files' content back to back."""
    import struct

    from reprover.compare.archives.cabfmt import checksum

    need("gcab")
    src = tmp_path / "src"
    src.mkdir()
    for name, fill in (("a.txt", b"A"), ("b.txt", b"B")):
        (src / name).write_bytes(fill * 100)
        os.utime(src / name, (1_700_000_000, 1_700_000_000))
    subprocess.run(["gcab", "-c", str(tmp_path / "reb.cab"), "a.txt", "b.txt"], cwd=src,
                   check=True)  # fmt: skip
    cab = (tmp_path / "reb.cab").read_bytes()
    coff = struct.unpack_from("<I", cab, 16)[0]
    start = struct.unpack_from("<I", cab, 36)[0]  # the folder's one data block
    csum, cb, _ = struct.unpack_from("<IHH", cab, start)
    at = 100 if where == "between two files" else 200
    data = cab[start + 8 : start + 8 + cb]
    data = data[:at] + b"EVIL" * 25 + data[at:]
    head = struct.pack("<HH", len(data), len(data))
    block = struct.pack("<I", checksum(head, checksum(data, 0)) if csum else 0) + head + data
    released = bytearray(cab[:start] + block + cab[start + 8 + cb :])
    struct.pack_into("<I", released, 8, len(released))  # cbCabinet
    second = coff + 16 + len("a.txt") + 1  # b.txt's file entry
    if where == "between two files":
        struct.pack_into("<I", released, second + 4, 200)  # b.txt's offset in the folder
    struct.pack_into("<H", released, coff + 12, 0x1234)  # a.txt's time: the allowed difference
    a, b = pair(tmp_path, bytes(released), cab, "a.cab")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["gcab", "-x", str(a)], cwd=out, check=True)
    assert (out / "b.txt").read_bytes() == b"B" * 100
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 1, rep
    hidden = [d["detail"] for d in artifact(rep, "a.cab")["differences"]
              if d["region"] == "archive.hidden"]  # fmt: skip
    assert any("are in no file" in h for h in hidden), hidden


def test_cab_size_field_holds_chosen_bytes_beside_an_allowed_time(tmp_path: Path, run_cli) -> None:
    """A gcab cabinet's cbCabinet set to a chosen value below the file's size, beside a file
    time under `archive.mtime`: the header's size was a consequence of anything allowed and
    only a value past the file's end was refused (`equivalent`; gcab reads the file). The
    size must now be the cabinet's own (the signature's offset when signed)."""
    import struct

    need("gcab")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(b"A" * 100)
    subprocess.run(["gcab", "-c", str(tmp_path / "reb.cab"), "a.txt"], cwd=tmp_path / "src",
                   check=True)  # fmt: skip
    cab = (tmp_path / "reb.cab").read_bytes()
    released = bytearray(cab)
    struct.pack_into("<I", released, 8, 0x45)  # cbCabinet: a chosen byte, not the size
    struct.pack_into("<H", released, struct.unpack_from("<I", cab, 16)[0] + 12, 0x1234)  # time
    a, b = pair(tmp_path, bytes(released), cab, "a.cab")
    subprocess.run(["gcab", "-t", str(a)], check=True, capture_output=True)
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 1, rep
    hidden = [d["detail"] for d in artifact(rep, "a.cab")["differences"]
              if d["region"] == "archive.hidden"]  # fmt: skip
    assert any("cbCabinet 69 is not the cabinet's size" in h for h in hidden), hidden


# --- MSI: the sector layout a signature does not cover ----------------------------------------


class Compound:
    """A compound file's FAT and directory, enough to move a stream's sectors (512-byte)."""

    def __init__(self, data: bytearray) -> None:
        import struct

        self.data, self.u32 = data, struct.Struct("<I")
        count = self.u32.unpack_from(data, 0x2C)[0]
        self.fat_sectors = struct.unpack_from(f"<{count}I", data, 0x4C)

    def next(self, sector: int) -> int:
        fat_sector, index = divmod(sector, 128)
        return self.u32.unpack_from(
            self.data, (self.fat_sectors[fat_sector] + 1) * 512 + 4 * index
        )[0]

    def link(self, sector: int, following: int) -> None:
        fat_sector, index = divmod(sector, 128)
        self.u32.pack_into(
            self.data, (self.fat_sectors[fat_sector] + 1) * 512 + 4 * index, following
        )

    def chain(self, start: int) -> list[int]:
        out = [start]
        while self.next(out[-1]) < 0xFFFFFFFA:
            out.append(self.next(out[-1]))
        return out

    def sector(self, n: int) -> bytearray:
        return self.data[(n + 1) * 512 : (n + 2) * 512]

    def place(self, sid: int, contents: list[bytes], sectors: list[int]) -> None:
        """Write a stream's sectors, in order, to `sectors` (ascending), and point its entry
        (directory entry `sid`) there."""
        for i, (content, at) in enumerate(zip(contents, sectors, strict=True)):
            self.data[(at + 1) * 512 : (at + 2) * 512] = content
            self.link(at, sectors[i + 1] if i + 1 < len(sectors) else 0xFFFFFFFE)
        directory = self.chain(self.u32.unpack_from(self.data, 0x30)[0])
        sector, slot = divmod(sid, 4)
        self.u32.pack_into(self.data, (directory[sector] + 1) * 512 + 128 * slot + 0x74, sectors[0])


def interleave(msi: Path, message: bytes) -> bytes:
    """`msi` with its two largest streams' sectors shuffled together by the bits of `message`
    (each chain still ascending, every sector still in exactly one chain, every stream's bytes
    unchanged): the interleaving is the message."""
    import olefile

    with olefile.OleFileIO(str(msi)) as ole:
        streams = [e for e in ole.direntries if e is not None and e.entry_type == 2]
        big = sorted((e for e in streams if e.size >= 4096), key=lambda e: -e.size)[:2]
    cf = Compound(bytearray(msi.read_bytes()))
    chains = [cf.chain(e.isectStart) for e in big]
    contents = [[bytes(cf.sector(s)) for s in c] for c in chains]
    bits = [(byte >> i) & 1 for byte in message for i in range(8)]
    assign: list[list[int]] = [[], []]
    for n, sector in enumerate(sorted(chains[0] + chains[1])):
        full = [len(assign[i]) == len(chains[i]) for i in (0, 1)]
        assign[1 if full[0] else 0 if full[1] else bits[n % len(bits)]].append(sector)
    for entry, content, sectors in zip(big, contents, assign, strict=True):
        cf.place(entry.sid, content, sectors)
    return bytes(cf.data)


def test_signed_msi_sector_interleaving_carries_a_message(tmp_path: Path, run_cli) -> None:
    """An osslsigncode-signed MSI whose two largest streams' sectors are interleaved by the
    bits of a message (log2 C(159, 80), about 154 bits here; kilobytes in a large MSI), every
    stream byte for byte the signed one's: osslsigncode still verifies it, and `sign-check`
    says `signature-only` (exit 0) although the released file holds bytes the rebuild plus a
    signature does not: the sector layout is not the one the signer writes."""
    import random

    from archive_support import FIXTURES, sign_msi, write_msi

    need("wixl", "osslsigncode")
    rng = random.Random(1)  # noqa: S311 - incompressible test data, not secrets
    (tmp_path / "reb").mkdir()
    rebuilt = write_msi(tmp_path / "reb" / "setup.msi", rng.randbytes(40000),
                        helper=rng.randbytes(40000))  # fmt: skip
    signed = sign_msi(rebuilt, tmp_path / "signed.msi")
    code, rep = report(run_cli, "sign-check", rebuilt, signed)
    assert code == 0, rep  # the control: the signer's own layout
    released = tmp_path / "rel" / "setup.msi"
    released.parent.mkdir()
    released.write_bytes(interleave(signed, b"EVIL"))
    ca = FIXTURES / "signature" / "ca.pem"
    done = subprocess.run(["osslsigncode", "verify", "-in", str(released), "-CAfile", str(ca)],
                          check=False, capture_output=True, text=True)  # fmt: skip
    assert "Succeeded" in done.stdout, done.stdout + done.stderr
    code, rep = report(run_cli, "sign-check", rebuilt, released)
    assert code == 1, rep
    assert "not laid out as osslsigncode writes it" in rep["checks"][0]["detail"], rep


@pytest.fixture(scope="module")
def signed_msi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a wixl rebuild with two 40 KB streams, the same signed by osslsigncode)."""
    import random

    from archive_support import sign_msi, write_msi

    need("wixl", "osslsigncode")
    root = tmp_path_factory.mktemp("msi")
    rng = random.Random(2)  # noqa: S311 - incompressible test data, not secrets
    (root / "reb").mkdir()
    rebuilt = write_msi(root / "reb" / "setup.msi", rng.randbytes(40000),
                        helper=rng.randbytes(40000))  # fmt: skip
    return rebuilt, sign_msi(rebuilt, root / "signed.msi")


def _streams_swapped(data: bytearray, msi: Path) -> None:
    """The two large streams stored the other way round, each still contiguous."""
    import olefile

    with olefile.OleFileIO(str(msi)) as ole:
        big = sorted((e for e in ole.direntries if e is not None and e.entry_type == 2
                      and e.size >= 4096), key=lambda e: -e.size)[:2]  # fmt: skip
    cf = Compound(data)
    chains = [cf.chain(e.isectStart) for e in big]
    contents = [[bytes(cf.sector(n)) for n in c] for c in chains]
    pool = sorted(chains[0] + chains[1])
    first = len(chains[1])
    cf.place(big[1].sid, contents[1], pool[:first])
    cf.place(big[0].sid, contents[0], pool[first:])


def _stream_slack(data: bytearray, msi: Path) -> None:
    """A byte after the end of a large stream, in its last sector (the slack)."""
    import olefile

    with olefile.OleFileIO(str(msi)) as ole:
        entry = next(e for e in ole.direntries if e is not None and e.entry_type == 2
                     and e.size >= 4096 and e.size % 512)  # fmt: skip
    last = Compound(data).chain(entry.isectStart)[-1]
    data[(last + 1) * 512 + entry.size % 512] = 0x45


def _mini_stream_tail(data: bytearray, msi: Path) -> None:
    """A byte after the end of the mini stream, in its last sector."""
    import olefile

    with olefile.OleFileIO(str(msi)) as ole:
        start, size = ole.root.isectStart, ole.root.size
    if size % 512 == 0:
        pytest.skip("the mini stream fills its last sector")
    last = Compound(data).chain(start)[-1]
    data[(last + 1) * 512 + size % 512] = 0x45


def _header_reserved(data: bytearray, msi: Path) -> None:
    """The header's six reserved bytes (0x22) set."""
    del msi
    data[0x22:0x28] = b"EVIL!!"


@pytest.mark.parametrize(
    "edit", [_streams_swapped, _stream_slack, _mini_stream_tail, _header_reserved],
    ids=["large streams in the other order", "stream slack", "mini stream tail",
         "header reserved bytes"],
)  # fmt: skip
def test_signed_msi_other_layouts_than_osslsigncodes(
    signed_msi: tuple[Path, Path], tmp_path: Path, run_cli, edit
) -> None:
    """Attacks on the layout check that closed the interleaving (msinest's port of
    osslsigncode's writer): every stream still byte for byte the signed one's, the file laid
    out otherwise, or bytes in the slack, the mini stream's tail or the header's reserved
    field. `osslsigncode verify` accepts each. Each stays refused (already stopped: the
    layout is not the writer's; slack and mini-stream tail bytes are hidden; olefile refuses
    the reserved bytes, so the file is compared as bytes)."""
    rebuilt, signed = signed_msi
    data = bytearray(signed.read_bytes())
    edit(data, signed)
    released = tmp_path / "rel" / "setup.msi"
    released.parent.mkdir()
    released.write_bytes(bytes(data))
    code, rep = report(run_cli, "sign-check", rebuilt, released)
    assert code == 1, rep
    assert artifact(rep, "setup.msi")["verdict"] == "different"


@pytest.mark.parametrize("mode", ["extended", "nested", "nested extended"])
def test_signed_msi_layout_check_under_each_signing_mode(
    signed_msi: tuple[Path, Path], tmp_path: Path, run_cli, mode: str
) -> None:
    """The layout check under osslsigncode's other ways of signing: `-add-msi-dse`, `-nest`
    (a second signer over the signed file, another key), and both. The signer's own file is
    `signature-only` (exit 0: the port takes the re-signature's order too); the same with its
    two large streams stored the other way round is refused."""
    from archive_support import sign_msi

    rebuilt, signed = signed_msi
    if mode == "extended":
        out = sign_msi(rebuilt, tmp_path / "out.msi", dse=True)
    elif mode == "nested":
        out = sign_msi(signed, tmp_path / "out.msi", nest=True, signer="other-leaf")
    else:
        once = sign_msi(rebuilt, tmp_path / "once.msi", dse=True)
        out = sign_msi(once, tmp_path / "out.msi", nest=True, dse=True)
    code, rep = report(run_cli, "sign-check", rebuilt, out)
    assert code == 0, rep
    data = bytearray(out.read_bytes())
    _streams_swapped(data, out)
    released = tmp_path / "rel" / "setup.msi"
    released.parent.mkdir()
    released.write_bytes(bytes(data))
    code, rep = report(run_cli, "sign-check", rebuilt, released)
    assert code == 1, rep
    notes = " ".join(artifact(rep, "setup.msi")["notes"])
    assert "not laid out as osslsigncode writes it" in notes


def test_signed_large_msi_header_sector_padding(tmp_path: Path, run_cli) -> None:
    """A signed MSI over osslsigncode's threshold (an 8 MiB stream: it writes 4096-byte
    sectors, version 4) with a byte in the header sector's 3,584 bytes after the header:
    `osslsigncode verify` accepts it; refused (already stopped: hidden padding)."""
    import random

    from archive_support import sign_msi, write_msi

    need("wixl", "osslsigncode")
    (tmp_path / "reb").mkdir()
    rng = random.Random(3)  # noqa: S311 - incompressible test data, not secrets
    rebuilt = write_msi(tmp_path / "reb" / "setup.msi", rng.randbytes(8 << 20))
    signed = sign_msi(rebuilt, tmp_path / "signed.msi")
    data = bytearray(signed.read_bytes())
    assert data[0x1E] == 12  # 4096-byte sectors
    code, rep = report(run_cli, "sign-check", rebuilt, signed)
    assert code == 0, rep
    data[1000] = 0x45
    released = tmp_path / "rel" / "setup.msi"
    released.parent.mkdir()
    released.write_bytes(bytes(data))
    code, rep = report(run_cli, "sign-check", rebuilt, released)
    assert code == 1, rep
    hidden = [d["detail"] for d in artifact(rep, "setup.msi")["differences"]
              if d["region"] == "archive.hidden"]  # fmt: skip
    assert any("header sector's padding" in h for h in hidden), hidden
