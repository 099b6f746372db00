"""A signed MSI against its unsigned rebuild: signature-only, proven like a PE (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, report, sign_msi, write_msi

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("osslsigncode") is None,
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
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
