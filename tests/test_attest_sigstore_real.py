"""Keyless attestations against real sigstore bundles, verified offline.

The bundles are sigstore's own test assets (tests/fixtures/sigstore/README.md); the trusted
roots are the ones shipped inside the installed sigstore package. Nothing here needs the
network, and nothing skips for another sigstore version (pyproject pins the tested range).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reprover.attest import sigstore_verify
from reprover.errors import InputError, VerificationError
from sigstore_real import (
    BEACON,
    FIXTURES,
    PRODUCTION_ROOT,
    STAGING_ROOT,
    fixture,
)

Cli = Callable[..., tuple[int, str, str]]
A_TXT_SHA256 = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"


def _beacon_args() -> tuple[str, ...]:
    return ("--identity", BEACON.identity, "--issuer", BEACON.issuer)


def test_production_dsse_bundle_verifies_offline() -> None:
    root = sigstore_verify.load_trusted_root(None)  # the production root shipped with sigstore
    payload_type, payload, signer = sigstore_verify.verify_dsse_bundle(
        fixture("production-dsse.sigstore.json"), [BEACON], root
    )
    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["subject"][0]["digest"]["sha256"] == A_TXT_SHA256
    assert signer == f"sigstore:{BEACON.issuer}|{BEACON.identity}"


def test_production_bundle_passes_crypto_then_is_judged_as_a_statement(
    tmp_path: Path, run_cli: Cli
) -> None:
    """Through the CLI the real bundle's signature, chain and log all verify; what stops it is
    that it attests SLSA provenance for a.txt, not a reprover verification of our file."""
    bundle = tmp_path / "real.sigstore.json"
    bundle.write_bytes(fixture("production-dsse.sigstore.json"))
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"not the attested file\n")
    code, _, err = run_cli("verify-attestation", bundle, "--artifact", artifact, *_beacon_args())
    assert code == 1
    assert "predicateType is 'https://slsa.dev/provenance/v1'" in err
    assert err.count(str(bundle)) == 1  # the file is named once


@pytest.mark.parametrize("root", [STAGING_ROOT, FIXTURES / "staging-rekor2-trusted_root.json"])
def test_staging_rekor_v2_dsse_bundle_verifies_against_a_staging_root(root: Path) -> None:
    trusted = sigstore_verify.load_trusted_root(root)
    payload_type, payload, _ = sigstore_verify.verify_dsse_bundle(
        fixture("staging-dsse.sigstore.json"), [BEACON], trusted
    )
    assert payload_type == "application/vnd.in-toto+json"
    assert json.loads(payload)["_type"] == "https://in-toto.io/Statement/v1"


def test_default_root_is_production_and_names_the_staging_instance() -> None:
    production = sigstore_verify.load_trusted_root(None)
    assert production is not None
    with pytest.raises(VerificationError, match="another sigstore instance"):
        sigstore_verify.verify_dsse_bundle(
            fixture("staging-dsse.sigstore.json"), [BEACON], production
        )
    staging = sigstore_verify.load_trusted_root(STAGING_ROOT)
    with pytest.raises(VerificationError, match="another sigstore instance"):
        sigstore_verify.verify_dsse_bundle(
            fixture("production-dsse.sigstore.json"), [BEACON], staging
        )
    assert PRODUCTION_ROOT.is_file()


def test_message_signature_bundle_is_not_an_attestation() -> None:
    root = sigstore_verify.load_trusted_root(None)
    with pytest.raises(VerificationError, match="message signature, not a DSSE attestation"):
        sigstore_verify.verify_dsse_bundle(
            fixture("production-message.sigstore.json"), [BEACON], root
        )


def _root_without(tmp_path: Path, part: str) -> Path:
    root = json.loads(PRODUCTION_ROOT.read_bytes())
    if part == "ca-certificates":
        for authority in root["certificateAuthorities"]:
            authority["certChain"]["certificates"] = []
    else:
        root[part] = []
    path = tmp_path / f"no-{part}.json"
    path.write_text(json.dumps(root))
    return path


@pytest.mark.parametrize(
    ("part", "named"),
    [
        ("certificateAuthorities", "no certificate authority certificates"),
        ("ca-certificates", "no certificate authority certificates"),
        ("tlogs", "no transparency log keys"),
        ("ctlogs", "no CT log keys"),
    ],
)
def test_unusable_trusted_root_is_bad_input_naming_what_is_missing(
    tmp_path: Path, run_cli: Cli, part: str, named: str
) -> None:
    root = _root_without(tmp_path, part)
    with pytest.raises(InputError, match=named):
        sigstore_verify.load_trusted_root(root)
    bundle = tmp_path / "b.json"
    bundle.write_bytes(fixture("production-dsse.sigstore.json"))
    code, out, err = run_cli(
        "verify-attestation", bundle, bundle, "--artifact", bundle, "--trusted-root", root,
        *_beacon_args(),
    )  # fmt: skip
    assert code == 2
    assert named in err
    assert "internal error" not in err
    assert out == ""


@pytest.mark.parametrize("content", [b"", b"{}", b"[1]", b"not json", b'{"mediaType": 7}'])
def test_malformed_trusted_root_is_bad_input(tmp_path: Path, run_cli: Cli, content: bytes) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(content)
    bundle = tmp_path / "b.json"
    bundle.write_bytes(fixture("production-dsse.sigstore.json"))
    code, _, err = run_cli(
        "verify-attestation", bundle, "--artifact", bundle, "--trusted-root", root,
        *_beacon_args(),
    )  # fmt: skip
    assert code == 2, err
    assert "trusted root" in err
    assert "internal error" not in err


def test_quiet_silences_sigstore_logging(tmp_path: Path, run_cli: Cli) -> None:
    bundle = tmp_path / "old.sigstore.json"
    bundle.write_bytes(fixture("production-message-with-root-cert.sigstore.json"))
    argv = ("verify-attestation", bundle, "--artifact", bundle, *_beacon_args())
    code, _, err = run_cli(*argv)
    assert code == 1
    assert "reprover: sigstore.models: this bundle contains a root CA" in err  # routed, labelled
    code, _, err = run_cli(*argv, "--quiet")
    assert code == 1
    assert err == ""


def test_every_fixture_has_its_provenance_listed() -> None:
    listed = (FIXTURES / "README.md").read_text()
    for path in FIXTURES.glob("*.json"):
        assert f"`{path.name}`" in listed, path.name
