"""Signed DLLs inside a signed MSI (issue 15, "each layer possibly signed").

The vendor signs a custom-action DLL, packs it into the MSI's `Binary` table (wixl), then signs
the MSI (osslsigncode); the rebuild has no keys, so its DLL and MSI are unsigned. The MSI proof
then takes the DLL's own proof (`signature-only`) as given for that stream and checks that the
outer signature covers the released streams, signed DLL included. Attacks on it are in
`tests/adversarial/test_msi_nested_attacks.py`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archive_support import (
    FIXTURES,
    artifact,
    flip_code_byte,
    msi_with_helper,
    osslsigncode_verifies,
    regions,
    report,
    write_msi,
)
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("osslsigncode") is None,
    reason="wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
CA = FIXTURES / "signature" / "ca.pem"
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
MEMBER = "setup.msi!Binary.helper"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unsigned rebuild, and releases whose helper DLL is signed (plain and extended MSI
    signature) or signed after one code byte was flipped."""
    root = tmp_path_factory.mktemp("nested")
    dll = DLL.read_bytes()
    (root / "reb").mkdir()
    rebuilt = write_msi(root / "reb" / "setup.msi", dll, helper=dll)
    (root / "flipped.dll").write_bytes(flip_code_byte(dll))
    osslsign(DLL, root / "helper.dll", "leaf")
    osslsign(root / "flipped.dll", root / "flipped-signed.dll", "leaf")
    helper = (root / "helper.dll").read_bytes()
    flipped = (root / "flipped-signed.dll").read_bytes()
    return {
        "rebuilt": rebuilt,
        "plain": msi_with_helper(root / "plain", rebuilt, dll, helper),
        "extended": msi_with_helper(root / "extended", rebuilt, dll, helper, dse=True),
        "flipped": msi_with_helper(root / "flipped", rebuilt, dll, flipped),
    }


@pytest.mark.parametrize("kind", ["plain", "extended"])
def test_signed_dll_in_the_binary_table_of_a_signed_msi(built, kind, run_cli) -> None:
    released, rebuilt = built[kind], built["rebuilt"]
    assert osslsigncode_verifies(released)
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature",
                       "--trusted", CA)  # fmt: skip
    assert code == 0, rep
    outer, inner = artifact(rep, "setup.msi"), artifact(rep, MEMBER)
    assert (outer["verdict"], inner["verdict"]) == ("signature-only", "signature-only")
    assert [a["path"] for a in rep["artifacts"]] == ["setup.msi", MEMBER]
    found = regions(outer)
    assert found["ole.stream[Binary.helper].data"]["rule"] == "member signature-only"
    assert {d["rule"] for d in outer["differences"]} == {"signature", "member signature-only"}
    outer_notes, inner_notes = " ".join(outer["notes"]), " ".join(inner["notes"])
    # every signer at its own layer: the MSI's at the MSI, the DLL's at the DLL
    assert "released = rebuilt + MSI Authenticode signature" in outer_notes
    assert 'MSI signature: subject "CN=reprover test release signer"' in outer_notes
    assert "covers the released bytes of member(s) that differ" in outer_notes
    assert f"Binary.helper (signature-only: see {MEMBER})" in outer_notes
    assert "released = rebuilt + Authenticode signature" in inner_notes
    assert 'signature #0: subject "CN=reprover test release signer"' in inner_notes
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", CA)
    assert code == 0, rep
    check = rep["checks"][0]
    assert check["passed"]
    assert check["detail"].startswith("released = rebuilt + MSI Authenticode signature")
    assert any(f.startswith(f"{MEMBER}: signature-only: released = rebuilt + Authenticode")
               for f in check["findings"])  # fmt: skip


def test_signed_dll_with_a_code_byte_flipped(built, run_cli) -> None:
    """The DLL's signature is valid but its code is not the rebuild's: the DLL is `different`
    with its PE region, and the MSI's signature cannot excuse it."""
    released, rebuilt = built["flipped"], built["rebuilt"]
    assert osslsigncode_verifies(released)
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature",
                       "--trusted", CA)  # fmt: skip
    assert code == 1
    outer, inner = artifact(rep, "setup.msi"), artifact(rep, MEMBER)
    assert (outer["verdict"], inner["verdict"]) == ("different", "different")
    assert any(r.startswith("pe.section[.text]") and not d["allowed"]
               for r, d in regions(inner).items())  # fmt: skip
    notes = " ".join(outer["notes"])
    assert "signature-only not proven: member(s) differ and are not accepted on their own: " \
        "Binary.helper (different)" in notes  # fmt: skip
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", CA)
    assert code == 1
    assert rep["checks"][0]["detail"].startswith("signature-only not proven")


@pytest.mark.parametrize("fmt", ["rpm"])
def test_provers_without_nested_support_refuse_differing_members(fmt, tmp_path) -> None:
    """The RPM proof covers only a payload equal to the rebuild's: given a member that
    differs (accepted on its own), it refuses before reading anything, saying why. (The JAR
    proof refuses such a member itself, naming its manifest digest:
    `test_jar_signature_attacks::test_digests_of_released_content_not_rebuilt_content`; the
    CAB proof supports it: `tests/test_archive_cab_gcab.py`.)"""
    from reprover.compare.archives.listing import Listing
    from reprover.compare.archives.signing import PROVERS, Given
    from reprover.errors import VerificationError

    files = (tmp_path / "absent-released", tmp_path / "absent-rebuilt")
    listing = Listing(fmt, f"{fmt}.entry")
    with pytest.raises(VerificationError, match=r"'engine\.dll' differ\(s\) .* not proven for "
                       "this format"):  # fmt: skip
        PROVERS[fmt].prove(files, (listing, listing), (), Given(frozenset({"engine.dll"})))


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The vendor's whole flow: engine.dll (in product.cab) and the custom-action helper DLL
    signed, packed by wixl, the MSI signed (plain and extended); the unsigned rebuild; and a
    release whose signed engine.dll has a code byte flipped."""
    root = tmp_path_factory.mktemp("packed")
    dll = DLL.read_bytes()
    (root / "reb").mkdir()
    rebuilt = write_msi(root / "reb" / "setup.msi", dll, helper=dll)
    (root / "flipped.dll").write_bytes(flip_code_byte(dll))
    osslsign(DLL, root / "signed.dll", "leaf")
    osslsign(root / "flipped.dll", root / "flipped-signed.dll", "leaf")
    signed = (root / "signed.dll").read_bytes()
    flipped = (root / "flipped-signed.dll").read_bytes()
    return {
        "rebuilt": rebuilt,
        "plain": msi_with_helper(root / "plain", rebuilt, signed, signed),
        "extended": msi_with_helper(root / "extended", rebuilt, signed, signed, dse=True),
        "flipped": msi_with_helper(root / "flipped", rebuilt, flipped, signed),
    }


@pytest.mark.parametrize("kind", ["plain", "extended"])
def test_signed_engine_in_product_cab_and_signed_helper_in_a_signed_msi(
    packed, kind, run_cli
) -> None:
    """Three signed layers against the unsigned rebuild: every DLL, the cabinet (gcab's
    blocks), the tables restating engine.dll (`!File`, `!MsiFileHash`) and the MSI."""
    released, rebuilt = packed[kind], packed["rebuilt"]
    assert osslsigncode_verifies(released)
    for command in (("diff", released, rebuilt, "--allow", "signature"),
                    ("sign-check", rebuilt, released)):  # fmt: skip
        code, rep = report(run_cli, *command, "--trusted", CA)
        assert code == 0, rep
        verdicts = {a["path"]: a["verdict"] for a in rep["artifacts"]}
        assert verdicts == {
            "setup.msi": "signature-only",
            "setup.msi!product.cab": "signature-only",
            "setup.msi!product.cab!engine.dll": "signature-only",
            MEMBER: "signature-only",
            "setup.msi!%21File": "equivalent",
            "setup.msi!%21MsiFileHash": "equivalent",
        }, verdicts
        notes = " ".join(artifact(rep, "setup.msi")["notes"])
        assert "released = rebuilt + MSI Authenticode signature" in notes
        for inner in ("setup.msi!product.cab!engine.dll", MEMBER):
            assert "released = rebuilt + Authenticode signature" in " ".join(
                artifact(rep, inner)["notes"]
            )


def test_signed_engine_with_a_code_byte_flipped_in_a_signed_msi(packed, run_cli) -> None:
    """engine.dll signed after a code byte was flipped: named three layers down with its PE
    region; the cabinet, the tables and the MSI are not proven."""
    code, rep = report(run_cli, "diff", packed["flipped"], packed["rebuilt"], "--allow",
                       "signature", "--trusted", CA)  # fmt: skip
    assert code == 1
    leaf = artifact(rep, "setup.msi!product.cab!engine.dll")
    assert leaf["verdict"] == "different"
    assert any(d["region"].startswith("pe.section[.text]") and not d["allowed"]
               for d in leaf["differences"])  # fmt: skip
    assert artifact(rep, "setup.msi")["verdict"] == "different"
    assert artifact(rep, MEMBER)["verdict"] == "signature-only"  # the helper is fine
