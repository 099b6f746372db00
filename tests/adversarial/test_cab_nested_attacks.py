"""Attacks on a signed cabinet holding signed DLLs (issue 15, "each layer possibly signed").

The vendor signs the DLL, packs it with gcab, signs the cabinet with osslsigncode; the rebuild
is unsigned. The cabinet proof then holds the released cabinet to what signing makes of its
own unsigned form and the signature to the released bytes; the DLL must be accepted on its
own. Each attack runs through the real CLI.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, flip_code_byte, report, write_cab
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    shutil.which("gcab") is None or shutil.which("osslsigncode") is None,
    reason="gcab and osslsigncode are installed by .ci/apt-packages.txt",
)
CA = FIXTURES / "signature" / "ca.pem"
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
RULES = ("--allow", "signature", "--allow", "archive.mtime", "--allow", "archive.order",
         "--trusted", CA)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unsigned rebuild, gcab's cabinet of the signed DLL before and after signing."""
    root = tmp_path_factory.mktemp("cabs")
    osslsign(DLL, root / "engine.dll", "leaf")
    rebuilt = write_cab(root / "reb" / "x.cab", {"engine.dll": DLL.read_bytes()})
    inner = write_cab(root / "pre" / "x.cab", {"engine.dll": (root / "engine.dll").read_bytes()})
    (root / "rel").mkdir()
    osslsign(inner, root / "rel" / "x.cab", "leaf")
    return {"root": root, "rebuilt": rebuilt, "inner": inner, "released": root / "rel" / "x.cab"}


def notes(rep: dict, path: str = "x.cab") -> str:
    return " ".join(artifact(rep, path)["notes"])


def test_cabinet_signature_made_over_the_rebuild(built, tmp_path, run_cli) -> None:
    """The cabinet signature of the rebuild (unsigned DLL) attached to the cabinet holding the
    signed DLL: the DLL passes on its own, the signature covers other bytes."""
    donor = tmp_path / "donor.cab"
    osslsign(built["rebuilt"], donor, "leaf")
    sig = tmp_path / "donor.sig"
    subprocess.run(["osslsigncode", "extract-signature", "-in", str(donor), "-out", str(sig)],
                   check=True, capture_output=True)  # fmt: skip
    (tmp_path / "rel").mkdir()
    forged = tmp_path / "rel" / "x.cab"
    subprocess.run(["osslsigncode", "attach-signature", "-sigin", str(sig), "-in",
                    str(built["inner"]), "-out", str(forged)], check=False,
                   capture_output=True)  # fmt: skip
    assert forged.exists()
    code, rep = report(run_cli, "diff", forged, built["rebuilt"], *RULES)
    assert code == 1
    assert artifact(rep, "x.cab!engine.dll")["verdict"] == "signature-only"
    assert "signature-only refused: CAB signature" in notes(rep)
    assert "covers different content" in notes(rep)


def test_reserve_bytes_the_hash_skips_changed(built, tmp_path, run_cli) -> None:
    """A byte of the signature reserve's eight zero bytes set (the CAB hash skips it, so
    osslsigncode still verifies): not what osslsigncode writes into the released cabinet."""
    data = bytearray(built["released"].read_bytes())
    data[53] = 0x42
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "x.cab").write_bytes(bytes(data))
    code, rep = report(run_cli, "diff", tmp_path / "rel" / "x.cab", built["rebuilt"], *RULES)
    assert code == 1
    assert "differs from its own header as signed at offset 53 (the signature reserve's zero " \
        "bytes)" in notes(rep)  # fmt: skip


def test_signed_dll_with_a_code_byte_flipped_in_a_signed_cabinet(built, tmp_path, run_cli) -> None:
    """The DLL signed after a code byte was flipped: `different` with its PE region; the
    cabinet's signature is never tried."""
    (tmp_path / "flipped.dll").write_bytes(flip_code_byte(DLL.read_bytes()))
    osslsign(tmp_path / "flipped.dll", tmp_path / "engine.dll", "leaf")
    inner = write_cab(tmp_path / "pre" / "x.cab",
                      {"engine.dll": (tmp_path / "engine.dll").read_bytes()})  # fmt: skip
    (tmp_path / "rel").mkdir()
    osslsign(inner, tmp_path / "rel" / "x.cab", "leaf")
    code, rep = report(run_cli, "diff", tmp_path / "rel" / "x.cab", built["rebuilt"], *RULES)
    assert code == 1
    member = artifact(rep, "x.cab!engine.dll")
    assert member["verdict"] == "different"
    assert any(d["region"].startswith("pe.section[.text]") and not d["allowed"]
               for d in member["differences"])  # fmt: skip
    assert "not accepted on their own: engine.dll (different)" in notes(rep)
