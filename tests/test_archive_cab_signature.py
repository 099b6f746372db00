"""A signed cabinet against its unsigned rebuild: signature-only, proven like a PE (issue 15).

The cabinets are made by gcab and signed by osslsigncode; osslsigncode's own `verify` is the
oracle for the signed file and for the CAB hash reprover computes from the rebuild.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from archive_support import (
    FIXTURES,
    artifact,
    regions,
    report,
    stored_cab,
    write_cab,
    write_zip,
)
from reprover.compare.archives.cabsig import cab_hash, signed_head, unsigned_layout
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    shutil.which("gcab") is None or shutil.which("osslsigncode") is None,
    reason="gcab and osslsigncode are installed by .ci/apt-packages.txt",
)
SIG = FIXTURES / "signature"
DLL = (FIXTURES / "ledger" / "pe-mingw-timestamp" / "a").read_bytes()
FILES = {"engine.dll": DLL, "readme.txt": b"engine 1.0\n" * 50}
SIGNING = {"cab.header.size", "cab.header.flags", "cab.signature.reserve", "cab.signature"}


@pytest.fixture(scope="module")
def cabs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(unsigned rebuild, the same cabinet signed by osslsigncode), both named x.cab."""
    root = tmp_path_factory.mktemp("cab")
    unsigned = write_cab(root / "unsigned" / "x.cab", FILES)
    (root / "signed").mkdir()
    osslsign(unsigned, root / "signed" / "x.cab", "leaf")
    return unsigned, root / "signed" / "x.cab"


def _oracle_agrees(unsigned: Path, signed: Path) -> None:
    """osslsigncode accepts the signature, and its digest of the signed file is the CAB hash
    reprover computes from the unsigned rebuild alone."""
    done = subprocess.run(["osslsigncode", "verify", "-CAfile", str(SIG / "ca.pem"), "-in",
                           str(signed)], capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Signature verification: ok" in done.stdout
    calculated = re.search(r"Calculated message digest\s*:\s*([0-9A-F]+)", done.stdout)
    assert calculated is not None, done.stdout
    sig_len = signed.stat().st_size - unsigned.stat().st_size - 24
    with unsigned.open("rb") as f:
        layout = unsigned_layout(f, unsigned.stat().st_size)
        head = signed_head(f, layout, sig_len)
        f.seek(layout.coff_files)
        ours = cab_hash(head, iter([f.read()]), "sha256")
    assert ours.hex().upper() == calculated.group(1)


def test_osslsigncode_verifies_the_released_cabinet_and_reprover_hashes_it_alike(cabs) -> None:
    _oracle_agrees(*cabs)


def _next_cabinet_names(cab: bytes, names: bytes = b"disk2.cab\0Disk 2\0") -> bytes:
    """`cab` with the next-cabinet flag and names (a cabinet of a set; its files stay in it)."""
    out = bytearray(cab[:36] + names + cab[36:])
    size, coff, folders, flags = (*struct.unpack_from("<I", out, 8),
                                  *struct.unpack_from("<I", out, 16),
                                  *struct.unpack_from("<HH", out, 26)[:1],
                                  *struct.unpack_from("<H", out, 30))  # fmt: skip
    struct.pack_into("<I", out, 8, size + len(names))
    struct.pack_into("<I", out, 16, coff + len(names))
    struct.pack_into("<H", out, 30, flags | 2)
    for i in range(folders):
        at = 36 + len(names) + 8 * i
        struct.pack_into("<I", out, at, struct.unpack_from("<I", out, at)[0] + len(names))
    return bytes(out)


def _signed_pair(tmp_path: Path, data: bytes) -> tuple[Path, Path]:
    (tmp_path / "reb").mkdir()
    (tmp_path / "rel").mkdir()
    unsigned, signed = tmp_path / "reb" / "x.cab", tmp_path / "rel" / "x.cab"
    unsigned.write_bytes(data)
    osslsign(unsigned, signed, "leaf")
    return unsigned, signed


def test_two_folders_are_signature_only(tmp_path, run_cli) -> None:
    """Every folder's offset moves 24 bytes on when signed."""
    data = stored_cab([(b"engine.dll", DLL[:30000]), (b"readme.txt", FILES["readme.txt"])])
    unsigned, signed = _signed_pair(tmp_path, data)
    _oracle_agrees(unsigned, signed)
    code, rep = report(run_cli, "diff", signed, unsigned, "--allow", "signature")
    assert code == 0, rep
    assert artifact(rep, "x.cab")["verdict"] == "signature-only"
    assert "2 member(s) identical" in artifact(rep, "x.cab")["notes"]


def test_cabinet_of_a_set_is_refused(tmp_path, run_cli) -> None:
    """Next-cabinet names: osslsigncode signs without hashing them but verifies with them, so
    what Windows signs there is unknown; the proof refuses rather than guess."""
    data = _next_cabinet_names(write_cab(tmp_path / "g.cab", FILES).read_bytes())
    unsigned, signed = _signed_pair(tmp_path, data)
    code, rep = report(run_cli, "diff", signed, unsigned, "--allow", "signature")
    assert code == 1, rep
    notes = " ".join(artifact(rep, "x.cab")["notes"])
    assert "signature-only refused: cabinets of a set" in notes


def test_signed_cab_is_signature_only_in_diff_and_sign_check(cabs, run_cli) -> None:
    unsigned, signed = cabs
    code, rep = report(run_cli, "diff", signed, unsigned, "--allow", "signature")
    assert code == 0, rep
    outer = artifact(rep, "x.cab")
    assert outer["verdict"] == "signature-only"
    notes = " ".join(outer["notes"])
    assert "released = rebuilt + CAB Authenticode signature" in notes
    assert 'signed by "CN=reprover test release signer" (signer not pinned)' in notes
    assert set(regions(outer)) == SIGNING
    assert {d["rule"] for d in outer["differences"]} == {"signature"}
    assert [a["path"] for a in rep["artifacts"]] == ["x.cab"]
    code, rep = report(run_cli, "sign-check", unsigned, signed, "--trusted", SIG / "ca.pem")
    assert code == 0, rep
    assert rep["checks"][0]["passed"]
    assert "(chains to pinned trust)" in rep["checks"][0]["detail"]


def test_without_the_signature_rule_it_fails(cabs, run_cli) -> None:
    unsigned, signed = cabs
    code, rep = report(run_cli, "diff", signed, unsigned)
    assert code == 1
    outer = artifact(rep, "x.cab")
    assert outer["verdict"] == "different"
    assert not regions(outer)["cab.signature"]["allowed"]


def test_signer_outside_the_pinned_trust_fails(cabs, run_cli) -> None:
    unsigned, signed = cabs
    code, rep = report(run_cli, "sign-check", unsigned, signed, "--trusted",
                       SIG / "other-ca.pem")  # fmt: skip
    assert code == 1
    assert "do not chain to a pinned certificate" in rep["checks"][0]["detail"]


def test_nested_signature_names_both_signers_and_both_must_chain(cabs, tmp_path, run_cli) -> None:
    unsigned, signed = cabs
    (tmp_path / "rel").mkdir()
    nested = tmp_path / "rel" / "x.cab"
    osslsign(signed, nested, "other-leaf", "-nest")
    code, rep = report(run_cli, "diff", nested, unsigned, "--allow", "signature")
    assert code == 0, rep
    notes = " ".join(artifact(rep, "x.cab")["notes"])
    assert "reprover test release signer" in notes and "nested #0" in notes
    code, rep = report(run_cli, "sign-check", unsigned, nested, "--trusted", SIG / "ca.pem")
    assert code == 1  # the nested signer chains to another CA
    assert "1 of 2 signers do not chain" in rep["checks"][0]["detail"]


def test_cab_inside_a_zip_is_signature_only(cabs, tmp_path, run_cli) -> None:
    unsigned, signed = cabs
    readme = b"install x.cab\n"
    (tmp_path / "reb").mkdir()
    (tmp_path / "rel").mkdir()
    rebuilt = write_zip(tmp_path / "reb" / "bundle.zip",
                        {"README": readme, "x.cab": unsigned.read_bytes()})  # fmt: skip
    released = write_zip(tmp_path / "rel" / "bundle.zip",
                         {"README": readme, "x.cab": signed.read_bytes()})  # fmt: skip
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert code == 0, rep
    assert artifact(rep, "bundle.zip")["verdict"] == "signature-only"
    inner = artifact(rep, "bundle.zip!x.cab")
    assert inner["verdict"] == "signature-only"
    assert any("CN=reprover test release signer" in n for n in inner["notes"])
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", SIG / "ca.pem")
    assert code == 0, rep
    assert "bundle.zip!x.cab" in rep["checks"][0]["detail"]


def test_rfc3161_timestamped_cab_is_signature_only(cabs, tmp_path, run_cli) -> None:
    """An RFC 3161 token (osslsigncode's built-in TSA) belongs to the signature."""
    unsigned, _ = cabs
    (tmp_path / "rel").mkdir()
    stamped = tmp_path / "rel" / "x.cab"
    osslsign(unsigned, stamped, "leaf", "-TSA-certs", str(SIG / "tsa-chain.pem"), "-TSA-key",
             str(SIG / "tsa.key"))  # fmt: skip
    _oracle_agrees(unsigned, stamped)
    code, rep = report(run_cli, "sign-check", unsigned, stamped, "--trusted", SIG / "ca.pem")
    assert code == 0, rep
    assert artifact(rep, "x.cab")["verdict"] == "signature-only"
