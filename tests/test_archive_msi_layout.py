"""A signed MSI's compound-file layout is the one osslsigncode writes (`msilayout`, issue 15).

Real osslsigncode output only: a Windows-made MSI (a real red-black directory tree, whose
reading order is not the sorted one) signed, then a second signature nested into it (the
second pass reads the file osslsigncode wrote, in its own order); a large MSI osslsigncode
writes anew with 4096-byte sectors (version 4); the port against the writer's output for
every fixture kind. Attacks on the layout: `tests/adversarial/test_msi_layout_attacks.py`.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, osslsigncode_verifies, report, sign_msi, write_msi
from reprover.compare.archives.msilayout import read_input, require_signer_layout

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("osslsigncode") is None,
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
REAL = FIXTURES / "real-msi" / "wix-shortcuts.msi"
CAS = ("--trusted", FIXTURES / "signature" / "ca.pem",
       "--trusted", FIXTURES / "signature" / "other-ca.pem")  # fmt: skip


def _in(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "setup.msi"


@pytest.mark.parametrize("dse", [False, True], ids=["plain", "extended"])
def test_nested_signature_on_a_windows_made_msi_is_signature_only(
    tmp_path: Path, run_cli, dse: bool
) -> None:
    """`-nest` rewrites the file osslsigncode wrote, whose tree is its sorted list, not the
    Windows-made rebuild's red-black tree: the second pass's order is osslsigncode's own."""
    rebuilt = _in(tmp_path / "rebuilt")
    shutil.copyfile(REAL, rebuilt)
    once = sign_msi(rebuilt, _in(tmp_path / "once"), dse=dse)
    nested = sign_msi(once, _in(tmp_path / "nested"), signer="other-leaf", dse=dse, nest=True)
    assert osslsigncode_verifies(nested)
    for released in (once, nested):
        code, rep = report(run_cli, "sign-check", rebuilt, released, *CAS)
        assert code == 0, rep
        assert artifact(rep, "setup.msi")["verdict"] == "signature-only"


def test_large_msi_is_written_as_version_4_and_is_signature_only(tmp_path: Path, run_cli) -> None:
    """Over 7,143,936 bytes with its signature, osslsigncode writes 4096-byte sectors (header
    version 4, a directory sector count); the layout check follows its rule."""
    rng = random.Random(4)  # noqa: S311 - incompressible test data, not secrets
    rebuilt = write_msi(_in(tmp_path / "rebuilt"), rng.randbytes(7_200_000))
    assert rebuilt.stat().st_size > 7_143_936
    assert read_input(rebuilt).sector == 512
    released = sign_msi(rebuilt, _in(tmp_path / "released"))
    assert read_input(released).sector == 4096
    assert released.read_bytes()[0x1A:0x1C] == b"\x04\x00"
    require_signer_layout(released, rebuilt)
    code, rep = report(run_cli, "sign-check", rebuilt, released, *CAS)
    assert code == 0, rep
    assert artifact(rep, "setup.msi")["verdict"] == "signature-only"


def test_the_port_matches_osslsigncode_signing_a_wixl_msi(tmp_path: Path) -> None:
    """Plain, extended and nested signatures of one wixl MSI: each is the port's file."""
    rng = random.Random(5)  # noqa: S311 - incompressible test data, not secrets
    rebuilt = write_msi(_in(tmp_path / "rebuilt"), rng.randbytes(40_000),
                        helper=rng.randbytes(9_000))  # fmt: skip
    plain = sign_msi(rebuilt, _in(tmp_path / "plain"))
    extended = sign_msi(rebuilt, _in(tmp_path / "extended"), dse=True)
    nested = sign_msi(extended, _in(tmp_path / "nested"), dse=True, nest=True)
    for released in (plain, extended, nested):
        require_signer_layout(released, rebuilt)
