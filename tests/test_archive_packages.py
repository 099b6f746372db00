"""Packages and installers made by real tools: .deb (dpkg-deb), MSI (wixl), CAB (gcab)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from archive_support import (
    FIXTURES,
    artifact,
    regions,
    report,
    write_msi,
)
from rpm_support import build_rpm

ELF = FIXTURES / "ledger" / "elf-date"
PE = FIXTURES / "ledger" / "pe-mingw-timestamp"
needs = pytest.mark.skipif  # the tools are installed by .ci/apt-packages.txt; a skip is visible


def build_deb(root: Path, out: Path, binary: bytes, epoch: int) -> Path:
    pkg = root / f"pkg-{epoch}-{len(binary)}-{hash(binary) & 0xFFFF}"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr" / "bin").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: hello\nVersion: 1.0\nArchitecture: all\nMaintainer: V <v@example.com>\n"
        "Description: test\n"
    )
    (pkg / "usr" / "bin" / "hello").write_bytes(binary)
    (pkg / "usr" / "bin" / "hello").chmod(0o755)
    for p in [pkg, *pkg.rglob("*")]:
        os.utime(p, (1_600_000_000, 1_600_000_000))
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(pkg), str(out)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    return out


@needs(shutil.which("dpkg-deb") is None, reason="dpkg-deb missing")
def test_deb_built_at_two_times_and_a_changed_binary(tmp_path: Path, run_cli) -> None:
    elf = (ELF / "a").read_bytes()
    a = build_deb(tmp_path, tmp_path / "rel" / "hello.deb", elf, 1_700_000_000)
    b = build_deb(tmp_path, tmp_path / "reb" / "hello.deb", elf, 1_800_000_000)
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1
    assert (
        regions(artifact(rep, "hello.deb"))["ar.member[data.tar.xz].mtime"]["kind"] == "timestamp"
    )
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 0, rep
    changed = build_deb(tmp_path, tmp_path / "chg" / "hello.deb", (ELF / "b").read_bytes(),
                        1_700_000_000)  # fmt: skip
    code, rep = report(run_cli, "diff", a, changed, "--allow", "archive.mtime")
    assert code == 1
    leaf = artifact(rep, "hello.deb!data.tar.xz!./usr/bin/hello")
    assert leaf["verdict"] == "different"
    assert any(d["region"] == "elf.section[.rodata]" for d in leaf["differences"])
    assert artifact(rep, "hello.deb!data.tar.xz")["verdict"] == "different"


@needs(shutil.which("wixl") is None, reason="wixl missing")
def test_msi_streams_and_its_cabinet_are_layers(tmp_path: Path, run_cli) -> None:
    dll = (PE / "a").read_bytes()
    a = write_msi(tmp_path / "setup.msi", dll)
    (tmp_path / "b").mkdir()
    b = write_msi(tmp_path / "b" / "setup.msi", (PE / "b").read_bytes())
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1
    leaf = artifact(rep, "setup.msi!product.cab!engine.dll")
    assert "pe.coff.TimeDateStamp" in regions(leaf)
    assert "cab.file[engine.dll].data" in regions(artifact(rep, "setup.msi!product.cab"))
    # wixl writes a new random package code into the summary stream on every run: a field
    assert "msi.summary.revision" in regions(artifact(rep, "setup.msi"))
    assert "setup.msi!%05SummaryInformation" not in [a["path"] for a in rep["artifacts"]]
    assert any("member(s) identical" in n for n in artifact(rep, "setup.msi")["notes"])


@needs(shutil.which("gcab") is None, reason="gcab missing")
def test_cab_times_rule_and_hidden_tail(tmp_path: Path, run_cli) -> None:
    def cab(out: Path, when: int) -> Path:
        src = tmp_path / f"src-{when}"
        src.mkdir()
        (src / "engine.dll").write_bytes((PE / "a").read_bytes())
        os.utime(src / "engine.dll", (when, when))
        out.parent.mkdir(exist_ok=True)
        subprocess.run(["gcab", "-c", "-z", "-n", str(out), "engine.dll"], cwd=src, check=True)
        return out

    a = cab(tmp_path / "rel" / "engine.cab", 1_600_000_000)
    b = cab(tmp_path / "reb" / "engine.cab", 1_700_000_000)
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1
    assert regions(artifact(rep, "engine.cab"))["cab.file[engine.dll].mtime"]["kind"] == "timestamp"
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 0, rep
    tail = tmp_path / "tail" / "engine.cab"
    tail.parent.mkdir()
    tail.write_bytes(a.read_bytes() + b"hidden")
    code, rep = report(run_cli, "diff", tail, a)
    assert code == 1
    assert "bytes after the cabinet" in [
        d["detail"] for d in artifact(rep, "engine.cab")["differences"]
    ]


@needs(shutil.which("rpmbuild") is None, reason="rpmbuild missing")
def test_rpm_built_at_two_times_and_a_changed_binary(tmp_path: Path, run_cli) -> None:
    elf = (ELF / "a").read_bytes()
    a = build_rpm(tmp_path, tmp_path / "rel" / "hello.rpm", elf, 1_700_000_000)
    b = build_rpm(tmp_path, tmp_path / "reb" / "hello.rpm", elf, 1_800_000_000)
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1
    outer = regions(artifact(rep, "hello.rpm"))
    assert outer["rpm.header.buildtime"]["kind"] == "timestamp"
    assert outer["rpm.signature.sha256.digest"]["cause"] == "consequence"
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 0, rep
    changed = build_rpm(tmp_path, tmp_path / "chg" / "hello.rpm", (ELF / "b").read_bytes(),
                        1_700_000_000)  # fmt: skip
    code, rep = report(run_cli, "diff", a, changed, "--allow", "archive.mtime")
    assert code == 1
    leaf = artifact(rep, "hello.rpm!./usr/bin/hello")
    assert any(d["region"] == "elf.section[.rodata]" for d in leaf["differences"])
