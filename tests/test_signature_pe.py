"""Authenticode proofs on real files signed with osslsigncode: what must pass, and the hashes."""

from __future__ import annotations

import json
from pathlib import Path

import lief
import pytest
from cryptography import x509

from reprover.cli import main
from reprover.compare.signatures.authenticode import (
    as_differences,
    label_signature_regions,
    prove_signature_only,
)
from reprover.compare.signatures.pe_certtable import authenticode_hash, pe_checksum, read_layout
from reprover.errors import InputError, VerificationError
from reprover.model import Kind
from signature_support import FIXTURES, fx, osslsign

CA = fx("ca.pem")
OTHER_CA = fx("other-ca.pem")


def test_signed_release_is_rebuilt_plus_signature() -> None:
    proof = prove_signature_only(fx("signed.exe"), fx("unsigned.exe"), trusted=(CA,))
    (signer,) = proof.signers
    assert signer.subject == "CN=reprover test release signer"
    assert signer.issuer == "CN=reprover test code-signing CA"
    assert signer.digest_algorithm == "sha256"
    assert signer.chain[-1].startswith("CN=reprover test code-signing CA")
    assert proof.pinned
    assert proof.checksum_rule.startswith("recomputed")
    regions = {r.region: r for r in proof.regions}
    assert regions["pe.certificate_table[0]"].kind is Kind.SIGNATURE
    assert regions["pe.optional_header.CheckSum"].kind is Kind.CHECKSUM
    size = fx("signed.exe").stat().st_size
    last = max(proof.regions, key=lambda r: r.offset)
    assert last.offset + last.length == size


def test_unpinned_signature_verifies_but_says_so() -> None:
    proof = prove_signature_only(fx("signed.exe"), fx("unsigned.exe"))
    assert not proof.pinned
    assert "signer not pinned" in proof.summary()
    assert proof.signers[0].chain == ()


def test_rfc3161_timestamp_is_verified_and_reported() -> None:
    proof = prove_signature_only(fx("timestamped.exe"), fx("unsigned.exe"), trusted=(CA,))
    (stamp,) = proof.signers[0].countersignatures
    assert stamp.kind == "rfc3161"
    tsa = x509.load_pem_x509_certificate(fx("tsa.pem").read_bytes())
    assert tsa.not_valid_before_utc <= stamp.time <= tsa.not_valid_after_utc
    assert stamp.signer.startswith("CN=reprover test TSA")
    assert stamp.trusted  # the TSA chains to the pinned CA with the timeStamping usage
    assert any(
        f"rfc3161 countersignature at {stamp.time.isoformat()}" in line for line in proof.findings()
    )


def test_timestamp_before_tsa_certificate_is_not_trusted(tmp_path: Path) -> None:
    stamped = tmp_path / "early.exe"
    osslsign(
        fx("unsigned.exe"),
        stamped,
        "leaf",
        "-TSA-certs",
        str(fx("tsa-chain.pem")),
        "-TSA-key",
        str(fx("tsa.key")),
        "-TSA-time",
        "1000000000",
    )
    proof = prove_signature_only(stamped, fx("unsigned.exe"), trusted=(CA,))
    (stamp,) = proof.signers[0].countersignatures
    assert stamp.time.year == 2001
    assert not stamp.trusted


def test_dual_signature_checks_both() -> None:
    proof = prove_signature_only(fx("dual.exe"), fx("unsigned.exe"), trusted=(CA, OTHER_CA))
    assert [s.digest_algorithm for s in proof.signers] == ["sha256", "sha1"]
    assert proof.signers[1].subject == "CN=unrelated signer"
    assert "nested #0" in proof.signers[1].label


def test_nested_signer_is_never_ignored() -> None:
    with pytest.raises(VerificationError, match=r"nested #0.*does not chain to a pinned"):
        prove_signature_only(fx("dual.exe"), fx("unsigned.exe"), trusted=(CA,))


def test_rebuild_not_multiple_of_8_is_padded_like_signing(tmp_path: Path) -> None:
    odd = tmp_path / "odd.exe"
    odd.write_bytes(fx("unsigned.exe").read_bytes() + b"abc")
    signed = tmp_path / "odd-signed.exe"
    osslsign(odd, signed, "leaf")
    proof = prove_signature_only(signed, odd, trusted=(CA,))
    assert any(r.region == "pe.certificate_table.alignment" for r in proof.regions)


@pytest.mark.parametrize("name", ["unsigned.exe", "signed.exe", "dual.exe", "timestamped.exe"])
def test_authenticode_hash_and_checksum_match_lief(name: str) -> None:
    data = fx(name).read_bytes()
    layout = read_layout(data, name)
    binary = lief.PE.parse(str(fx(name)))
    assert authenticode_hash(data, layout, "sha256") == bytes(
        binary.authentihash(lief.PE.ALGORITHMS.SHA_256)
    )
    assert authenticode_hash(data, layout, "sha1") == bytes(
        binary.authentihash(lief.PE.ALGORITHMS.SHA_1)
    )
    assert pe_checksum(data, layout.checksum_offset) == binary.compute_checksum()


def test_unsigned_hash_pads_to_8_unlike_lief(tmp_path: Path) -> None:
    data = fx("unsigned.exe").read_bytes() + b"xyz"
    padded = tmp_path / "padded.exe"
    padded.write_bytes(data + b"\0" * 5)
    expected = bytes(lief.PE.parse(str(padded)).authentihash(lief.PE.ALGORITHMS.SHA_256))
    assert authenticode_hash(data, read_layout(data, "odd"), "sha256") == expected


def test_signed_digest_is_lief_view_of_content() -> None:
    binary = lief.PE.parse(str(fx("signed.exe")))
    proof = prove_signature_only(fx("signed.exe"), fx("unsigned.exe"))
    assert (
        proof.signers[0].content_digest
        == "sha256:" + bytes(binary.signatures[0].content_info.digest).hex()
    )


def test_labels_for_the_ledger() -> None:
    regions = label_signature_regions(fx("signed.exe").read_bytes())
    names = [r.region for r in regions]
    assert names[:3] == [
        "pe.optional_header.CheckSum",
        "pe.data_directory[SECURITY]",
        "pe.certificate_table[0]",
    ]
    diffs = as_differences(regions)
    assert all(not d.allowed for d in diffs)
    assert label_signature_regions(b"not a PE at all") == ()
    broken = fx("signed.exe").read_bytes() + b"junk"
    assert [r.region for r in label_signature_regions(broken)][-1] == "pe.certificate_table"


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        prove_signature_only(tmp_path / "nope.exe", fx("unsigned.exe"))
    with pytest.raises(InputError):
        prove_signature_only(fx("signed.exe"), fx("unsigned.exe"), trusted=(tmp_path / "x",))


def test_cli_sign_check_json(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    argv = ["sign-check", str(fx("unsigned.exe")), str(fx("timestamped.exe"))]
    code = main([*argv, "--trusted", str(CA), "--format", "json", "-o", str(out), "-q"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["verdict"] == "pass"
    (artifact,) = report["artifacts"]
    assert artifact["verdict"] == "signature-only"
    (check,) = report["checks"]
    assert check["name"] == "authenticode"
    assert check["passed"]
    assert any("reprover test release signer" in f for f in check["findings"])


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign-check", str(tmp_path / "missing"), str(fx("signed.exe"))]) == 2
    assert main(["sign-check", str(fx("unsigned.exe")), str(fx("signed.exe"))]) == 0
    assert "signature-only" in capsys.readouterr().out
    assert FIXTURES.is_dir()


def test_microsoft_style_token_and_dual_signature(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 1: an attribute certificate in the token's certificate set (as Microsoft's
    TSA writes it) is parsed, bounded and reported; both signers of a dual signature are
    verified over the same image hash and listed."""
    proof = prove_signature_only(fx("ms-style.exe"), fx("unsigned.exe"), trusted=(CA, OTHER_CA))
    outer, nested = proof.signers
    assert outer.subject == "CN=reprover test release signer"
    assert nested.subject == "CN=unrelated signer"
    assert nested.label == "signature #0 > nested #0"
    assert outer.content_digest == nested.content_digest
    assert all(s.countersignatures[0].kind == "rfc3161" for s in proof.signers)
    assert len(outer.countersignatures[0].attribute_certs) == 1
    assert '2 signers: "CN=reprover test release signer"; "CN=unrelated signer"' in proof.summary()
    assert any("unverified attribute certificate" in line for line in proof.findings())
    argv = ["sign-check", str(fx("unsigned.exe")), str(fx("ms-style.exe"))]
    assert main([*argv, "--trusted", str(CA), "--trusted", str(OTHER_CA)]) == 0


def test_nested_signer_needs_its_own_pin() -> None:
    """With [signature] trusted, every signer must chain to a pin; the error names the missing."""
    with pytest.raises(VerificationError) as caught:
        prove_signature_only(fx("ms-style.exe"), fx("unsigned.exe"), trusted=(CA,))
    message = caught.value.message
    assert message.startswith("1 of 2 signers do not chain to a pinned certificate")
    assert "nested #0: signer CN=unrelated signer" in message
    assert "issued by CN=unrelated test CA" in message
    assert "release signer" not in message


def test_trusted_certificates_as_bytes() -> None:
    """The pipeline passes pinned certificates as bytes read before the build."""
    proof = prove_signature_only(
        fx("ms-style.exe"), fx("unsigned.exe"), trusted=(CA.read_bytes(), OTHER_CA.read_bytes())
    )
    assert proof.pinned


def test_legacy_pkcs9_countersignature_is_verified() -> None:
    """signtool /t style: a PKCS#9 countersignature over the signer's signature, by the TSA."""
    proof = prove_signature_only(fx("legacy-stamped.exe"), fx("unsigned.exe"), trusted=(CA,))
    (stamp,) = proof.signers[0].countersignatures
    assert stamp.kind == "pkcs9-countersignature"
    assert stamp.signer.startswith("CN=reprover test TSA")
    assert stamp.trusted
    unpinned = prove_signature_only(fx("legacy-stamped.exe"), fx("unsigned.exe"))
    assert not unpinned.signers[0].countersignatures[0].trusted
