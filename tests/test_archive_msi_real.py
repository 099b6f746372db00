"""A real MSI written by Windows Installer (WiX's test data) signed by osslsigncode.

Windows Installer leaves stale bytes in stream slack and free mini sectors; osslsigncode
rewrites the compound file and zeroes them. Those bytes are hidden in the unsigned rebuild
only, never shipped, so the signed file is still the rebuild plus a signature; hidden bytes
in the released file stay a difference no rule allows.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, report, sign_msi

REAL = FIXTURES / "real-msi" / "wix-shortcuts.msi"
CA = FIXTURES / "signature" / "ca.pem"


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("real-msi")
    (root / "rebuilt").mkdir()
    (root / "released").mkdir()
    unsigned = root / "rebuilt" / "setup.msi"
    shutil.copyfile(REAL, unsigned)
    assert hashlib.sha256(unsigned.read_bytes()).hexdigest().startswith("4868d210")
    return unsigned, sign_msi(unsigned, root / "released" / "setup.msi")


def test_windows_made_msi_signed_by_osslsigncode_is_signature_only(signed, run_cli) -> None:
    unsigned, released = signed
    check = subprocess.run(["osslsigncode", "verify", "-CAfile", str(CA), "-in", str(released)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr  # the real tool's own verdict
    code, rep = report(run_cli, "sign-check", unsigned, released, "--trusted", CA)
    assert code == 0, rep
    outer = artifact(rep, "setup.msi")
    assert outer["verdict"] == "signature-only"
    hidden = [d for d in outer["differences"] if d["region"] == "archive.hidden"]
    assert hidden, "the unsigned MSI's stale bytes are reported"
    assert all(d["detail"].startswith("in the rebuilt file: ") for d in hidden)
    assert all(d["allowed"] and d["rule"] == "signature" for d in hidden)
    assert any("not in the release: signing rewrote the container" in n for n in outer["notes"])


def test_hidden_bytes_in_the_released_msi_are_never_allowed(signed, run_cli, tmp_path) -> None:
    """The same signed MSI with one more sector of data after its last one: the extra bytes
    are in the file people get, so they stay hidden data, signature or not."""
    unsigned, released = signed
    (tmp_path / "released").mkdir()
    forged = tmp_path / "released" / "setup.msi"
    forged.write_bytes(released.read_bytes() + b"payload!" * 64)
    code, rep = report(run_cli, "sign-check", unsigned, forged, "--trusted", CA)
    assert code == 1, rep
    outer = artifact(rep, "setup.msi")
    assert outer["verdict"] == "different"
    assert any(
        d["region"] == "archive.hidden" and not d["allowed"]
        and not d["detail"].startswith("in the rebuilt file")
        for d in outer["differences"]
    )  # fmt: skip


def test_stale_rebuilt_bytes_are_not_allowed_without_a_signature(signed, run_cli) -> None:
    """Rebuilt-only hidden bytes are an effect of signing only: `diff` without the signature
    rule, or against the unsigned file itself rewritten, still reports them."""
    unsigned, released = signed
    code, rep = report(run_cli, "diff", released, unsigned, "--allow", "archive.order")
    assert code == 1
    assert artifact(rep, "setup.msi")["verdict"] == "different"
