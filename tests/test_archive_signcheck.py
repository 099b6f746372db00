"""`sign-check` on archives: a bundle of signed files against the bundle of their rebuilds."""

from __future__ import annotations

from pathlib import Path

from archive_support import FIXTURES, artifact, flip_code_byte, report, write_zip

SIG = FIXTURES / "signature"
README = b"release notes\n" * 20


def _bundles(root: Path, signed_exe: bytes, unsigned_exe: bytes) -> tuple[Path, Path]:
    (root / "rebuilt").mkdir()
    (root / "released").mkdir()
    rebuilt = write_zip(root / "rebuilt" / "bundle.zip",
                        {"README": README, "bin/app.exe": unsigned_exe})  # fmt: skip
    released = write_zip(root / "released" / "bundle.zip",
                         {"README": README, "bin/app.exe": signed_exe})  # fmt: skip
    return rebuilt, released


def test_zip_of_a_signed_exe_is_signature_only(tmp_path: Path, run_cli) -> None:
    rebuilt, released = _bundles(
        tmp_path, (SIG / "signed.exe").read_bytes(), (SIG / "unsigned.exe").read_bytes()
    )
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", SIG / "ca.pem")
    assert code == 0, rep
    assert rep["checks"][0]["passed"]
    assert "bundle.zip!bin/app.exe" in rep["checks"][0]["detail"]
    assert artifact(rep, "bundle.zip")["verdict"] == "signature-only"
    assert artifact(rep, "bundle.zip!bin/app.exe")["verdict"] == "signature-only"
    code, rep = report(run_cli, "diff", released, rebuilt)
    assert code == 1  # `diff` allows no signature unless told


def test_zip_whose_signed_exe_also_changed_code_fails(tmp_path: Path, run_cli) -> None:
    unsigned = flip_code_byte((SIG / "unsigned.exe").read_bytes())
    rebuilt, released = _bundles(tmp_path, (SIG / "signed.exe").read_bytes(), unsigned)
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", SIG / "ca.pem")
    assert code == 1, rep
    assert not rep["checks"][0]["passed"]
    assert artifact(rep, "bundle.zip!bin/app.exe")["verdict"] == "different"
    [member] = [f for f in rep["checks"][0]["findings"] if f.startswith("bundle.zip!bin/app.exe")]
    assert member.startswith("bundle.zip!bin/app.exe: different: signature-only refused: ")


def test_zip_with_an_unsigned_change_beside_a_signed_exe_fails(tmp_path: Path, run_cli) -> None:
    rebuilt, released = _bundles(
        tmp_path, (SIG / "signed.exe").read_bytes(), (SIG / "unsigned.exe").read_bytes()
    )
    write_zip(released, {"README": README + b"!", "bin/app.exe": (SIG / "signed.exe").read_bytes()})
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", SIG / "ca.pem")
    assert code == 1, rep
    assert artifact(rep, "bundle.zip")["verdict"] == "different"


def test_elf_is_refused_as_bad_input(tmp_path: Path, run_cli) -> None:
    elf = tmp_path / "a.elf"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    code, _out, err = run_cli("sign-check", elf, elf)
    assert code == 2
    assert "ELF" in err
