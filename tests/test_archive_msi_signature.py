"""A signed MSI against its unsigned rebuild: signature-only, proven like a PE (issue 15)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from archive_support import (
    FIXTURES,
    artifact,
    osslsigncode_verifies,
    pkcs7_written_by,
    regions,
    repack_msi,
    report,
    sign_msi,
    write_msi,
)

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("osslsigncode") is None,
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
needs_gsf = pytest.mark.skipif(
    shutil.which("gsf") is None, reason="gsf (libgsf-bin) is installed by .ci/apt-packages.txt"
)
CA = FIXTURES / "signature" / "ca.pem"
OTHER_CA = FIXTURES / "signature" / "other-ca.pem"


@pytest.fixture(scope="module")
def msis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("msi")
    (root / "unsigned").mkdir()
    (root / "signed").mkdir()
    dll = (FIXTURES / "ledger" / "pe-mingw-timestamp" / "a").read_bytes()
    unsigned = write_msi(root / "unsigned" / "setup.msi", dll)
    return unsigned, sign_msi(unsigned, root / "signed" / "setup.msi")


def test_signed_msi_is_signature_only_in_diff_and_sign_check(msis, run_cli) -> None:
    unsigned, signed = msis
    code, rep = report(run_cli, "diff", signed, unsigned, "--allow", "signature")
    assert code == 0, rep
    outer = artifact(rep, "setup.msi")
    assert outer["verdict"] == "signature-only"
    assert any("CN=reprover test release signer" in n for n in outer["notes"])
    assert {d["rule"] for d in outer["differences"]} == {"signature"}
    assert [a["path"] for a in rep["artifacts"]] == ["setup.msi"]
    code, _ = report(run_cli, "diff", signed, unsigned)
    assert code == 1  # without the signature rule the signature stream is a difference
    code, rep = report(run_cli, "sign-check", unsigned, signed, "--trusted", CA)
    assert code == 0, rep
    assert rep["checks"][0]["passed"]


def test_signer_outside_the_pinned_trust_fails(msis, run_cli) -> None:
    unsigned, signed = msis
    code, rep = report(run_cli, "sign-check", unsigned, signed, "--trusted", OTHER_CA)
    assert code == 1
    assert "do not chain to a pinned certificate" in rep["checks"][0]["detail"]


def test_extended_signature_is_signature_only(msis, run_cli, tmp_path: Path) -> None:
    unsigned, _ = msis
    signed = sign_msi(unsigned, tmp_path / "setup.msi", dse=True)
    assert osslsigncode_verifies(signed)
    code, rep = report(run_cli, "sign-check", unsigned, signed, "--trusted", CA)
    assert code == 0, rep
    code, rep = report(run_cli, "diff", signed, unsigned, "--allow", "signature")
    assert code == 0, rep
    outer = artifact(rep, "setup.msi")
    assert outer["verdict"] == "signature-only"
    assert {"ole.stream[%05DigitalSignature]", "ole.stream[%05MsiDigitalSignatureEx]"} <= set(
        regions(outer)
    )
    assert [a["path"] for a in rep["artifacts"]] == ["setup.msi"]
    # a second extended signature nested into the first: both signers, one pre-hash
    (tmp_path / "nested").mkdir()
    nested = sign_msi(signed, tmp_path / "nested" / "setup.msi", signer="other-leaf", dse=True,
                      nest=True)  # fmt: skip
    code, rep = report(run_cli, "diff", nested, unsigned, "--allow", "signature")
    assert code == 0, rep
    notes = " ".join(artifact(rep, "setup.msi")["notes"])
    assert "reprover test release signer" in notes and "nested #0" in notes


@pytest.fixture(scope="module")
def stored(msis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unsigned MSI repacked by libgsf with a storage `Sub` holding two streams."""
    unsigned, _ = msis
    root = tmp_path_factory.mktemp("storage")
    streams = {"inner": b"embedded transform stand-in\n", "zz": b"x" * 5000}
    return repack_msi(unsigned, root / "setup.msi", {"Sub": streams})


@needs_gsf
@pytest.mark.parametrize("dse", [False, True], ids=["plain", "extended"])
def test_msi_with_a_storage_signed_is_signature_only(stored, run_cli, tmp_path, dse) -> None:
    signed = sign_msi(stored, tmp_path / "setup.msi", dse=dse)
    assert osslsigncode_verifies(signed)  # osslsigncode hashes storages: recursively, by name
    code, rep = report(run_cli, "diff", signed, stored, "--allow", "signature")
    assert code == 0, rep
    assert artifact(rep, "setup.msi")["verdict"] == "signature-only"
    code, rep = report(run_cli, "sign-check", stored, signed, "--trusted", CA)
    assert code == 0, rep


@needs_gsf
def test_nested_storages_hashed_as_osslsigncode_verify_does(msis, run_cli, tmp_path) -> None:
    """Storages two deep. osslsigncode 2.9 writes such a file wrongly when it signs it (its
    right-sibling ids skip a nested storage's children), but its PKCS#7 is computed from the
    tree it parsed: put that blob into the same tree with libgsf and both osslsigncode's
    verify and reprover's proof must accept it."""
    unsigned, _ = msis
    tree = {"OuterStorageXYZ": {"inner": b"one\n", "NestedLast": {"x": b"deep\n"}}}
    base = repack_msi(unsigned, tmp_path / "base.msi", tree)
    broken = sign_msi(base, tmp_path / "broken.msi")
    assert not osslsigncode_verifies(broken)  # the writer's bug, as documented in the README
    (tmp_path / "rel").mkdir()
    signed = repack_msi(unsigned, tmp_path / "rel" / "base.msi",
                        {**tree, "\x05DigitalSignature": pkcs7_written_by(broken)})  # fmt: skip
    assert osslsigncode_verifies(signed)
    # libgsf stamps each entry with the time it writes the file: allowed by archive.mtime;
    # and lays it out otherwise than osslsigncode: only archive.order allows that layout
    code, rep = report(
        run_cli, "diff", signed, base, "--allow", "signature", "--allow", "archive.mtime"
    )
    assert code == 1
    assert "not laid out as osslsigncode writes it" in " ".join(artifact(rep, "base.msi")["notes"])
    code, rep = report(run_cli, "diff", signed, base, "--allow", "signature", "--allow",
                       "archive.mtime", "--allow", "archive.order")  # fmt: skip
    assert code == 0, rep
    outer = artifact(rep, "base.msi")
    assert outer["verdict"] == "signature-only"
    assert "ole.stream[OuterStorageXYZ/NestedLast/x].mtime" in regions(outer)


def test_timestamp_of_the_msi_signature_is_listed(msis, run_cli, tmp_path: Path) -> None:
    """osslsigncode -ts (a local RFC 3161 TSA): the report names the timestamp and its TSA."""
    from jar_support import local_tsa

    unsigned, _ = msis
    keys = FIXTURES / "signature"
    stamped = tmp_path / "signed" / "setup.msi"
    stamped.parent.mkdir()
    with local_tsa(tmp_path / "tsa") as url:
        subprocess.run(["osslsigncode", "sign", "-certs", str(keys / "leaf.pem"), "-key",
                        str(keys / "leaf.key"), "-ts", url, "-in", str(unsigned),
                        "-out", str(stamped)], check=True, capture_output=True)  # fmt: skip
    code, rep = report(run_cli, "sign-check", unsigned, stamped, "--trusted", CA)
    assert code == 0, rep
    notes = artifact(rep, "setup.msi")["notes"]
    stamp = [n for n in notes if "rfc3161 countersignature at" in n]
    assert stamp and "CN=reprover test TSA" in stamp[0] and "(pinned)" in stamp[0], notes
