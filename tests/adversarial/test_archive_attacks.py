"""Attacks on archives (issue 15): hidden bytes, lying headers, hostile names, bombs, nesting.

Each runs through the real CLI (`reprover diff`) with every archive rule allowed, so that
only the attack itself can make it fail, and checks the reason named in the report.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from archive_support import (
    FILES,
    FIXTURES,
    add_overlapping_entry,
    artifact,
    flip_code_byte,
    patch_local_name,
    regions,
    report,
    sign_msi,
    write_msi,
    write_tar,
    write_zip,
)
from reprover.compare import compare_artifact
from reprover.compare.archives import Limits
from reprover.digest import hash_file
from reprover.model import ArtifactVerdict, Policy
from reprover.policy import judge

RULES = ("archive.mtime", "archive.order", "archive.owner", "archive.mode", "archive.compression")
ALLOW = [x for r in RULES for x in ("--allow", r)]


def pair(
    tmp_path: Path, released: bytes, rebuilt: bytes, name: str = "bundle.zip"
) -> tuple[Path, Path]:
    (tmp_path / "rel").mkdir(exist_ok=True)
    (tmp_path / "reb").mkdir(exist_ok=True)
    a, b = tmp_path / "rel" / name, tmp_path / "reb" / name
    a.write_bytes(released)
    b.write_bytes(rebuilt)
    return a, b


def hidden_reasons(rep: dict, path: str = "bundle.zip") -> list[str]:
    return [
        d["detail"] for d in artifact(rep, path)["differences"] if d["region"] == "archive.hidden"
    ]


def test_hidden_bytes_between_members(tmp_path: Path, run_cli) -> None:
    clean = write_zip(tmp_path / "clean.zip").read_bytes()
    dirty = write_zip(tmp_path / "dirty.zip", between=b"PAYLOAD!").read_bytes()
    with zipfile.ZipFile(tmp_path / "dirty.zip") as z:  # stdlib zipfile sees nothing odd
        assert z.testzip() is None
    code, rep = report(run_cli, "diff", *pair(tmp_path, dirty, clean), *ALLOW)
    assert code == 1
    assert "bytes between members" in hidden_reasons(rep)
    assert "bytes between the last member and the central directory" in hidden_reasons(rep)


def test_local_header_disagrees_with_central_directory(tmp_path: Path, run_cli) -> None:
    clean = write_zip(tmp_path / "clean.zip").read_bytes()
    lying = patch_local_name(clean, b"pkg/core.py", b"pkg/evil.py")
    code, rep = report(run_cli, "diff", *pair(tmp_path, lying, clean), *ALLOW)
    assert code == 1
    assert any("disagrees with the central directory: name" in r for r in hidden_reasons(rep))


def test_duplicate_names(tmp_path: Path, run_cli) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate, and writes it
        dup = write_zip(tmp_path / "dup.zip", [*FILES.items(), ("pkg/core.py", b"evil()\n")])
    clean = write_zip(tmp_path / "clean.zip")
    code, rep = report(
        run_cli, "diff", *pair(tmp_path, dup.read_bytes(), clean.read_bytes()), *ALLOW
    )
    assert code == 1
    assert any("duplicate member name 'pkg/core.py'" in r for r in hidden_reasons(rep))


def test_overlapping_entries(tmp_path: Path, run_cli) -> None:
    clean = write_zip(tmp_path / "c.zip", {**FILES, "pkg/alias.py": FILES["pkg/core.py"]})
    one = write_zip(tmp_path / "one.zip").read_bytes()
    overlapping = add_overlapping_entry(one, b"pkg/core.py", b"pkg/alias.py")
    with zipfile.ZipFile(io.BytesIO(overlapping)) as z:  # stdlib lists both names
        assert "pkg/alias.py" in z.namelist()
    code, rep = report(run_cli, "diff", *pair(tmp_path, overlapping, clean.read_bytes()), *ALLOW)
    assert code == 1
    assert any("overlaps the one before it" in r for r in hidden_reasons(rep))


def test_data_in_the_end_record_comment(tmp_path: Path, run_cli) -> None:
    clean = write_zip(tmp_path / "c.zip").read_bytes()
    commented = write_zip(tmp_path / "m.zip", comment=b"MZ\x90\x00 second stage").read_bytes()
    code, rep = report(run_cli, "diff", *pair(tmp_path, commented, clean), *ALLOW)
    assert code == 1
    comment = regions(artifact(rep, "bundle.zip"))["zip.comment"]
    assert comment["kind"] == "hidden" and not comment["allowed"]
    code, rep = report(run_cli, "diff", *pair(tmp_path, clean + b"TRAILER", clean), *ALLOW)
    assert code == 1
    assert "bytes after the end record" in hidden_reasons(rep)


def test_dotdot_absolute_and_symlink_member_names(tmp_path: Path, run_cli) -> None:
    def evil(payload: bytes) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in (("../../escaped.txt", payload), ("/tmp/absolute.txt", payload)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            link = tarfile.TarInfo("link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
            tar.addfile(link)
        return raw.getvalue()

    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    a, b = pair(work, evil(b"one\n"), evil(b"two\n"), "evil.tar")
    before = sorted(p for p in tmp_path.rglob("*"))
    cwd = Path.cwd()
    os.chdir(work)
    try:
        code, rep = report(run_cli, "diff", a, b, *ALLOW)
    finally:
        os.chdir(cwd)
    assert code == 1
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written by name
    assert not Path("/tmp/absolute.txt").exists()
    notes = " ".join(artifact(rep, "evil.tar")["notes"])
    assert "'../../escaped.txt' has a name with '..': reported, never used as a path" in notes
    assert "'/tmp/absolute.txt' has an absolute name" in notes
    assert "'link' is a symlink to '/etc/shadow': not followed" in notes
    assert artifact(rep, "evil.tar!../../escaped.txt")["verdict"] == "different"


def test_setuid_bit_change_under_archive_mode(tmp_path: Path, run_cli) -> None:
    (tmp_path / "b").mkdir()
    a = write_tar(tmp_path / "a.tar", mode=0o755)
    code, rep = report(run_cli, "diff", a, write_tar(tmp_path / "b" / "a.tar", mode=0o4755), *ALLOW)
    assert code == 1
    special = regions(artifact(rep, "a.tar"))["tar.member[pkg/core.py].mode.special"]
    assert special["detail"] == "755 -> 4755" and not special["allowed"]
    code, _ = report(run_cli, "diff", a, write_tar(tmp_path / "b" / "a.tar", mode=0o644), *ALLOW)
    assert code == 1  # the executable bits went away: never allowed either
    code, _ = report(run_cli, "diff", a, write_tar(tmp_path / "b" / "a.tar", mode=0o751), *ALLOW)
    assert code == 0  # read/write bits of group and others: archive.mode allows them


def _bomb(path: Path, mib: int, dostime: int) -> Path:
    """A ZIP with one member of `mib` MiB of zeros: one deflated MiB repeated (about 1000:1)."""
    block = bytes(1 << 20)
    engine = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = engine.compress(block) + engine.flush(zlib.Z_FULL_FLUSH)
    body = piece * mib + engine.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    name = b"zeros.bin"
    fixed = struct.pack("<HHHIIII", 20, 0, 8, dostime, crc, len(body), mib << 20)
    local = b"PK\x03\x04" + fixed + struct.pack("<HH", len(name), 0) + name
    central = (
        b"PK\x01\x02"
        + struct.pack("<H", 20)
        + fixed
        + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(body), 0
    )
    path.write_bytes(local + body + central + end)
    return path


@pytest.mark.slow
def test_zip_bomb_is_inconclusive_naming_the_limit(tmp_path: Path, run_cli) -> None:
    (tmp_path / "b").mkdir()
    a = _bomb(tmp_path / "bomb.zip", 1100, 0x50210000)
    b = _bomb(tmp_path / "b" / "bomb.zip", 1101, 0x52210000)  # other stored bytes: expanded
    assert a.stat().st_size < 2 << 20  # about 1 MiB that expands past the 1 GiB floor
    code, rep = report(run_cli, "diff", a, b, *ALLOW)
    assert code == 3
    member = artifact(rep, "bomb.zip!zeros.bin")
    assert member["verdict"] == "inconclusive"
    assert "archive.limit.bytes" in member["notes"][0]
    assert artifact(rep, "bomb.zip")["verdict"] == "inconclusive"


def test_deep_nesting_is_inconclusive_naming_the_limit(tmp_path: Path, run_cli) -> None:
    def nest(payload: bytes, depth: int) -> bytes:
        data = payload
        for level in range(depth):
            data = write_zip(tmp_path / f"n{level}.zip", {f"level{level}.zip": data}).read_bytes()
        return data

    code, rep = report(run_cli, "diff", *pair(tmp_path, nest(b"a", 12), nest(b"b", 12)), *ALLOW)
    assert code == 3
    undecided = [a for a in rep["artifacts"] if a["verdict"] == "inconclusive"]
    assert any("archive.limit.depth" in n for a in undecided for n in a["notes"])
    code, rep = report(run_cli, "diff", *pair(tmp_path, nest(b"a", 3), nest(b"b", 3)), *ALLOW)
    assert code == 1  # within the limit the innermost change is found
    assert artifact(rep, "bundle.zip!level2.zip!level1.zip!level0.zip")["verdict"] == "different"


def test_many_tiny_members_hit_the_member_limit(tmp_path: Path) -> None:
    many = {f"m/{i:05d}": b"" for i in range(3000)}
    a = write_zip(tmp_path / "a.zip", many)
    b = write_zip(tmp_path / "b.zip", many, date=(2030, 1, 1, 0, 0, 0))
    policy = Policy(allow=RULES)
    results = compare_artifact(
        "a.zip",
        a,
        b,
        policy,
        digests=(hash_file(a), hash_file(b)),
        judge=judge,
        limits=Limits(members_per_side=2000),
    )
    assert results[0].verdict is ArtifactVerdict.INCONCLUSIVE
    assert "archive.limit.members_per_side" in results[0].notes[0]
    assert "in the released archive" in results[0].notes[0]
    results = compare_artifact(
        "a.zip", a, b, policy, digests=(hash_file(a), hash_file(b)), judge=judge
    )
    assert results[0].verdict is ArtifactVerdict.EQUIVALENT


def test_member_bound_is_per_side_and_counts_each_side_alone(tmp_path: Path) -> None:
    """1,500 members a side under a bound of 2,000 a side: compared, although the pair has
    3,000 (the bound once counted both sides together). A rebuilt archive over the bound while
    the released one is under it is inconclusive, the rebuilt side named."""
    policy = Policy(allow=RULES)
    limits = Limits(members_per_side=2000)
    members = {f"m/{i:05d}": b"" for i in range(1500)}
    a = write_zip(tmp_path / "a.zip", members)
    b = write_zip(tmp_path / "b.zip", members, date=(2030, 1, 1, 0, 0, 0))
    digests = (hash_file(a), hash_file(b))
    results = compare_artifact("a.zip", a, b, policy, digests=digests, judge=judge, limits=limits)
    assert results[0].verdict is ArtifactVerdict.EQUIVALENT, results[0].notes
    more = write_zip(tmp_path / "c.zip", {**members, **{f"n/{i:05d}": b"" for i in range(501)}})
    digests = (hash_file(a), hash_file(more))
    results = compare_artifact("a.zip", a, more, policy, digests=digests, judge=judge,
                               limits=limits)  # fmt: skip
    assert results[0].verdict is ArtifactVerdict.INCONCLUSIVE
    assert "archive.limit.members_per_side" in results[0].notes[0]
    assert "more than 2000 members in the rebuilt archive" in results[0].notes[0]


def test_polyglot_zip_appended_to_a_pe(tmp_path: Path, run_cli) -> None:
    clean = write_zip(tmp_path / "c.zip").read_bytes()
    pe = (FIXTURES / "signature" / "unsigned.exe").read_bytes()
    code, rep = report(run_cli, "diff", *pair(tmp_path, pe + clean, clean), *ALLOW)
    assert code == 1
    assert f"{len(pe)} bytes prepended to the archive (offsets shifted)" in hidden_reasons(rep)


@pytest.mark.skipif(shutil.which("wixl") is None, reason="wixl missing")
def test_backdoored_dll_inside_msi_inside_zip(tmp_path: Path, run_cli) -> None:
    dll = (FIXTURES / "signature" / "unsigned.exe").read_bytes()
    layers = []
    for side, payload in (("rel", dll), ("reb", flip_code_byte(dll))):
        msi = write_msi(tmp_path / f"{side}.msi", payload)
        (tmp_path / side).mkdir()
        layers.append(write_zip(tmp_path / side / "bundle.zip", {"setup.msi": msi.read_bytes()}))
    code, rep = report(run_cli, "diff", *layers, *ALLOW)
    assert code == 1
    leaf = artifact(rep, "bundle.zip!setup.msi!product.cab!engine.dll")
    code_diffs = [d for d in leaf["differences"] if d["kind"] == "code"]
    assert code_diffs and code_diffs[0]["region"].startswith("pe.section[")


@pytest.mark.skipif(shutil.which("wixl") is None, reason="wixl missing")
def test_msi_signature_copied_from_another_msi(tmp_path: Path, run_cli) -> None:
    import subprocess

    pe = FIXTURES / "ledger" / "pe-mingw-timestamp"
    donor = sign_msi(write_msi(tmp_path / "donor.msi", (pe / "b").read_bytes()),
                     tmp_path / "donor-signed.msi")  # fmt: skip
    (tmp_path / "reb").mkdir()
    (tmp_path / "rel").mkdir()
    unsigned = write_msi(tmp_path / "reb" / "setup.msi", (pe / "a").read_bytes())
    sig = tmp_path / "donor.sig"
    subprocess.run(["osslsigncode", "extract-signature", "-in", str(donor), "-out", str(sig)],
                   check=True, capture_output=True)  # fmt: skip
    forged = tmp_path / "rel" / "setup.msi"
    subprocess.run(["osslsigncode", "attach-signature", "-sigin", str(sig), "-in", str(unsigned),
                    "-out", str(forged)], check=False, capture_output=True)  # fmt: skip
    assert forged.exists()
    code, rep = report(run_cli, "diff", forged, unsigned, "--allow", "signature")
    assert code == 1
    notes = " ".join(artifact(rep, "setup.msi")["notes"])
    assert "signature-only refused" in notes and "covers different content" in notes


def _zip_with_extra(path: Path, extra: bytes) -> bytes:
    with zipfile.ZipFile(path, "w") as z:
        for name, content in FILES.items():
            info = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6))
            info.external_attr, info.create_system = 0o644 << 16, 3
            info.compress_type = zipfile.ZIP_DEFLATED
            info.extra = extra  # zipfile writes it in the local header and the central record
            z.writestr(info, content)
    return path.read_bytes()


def test_payload_in_a_local_extra_field_only(tmp_path: Path, run_cli) -> None:
    """Equal central records must not stand for equal headers: the local extra differs."""
    clean = _zip_with_extra(tmp_path / "clean.zip", b"\x34\x12\x04\x00pad!")
    at = clean.index(b"\x34\x12\x04\x00pad!")  # the first member's local header comes first
    dirty = clean[:at] + b"\x34\x12\x04\x00EVIL" + clean[at + 8 :]
    code, rep = report(run_cli, "diff", *pair(tmp_path, dirty, clean), *ALLOW)
    assert code == 1
    assert "zip.entry[pkg/__init__.py].local.extra[0x1234]" in regions(artifact(rep, "bundle.zip"))


def test_tar_member_bytes_changed_under_identical_headers(tmp_path: Path, run_cli) -> None:
    """Members whose stored bytes are compared directly (not hashed): one byte at the end of
    a member that fills its last block exactly, with every header byte equal."""
    data = b"A" * 1024
    clean = write_tar(tmp_path / "clean.tar", {"x.bin": data, "y.bin": b"same"}).read_bytes()
    dirty = write_tar(
        tmp_path / "dirty.tar", {"x.bin": data[:-1] + b"B", "y.bin": b"same"}
    ).read_bytes()
    code, rep = report(run_cli, "diff", *pair(tmp_path, dirty, clean, "bundle.tar"), *ALLOW)
    assert code == 1
    found = regions(artifact(rep, "bundle.tar"))
    assert "tar.member[x.bin].data" in found
    assert not [r for r in found if r.endswith((".uid", ".mtime", ".checksum"))]
    assert artifact(rep, "bundle.tar!x.bin")["verdict"] == "different"
