"""A signed RPM against its unsigned rebuild: signature-only, by a pinned OpenPGP key (#15).

Real rpmbuild, real `rpmsign --addsign` with a fresh key in a throwaway GnuPG home, and
`rpmkeys -K` with a private rpm database as the oracle of what rpm itself accepts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, report
from conftest import git
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import VerificationError
from rpm_support import Rpms, rpmkeys_check, rpms

__all__ = ["rpms"]
CA = FIXTURES / "signature" / "ca.pem"


def _notes(rep: object) -> str:
    return "\n".join(artifact(rep, "hello.rpm")["notes"])


def test_signed_rpm_is_signature_only_in_diff_and_sign_check(rpms: Rpms, run_cli) -> None:
    key = rpms.signer.public
    assert ": OK" in rpmkeys_check(rpms.signed, key, rpms.root / "db-ok")  # rpm agrees
    code, rep = report(run_cli, "diff", rpms.signed, rpms.unsigned, "--allow", "signature",
                       "--trusted", key)  # fmt: skip
    assert code == 0, _notes(rep)
    outer = artifact(rep, "hello.rpm")
    assert outer["verdict"] == "signature-only"
    assert {d["rule"] for d in outer["differences"]} == {"signature"}
    assert "rpm.signature.rsa" in {d["region"] for d in outer["differences"]}
    notes = _notes(rep)
    assert "Release Signer <release@example.com>" in notes
    assert rpms.signer.fingerprint in notes
    assert "RPM RSA signature (tag 268, over the main header; RSA with SHA512)" in notes
    code, rep = report(run_cli, "sign-check", rpms.unsigned, rpms.signed, "--trusted", key)
    assert code == 0, rep
    assert rep["checks"][0]["passed"]
    assert rpms.signer.fingerprint in rep["checks"][0]["detail"]
    code, _ = report(run_cli, "diff", rpms.signed, rpms.unsigned, "--trusted", key)
    assert code == 1  # without the signature rule the signature tag is a difference


def test_binary_key_and_a_certificate_beside_it(rpms: Rpms, run_cli) -> None:
    binary = rpms.root / "signer.gpg"
    binary.write_bytes(rpms.signer.gpg("--export", rpms.signer.fingerprint))
    code, rep = report(run_cli, "sign-check", rpms.unsigned, rpms.signed,
                       "--trusted", CA, "--trusted", binary)  # fmt: skip
    assert code == 0, rep
    assert rpms.signer.fingerprint in rep["checks"][0]["detail"]


def test_legacy_header_and_payload_signature_names_both_signatures(rpms: Rpms, run_cli) -> None:
    oracle = rpmkeys_check(rpms.legacy, rpms.signer.public, rpms.root / "db-legacy")
    assert oracle.count("Signature, key ID") == 2 and "NOKEY" not in oracle, oracle
    code, rep = report(run_cli, "diff", rpms.legacy, rpms.unsigned, "--allow", "signature",
                       "--trusted", rpms.signer.public)  # fmt: skip
    assert code == 0, _notes(rep)
    notes = _notes(rep)
    assert "RPM RSA signature (tag 268, over the main header; RSA with SHA512)" in notes
    assert "RPM PGP signature (tag 1002, over the main header and payload; RSA with" in notes


def test_no_pinned_openpgp_key_refuses(rpms: Rpms, run_cli) -> None:
    for pins in ([], ["--trusted", CA]):  # a certificate is not an OpenPGP key: ignored
        code, rep = report(run_cli, "diff", rpms.signed, rpms.unsigned, "--allow", "signature",
                           *pins)  # fmt: skip
        assert code == 1
        assert artifact(rep, "hello.rpm")["verdict"] == "different"
        assert "signature-only refused: no OpenPGP public key is pinned" in _notes(rep)
        assert "pin the signer's OpenPGP public key with --trusted" in _notes(rep)
    code, rep = report(run_cli, "sign-check", rpms.unsigned, rpms.signed)
    assert code == 1
    assert "no OpenPGP public key is pinned" in rep["checks"][0]["detail"]


def test_a_signature_by_another_key_fails(rpms: Rpms, run_cli) -> None:
    code, rep = report(run_cli, "sign-check", rpms.unsigned, rpms.signed,
                       "--trusted", rpms.other.public)  # fmt: skip
    assert code == 1
    assert "made by a key that is not pinned" in rep["checks"][0]["detail"]
    assert "NOKEY" in rpmkeys_check(rpms.signed, rpms.other.public, rpms.root / "db-other")


def test_a_pinned_file_that_is_neither_is_bad_input(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("not a key\n")
    code, _, err = run_cli("diff", rpms.signed, rpms.unsigned, "--allow", "signature",
                           "--trusted", junk)  # fmt: skip
    assert code == 2
    assert "not a PEM or DER certificate" in err and "OpenPGP public key" in err
    secret = tmp_path / "secret.asc"
    secret.write_bytes(rpms.signer.gpg("--armor", "--export-secret-keys", rpms.signer.fingerprint))
    code, _, err = run_cli("sign-check", rpms.unsigned, rpms.signed, "--trusted", secret)
    assert code == 2
    assert "secret key" in err


def test_x509_proofs_ignore_openpgp_keys(rpms: Rpms, run_cli) -> None:
    assert len(load_trusted([CA, rpms.signer.public])) == 1
    with pytest.raises(VerificationError, match="only OpenPGP keys are pinned"):
        load_trusted([rpms.signer.public])
    pe = (FIXTURES / "signature" / "unsigned.exe", FIXTURES / "signature" / "signed.exe")
    code, _, err = run_cli("sign-check", *pe, "--trusted", CA, "--trusted", rpms.signer.public)
    assert code == 0, err
    code, _, err = run_cli("sign-check", *pe, "--trusted", rpms.signer.public)
    assert code == 1  # pins were given, none of them X.509: the PE signer is not pinned
    assert "only OpenPGP keys are pinned" in err


def test_ed25519_signature_by_its_pinned_key(rpms: Rpms, run_cli, tmp_path: Path) -> None:
    signed = rpms.other.rpmsign(rpms.unsigned, tmp_path / "ed" / "hello.rpm")
    code, rep = report(run_cli, "sign-check", rpms.unsigned, signed, "--trusted",
                       rpms.other.public)  # fmt: skip
    assert code == 0, rep
    assert "Someone Else <else@example.com>" in rep["checks"][0]["detail"]
    assert "RPM DSA signature (tag 267, over the main header; EdDSA with" in "\n".join(
        rep["checks"][0]["findings"]
    )  # rpm puts EdDSA signatures in the "DSA" tag


def test_verify_with_the_openpgp_key_pinned_in_the_manifest(
    rpms: Rpms, run_cli, tmp_path: Path
) -> None:
    """`[signature] trusted` pins the OpenPGP key through verify (rebuilt in the sandbox: the
    recipe copies the unsigned package, the release holds the rpmsign-signed one)."""
    repo = tmp_path / "pkg"
    repo.mkdir()
    (repo / "hello.rpm").write_bytes(rpms.unsigned.read_bytes())
    (repo / "Makefile").write_text("all:\n\tmkdir -p out && cp hello.rpm out/hello.rpm\n")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "package")
    commit = git(repo, "rev-parse", "HEAD")
    (tmp_path / "release").mkdir()
    shutil.copyfile(rpms.signed, tmp_path / "release" / "hello.rpm")
    (tmp_path / "keys").mkdir()
    for name, signer in (("signer", rpms.signer), ("other", rpms.other)):
        shutil.copyfile(signer.public, tmp_path / "keys" / f"{name}.asc")
    manifest = tmp_path / "reprover.toml"
    body = (
        f'[source]\nrepo = "pkg"\ncommit = "{commit}"\n'
        f'[build]\ncommand = ["make"]\npath = "{tmp_path / "build"}"\n'
        '[release]\npath = "release"\n[policy]\nallow = ["signature"]\n'
        '[signature]\ntrusted = ["keys/signer.asc"]\n'
    )
    manifest.write_text(body)
    code, rep = report(run_cli, "verify", manifest)
    assert code == 0, rep
    assert artifact(rep, "hello.rpm")["verdict"] == "signature-only"
    assert rpms.signer.fingerprint in _notes(rep)
    manifest.write_text(body.replace("keys/signer.asc", "keys/other.asc"))
    code, rep = report(run_cli, "verify", manifest)
    assert code == 1
    assert "made by a key that is not pinned" in _notes(rep)
