"""Members restating other members' digests (wheel RECORD, Debian md5sums), through the CLI.

Released: the package with its PE signed by osslsigncode and the restating line updated as the
packaging tool writes it; rebuilt: the unsigned build. The PE is `signature-only` under
`--allow signature`, so its restated digest is a consequence: the restating member is
`equivalent` and names the member that explains it. The attacks are in
tests/adversarial/test_restated_attacks.py.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import zipfile
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, report, write_tar, write_zip
from restated_support import (
    DLL,
    MSI_DLL,
    PYD,
    RECORD,
    WHEEL,
    build_deb,
    build_msis,
    msi_table,
    pyd,
    rewheel,
    sign,
    small_pe,
    with_member,
)

W = WHEEL.name


def _unallowed(rep: dict) -> list[tuple[str, str]]:
    return [(a["path"], d["region"]) for a in rep["artifacts"] for d in a["differences"]
            if not d["allowed"]]  # fmt: skip


def test_a_wheel_with_its_pyd_signed_is_signature_only(tmp_path: Path, run_cli) -> None:
    (tmp_path / "rel").mkdir()
    released = rewheel(tmp_path / "rel" / W, {PYD: sign(pyd(), tmp_path)})
    code, rep = report(run_cli, "diff", released, WHEEL, "--allow", "signature")
    assert code == 0, _unallowed(rep)
    assert artifact(rep, W)["verdict"] == "signature-only"
    assert artifact(rep, f"{W}!{PYD}")["verdict"] == "signature-only"
    record = artifact(rep, f"{W}!{RECORD}")
    assert record["verdict"] == "equivalent"
    [line] = record["differences"]
    assert line["region"] == f"RECORD[{PYD}]"
    assert line["cause"] == "consequence"
    assert line["rule"] == f"restates {W}!{PYD} (signature-only)"
    # without the rule the PE is not accepted, so neither is its restated digest
    code, rep = report(run_cli, "diff", released, WHEEL)
    assert code == 1
    record = artifact(rep, f"{W}!{RECORD}")
    assert record["verdict"] == "different"
    assert any("not accepted" in n for n in record["notes"])
    code, rep = report(run_cli, "sign-check", WHEEL, released)
    assert code == 0, _unallowed(rep)


def test_a_deb_with_its_dll_signed_is_signature_only(tmp_path: Path, run_cli) -> None:
    pe = small_pe()
    rebuilt = build_deb(tmp_path / "rebuilt.deb", tmp_path, pe)
    released = build_deb(tmp_path / "released.deb", tmp_path, sign(pe, tmp_path))
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert code == 0, _unallowed(rep)
    assert artifact(rep, "released.deb")["verdict"] == "signature-only"
    md5sums = artifact(rep, "released.deb!control.tar.xz!./md5sums")
    assert md5sums["verdict"] == "equivalent"
    [line] = md5sums["differences"]
    assert line["region"] == f"md5sums[{DLL}]"
    assert line["rule"] == f"restates released.deb!data.tar.xz!./{DLL} (signature-only)"
    # members are reported in the package's order, though md5sums was compared last
    paths = [a["path"] for a in rep["artifacts"]]
    assert paths.index("released.deb!control.tar.xz") < paths.index("released.deb!data.tar.xz")


def test_a_wheel_holding_an_archive_built_at_another_time(tmp_path: Path, run_cli) -> None:
    """An inner tar rebuilt at another time is equivalent under archive.mtime: its RECORD row
    follows it, and the package passes with that rule alone."""
    files = {"a.txt": b"a\n", "b.txt": b"b\n"}
    inner = {t: write_tar(tmp_path / f"{t}.tar", files, mtime=t).read_bytes()
             for t in (1_600_000_000, 1_700_000_000)}  # fmt: skip
    name = "markupsafe/data.tar"
    rebuilt, released = tmp_path / "rebuilt.whl", tmp_path / "released.whl"
    with_member(WHEEL, tmp_path / "base.whl", name, b"")
    rewheel(rebuilt, {name: inner[1_600_000_000]}, src=tmp_path / "base.whl")
    rewheel(released, {name: inner[1_700_000_000]}, src=tmp_path / "base.whl")
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "archive.mtime")
    assert code == 0, _unallowed(rep)
    record = artifact(rep, f"released.whl!{RECORD}")
    assert record["verdict"] == "equivalent"
    assert {d["rule"] for d in record["differences"]} == {
        f"restates released.whl!{name} (equivalent)"
    }


@pytest.mark.skipif(shutil.which("wixl") is None, reason="wixl is in .ci/apt-packages.txt")
def test_a_signed_msi_with_its_cab_dll_signed_is_signature_only(tmp_path: Path, run_cli) -> None:
    """The File table's FileSize and MsiFileHash's MD5 of engine.dll follow its signature."""
    signed = sign(MSI_DLL.read_bytes(), tmp_path)
    released, rebuilt = build_msis(tmp_path, signed)
    # the oracle: msitools reads the size and the MD5 (four little-endian i4) of the signed DLL
    assert msi_table(released, "File")[0][3] == str(len(signed))
    parts = struct.unpack("<4i", hashlib.md5(signed).digest())  # noqa: S324 - MSI's
    assert msi_table(released, "MsiFileHash")[0][2:] == [str(p) for p in parts]
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature",
                       "--trusted", FIXTURES / "signature" / "ca.pem")  # fmt: skip
    assert code == 0, _unallowed(rep)
    assert artifact(rep, "setup.msi")["verdict"] == "signature-only"
    assert artifact(rep, "setup.msi!product.cab!engine.dll")["verdict"] == "signature-only"
    dll = "setup.msi!product.cab!engine.dll"
    for stream, cells in (
        ("%21File", ["FileSize"]),
        ("%21MsiFileHash", [f"HashPart{n}" for n in range(1, 5)]),
    ):
        table = artifact(rep, f"setup.msi!{stream}")
        assert table["verdict"] == "equivalent"
        name = stream.removeprefix("%21")
        assert [d["region"] for d in table["differences"]] == [
            f"msi.{name}[engine.dll].{c}" for c in cells
        ]
        assert {d["rule"] for d in table["differences"]} == {f"restates {dll} (signature-only)"}
    code, rep = report(run_cli, "sign-check", rebuilt, released)
    assert code == 0, _unallowed(rep)


@pytest.mark.skipif(shutil.which("wixl") is None, reason="wixl is in .ci/apt-packages.txt")
def test_a_bundle_of_a_deb_and_an_msi_each_with_a_signed_dll(tmp_path: Path, run_cli) -> None:
    """Scopes at any depth: bundle.zip!engine.deb and bundle.zip!setup.msi each explain their
    own restating members; the bundle is signature-only."""
    pe, dll = small_pe(), MSI_DLL.read_bytes()
    msis = build_msis(tmp_path / "msi", sign(dll, tmp_path / "s1"))
    debs = (build_deb(tmp_path / "rel.deb", tmp_path, sign(pe, tmp_path / "s2")),
            build_deb(tmp_path / "reb.deb", tmp_path, pe))  # fmt: skip
    bundles = [write_zip(tmp_path / f"{side}.zip", {"engine.deb": debs[i].read_bytes(),
                                                     "setup.msi": msis[i].read_bytes()})
               for i, side in enumerate(("released", "rebuilt"))]  # fmt: skip
    code, rep = report(run_cli, "diff", *bundles, "--allow", "signature")
    assert code == 0, _unallowed(rep)
    assert artifact(rep, "released.zip")["verdict"] == "signature-only"
    for restating in ("engine.deb!control.tar.xz!./md5sums", "setup.msi!%21File",
                      "setup.msi!%21MsiFileHash"):  # fmt: skip
        assert artifact(rep, f"released.zip!{restating}")["verdict"] == "equivalent"


def test_a_manylinux_wheel_whose_record_auditwheel_wrote_in_crlf(tmp_path: Path,
                                                                  run_cli) -> None:  # fmt: skip
    """auditwheel rewrites RECORD with csv's default CR LF (markupsafe's real manylinux wheel):
    a line restated in CR LF is explained like one in LF."""
    manylinux = next(FIXTURES.glob("real-packages/markupsafe-*manylinux*.whl"))
    with zipfile.ZipFile(manylinux) as z:
        assert b"\r\n" in z.read(RECORD)
    files = {"a.txt": b"a\n"}
    inner = {t: write_tar(tmp_path / f"{t}.tar", files, mtime=t).read_bytes()
             for t in (1_600_000_000, 1_700_000_000)}  # fmt: skip
    name = "markupsafe/data.tar"
    with_member(manylinux, tmp_path / "base.whl", name, b"")
    rebuilt = rewheel(
        tmp_path / "rebuilt.whl", {name: inner[1_600_000_000]}, src=tmp_path / "base.whl"
    )
    released = rewheel(tmp_path / "released.whl", {name: inner[1_700_000_000]},
                       src=tmp_path / "base.whl")  # fmt: skip
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "archive.mtime")
    assert code == 0, _unallowed(rep)
    [line] = artifact(rep, f"released.whl!{RECORD}")["differences"]
    assert line["region"] == f"RECORD[{name}]"


def test_a_member_not_decided_leaves_its_line_inconclusive(tmp_path: Path) -> None:
    """A member cut short by a limit is neither accepted nor refused: the RECORD line naming it
    is not explained, and the RECORD is `inconclusive` (never a pass, never a false fail)."""
    from reprover.compare.archives.restated import Changed, Scope, resolve
    from reprover.model import ArtifactResult, ArtifactVerdict

    with zipfile.ZipFile(WHEEL) as z:
        rebuilt_record = z.read(RECORD)
        names = set(z.namelist())
    signed = sign(pyd(), tmp_path)
    rewheel(tmp_path / "released.whl", {PYD: signed})
    with zipfile.ZipFile(tmp_path / "released.whl") as z:
        (tmp_path / "a").write_bytes(z.read(RECORD))
    (tmp_path / "b").write_bytes(rebuilt_record)
    scope = Scope("record", "x.whl", names=(names, set(names)))
    scope.register(PYD, Changed(f"x.whl!{PYD}", ArtifactVerdict.INCONCLUSIVE))
    result = ArtifactResult(f"x.whl!{RECORD}", ArtifactVerdict.DIFFERENT, None, None)
    out = resolve(scope, RECORD, result, (tmp_path / "a", tmp_path / "b"))
    assert out.verdict is ArtifactVerdict.INCONCLUSIVE
    assert any("is not decided" in n for n in out.notes)
