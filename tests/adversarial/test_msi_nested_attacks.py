"""Attacks on a signed MSI holding signed DLLs (issue 15, "each layer possibly signed").

The vendor signs a custom-action DLL, packs it into the MSI's `Binary` table (wixl), signs the
MSI (osslsigncode); the rebuild is unsigned. The MSI proof lets a stream differ only when the
driver accepted that stream on its own, and then needs the outer signature over the released
streams. Each attack runs through the real CLI with every rule that could excuse it allowed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import olefile
import pytest

from archive_support import (
    FIXTURES,
    artifact,
    msi_with_helper,
    osslsigncode_verifies,
    pin_summary,
    report,
    sign_msi,
    write_msi,
)
from reprover.compare.archives import msisig
from reprover.compare.archives.limits import Budget, Limits
from reprover.compare.archives.ole import EXTENDED, read_ole
from reprover.errors import VerificationError
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("wixl", "osslsigncode")),
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
CA = FIXTURES / "signature" / "ca.pem"
OTHER_CA = FIXTURES / "signature" / "other-ca.pem"
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
RULES = ("--allow", "signature", "--allow", "archive.mtime", "--allow", "archive.order",
         "--trusted", CA)  # fmt: skip
MEMBER = "setup.msi!Binary.helper"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unsigned rebuild; the helper DLL signed by the pinned signer and by another."""
    root = tmp_path_factory.mktemp("nested")
    (root / "reb").mkdir()
    rebuilt = write_msi(root / "reb" / "setup.msi", DLL.read_bytes(), helper=DLL.read_bytes())
    osslsign(DLL, root / "helper.dll", "leaf")
    osslsign(DLL, root / "other.dll", "other-leaf")
    return {"rebuilt": rebuilt, "helper": root / "helper.dll", "other": root / "other.dll",
            "root": root}  # fmt: skip


def notes(rep: dict, path: str = "setup.msi") -> str:
    return " ".join(artifact(rep, path)["notes"])


def test_inner_dll_signed_by_a_key_outside_the_pinned_trust(built, run_cli) -> None:
    """The MSI's signer is pinned, the DLL's is not: the DLL is not signature-only, so neither
    is the MSI, in `diff` and in `sign-check`."""
    released = msi_with_helper(built["root"] / "other", built["rebuilt"], DLL.read_bytes(),
                               built["other"].read_bytes())  # fmt: skip
    assert osslsigncode_verifies(released)  # the outer signature itself is fine
    code, rep = report(run_cli, "diff", released, built["rebuilt"], *RULES)
    assert code == 1
    assert artifact(rep, MEMBER)["verdict"] == "different"
    assert "do not chain to a pinned certificate" in notes(rep, MEMBER)
    assert artifact(rep, "setup.msi")["verdict"] == "different"
    assert "not accepted on their own: Binary.helper (different)" in notes(rep)
    code, rep = report(run_cli, "sign-check", built["rebuilt"], released, "--trusted", CA)
    assert code == 1
    # pinning the DLL signer's CA too makes both layers pass, each naming its own signer
    code, rep = report(run_cli, "sign-check", built["rebuilt"], released, "--trusted", CA,
                       "--trusted", OTHER_CA)  # fmt: skip
    assert code == 0, rep
    assert "CN=reprover test release signer" in notes(rep)
    assert "CN=unrelated signer" in notes(rep, MEMBER)


def test_inner_stream_that_differs_and_is_not_accepted(built, run_cli) -> None:
    """A helper stream with bytes appended after the signed DLL (not a signature-only DLL):
    the MSI proof is not tried, and the proof itself refuses a stream it was not told is
    accepted, even when the outer signature covers it."""
    tail = built["helper"].read_bytes() + b"payload"
    released = msi_with_helper(built["root"] / "tail", built["rebuilt"], DLL.read_bytes(), tail)
    assert osslsigncode_verifies(released)
    code, rep = report(run_cli, "diff", released, built["rebuilt"], *RULES)
    assert code == 1
    assert artifact(rep, MEMBER)["verdict"] == "different"
    assert "not accepted on their own: Binary.helper (different)" in notes(rep)
    size = released.stat().st_size
    with released.open("rb") as fa, built["rebuilt"].open("rb") as fb:
        listings = (read_ole(fa, size, Budget(Limits(), size)),
                    read_ole(fb, fb.seek(0, 2), Budget(Limits(), size)))  # fmt: skip
        for accepted in (frozenset(), frozenset({"product.cab"})):
            with pytest.raises(VerificationError, match=r"'Binary\.helper' differs from "
                               "the rebuild's and is not accepted on its own"):  # fmt: skip
                msisig.prove_msi_signature_only((released, built["rebuilt"]), listings, (),
                                                accepted)  # fmt: skip


@pytest.mark.parametrize("dse", [False, True], ids=["plain", "extended"])
def test_outer_signature_over_the_rebuilds_streams(built, run_cli, dse) -> None:
    """The MSI signature made over the rebuild (unsigned DLL), attached to the MSI holding the
    signed DLL: every stream and the DLL are fine, but the signature covers other bytes."""
    root = built["root"] / f"transplant-{dse}"
    root.mkdir()
    donor = sign_msi(built["rebuilt"], root / "donor.msi", dse=dse)
    sig = root / "donor.sig"
    subprocess.run(["osslsigncode", "extract-signature", "-in", str(donor), "-out", str(sig)],
                   check=True, capture_output=True)  # fmt: skip
    (root / "unsigned").mkdir()
    unsigned = write_msi(root / "unsigned" / "setup.msi", DLL.read_bytes(),
                         helper=built["helper"].read_bytes())  # fmt: skip
    pin_summary(unsigned, built["rebuilt"])
    (root / "rel").mkdir()
    forged = root / "rel" / "setup.msi"
    subprocess.run(["osslsigncode", "attach-signature", *(["-add-msi-dse"] if dse else []),
                    "-sigin", str(sig), "-in", str(unsigned), "-out", str(forged)],
                   check=False, capture_output=True)  # fmt: skip
    assert forged.exists() and not osslsigncode_verifies(forged)
    code, rep = report(run_cli, "diff", forged, built["rebuilt"], *RULES)
    assert code == 1
    assert artifact(rep, MEMBER)["verdict"] == "signature-only"
    found = notes(rep)
    # osslsigncode writes a fresh pre-hash of the released metadata beside the signature
    assert "signature-only refused: MSI signature: the signed Authenticode sha256" in found
    assert "covers different content" in found


def test_extended_prehash_of_the_rebuilds_metadata(built, run_cli) -> None:
    """The `MsiDigitalSignatureEx` stream overwritten with the pre-hash of the REBUILD's
    metadata (the unsigned DLL's size): the extended signature must cover the released one.
    osslsigncode 2.9 prints the mismatch ("Current" and "Calculated MsiDigitalSignatureEx")
    yet says "Succeeded": it hashes the pre-hash it calculates, not the stream."""
    released = msi_with_helper(built["root"] / "dse", built["rebuilt"], DLL.read_bytes(),
                               built["helper"].read_bytes(), dse=True)  # fmt: skip
    stale = msisig.metadata_prehash(msisig.read_tree(built["rebuilt"]), "sha256")
    with olefile.OleFileIO(str(released), write_mode=True) as ole:
        assert ole.get_size(EXTENDED) == len(stale)
        ole.write_stream(EXTENDED, stale)
    done = subprocess.run(["osslsigncode", "verify", "-CAfile", str(CA), "-in", str(released)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert f"Current MsiDigitalSignatureEx    : {stale.hex().upper()}" in done.stdout
    code, rep = report(run_cli, "diff", released, built["rebuilt"], *RULES)
    assert code == 1
    assert "signature-only refused: MsiDigitalSignatureEx is not the pre-hash of the released " \
        "file's entry metadata" in notes(rep)  # fmt: skip
