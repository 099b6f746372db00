"""Keyless attestations: the real sigstore signer and verifier against a local test double.

The double (tests/sigstore_double) plays Fulcio, the CT log and Rekor over HTTP on 127.0.0.1,
so `Signer.sign_dsse` and `Verifier.verify_dsse` run unmodified and offline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attest_support import new_key, report_for, sign_file, statement_bytes
from reprover.attest import check, sigstore_sign, sigstore_verify
from sigstore_double import PRIOR_ENTRIES, SigstoreDouble, make_token

Cli = Callable[..., tuple[int, str, str]]
ALICE, ISSUER = "alice@lab.example", "https://issuer.lab.example"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def double() -> Iterator[SigstoreDouble]:
    with SigstoreDouble("lab") as instance:
        yield instance


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "engine"
    path.write_bytes(b"\x7fELF engine build 1.0\n" * 50)
    return path


def _sign(double: SigstoreDouble, folder: Path, payload: bytes, identity: str = ALICE) -> Path:
    _, config = double.write(folder)
    context = sigstore_sign.signing_context(config)
    data = sigstore_sign.sign_bundle(payload, make_token(identity, ISSUER), context)
    out = folder / f"{identity}.sigstore.json"
    out.write_bytes(data)
    return out


def _verify(
    run_cli: Cli, bundle: Path, artifact: Path, root: Path | None, *extra: str
) -> tuple[int, str, str]:
    argv: list[str | Path] = ["verify-attestation", bundle, "--artifact", artifact]
    if root is not None:
        argv += ["--trusted-root", root]
    return run_cli(*argv, *extra)


def test_bundle_verifies_with_sigstore_directly(
    double: SigstoreDouble, tmp_path: Path, artifact: Path
) -> None:
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    payload = statement_bytes(report_for(artifact))
    bundle_path = _sign(double, tmp_path, payload)
    root, _ = double.write(tmp_path)
    bundle = Bundle.from_json(bundle_path.read_bytes())
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    payload_type, verified = verifier.verify_dsse(bundle, Identity(identity=ALICE, issuer=ISSUER))
    assert payload_type == "application/vnd.in-toto+json"
    assert verified == payload  # the bundle carries exactly the bytes we built
    assert len(double.entries) == 1  # one Rekor entry was made
    # ... into a log that held other entries: the inclusion proof is a real Merkle path
    proof = json.loads(bundle_path.read_bytes())["verificationMaterial"]["tlogEntries"][0]
    assert int(proof["logIndex"]) == PRIOR_ENTRIES
    assert len(proof["inclusionProof"]["hashes"]) == 3  # leaf 37 of 38: 32 + 4 + 1
    # ... and the leaf was issued by an intermediate under the pinned root, as Fulcio does
    chain = double.trusted_root()["certificateAuthorities"][0]["certChain"]["certificates"]
    assert len(chain) == 2


def test_reprover_accepts_the_right_identity_and_issuer(
    double: SigstoreDouble, tmp_path: Path, artifact: Path, run_cli: Cli
) -> None:
    bundle = _sign(double, tmp_path, statement_bytes(report_for(artifact)))
    root, _ = double.write(tmp_path)
    code, out, err = _verify(
        run_cli, bundle, artifact, root, "--identity", ALICE, "--issuer", ISSUER, "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["distinct_signers"] == [f"sigstore:{ISSUER}|{ALICE}"]


@pytest.mark.parametrize(
    "case",
    [
        ("mallory@lab.example", ISSUER, "SANs do not match"),
        (ALICE, "https://other-issuer.example", "OIDCIssuer does not match"),
    ],
)
def test_wrong_identity_or_issuer_fails(
    double: SigstoreDouble, tmp_path: Path, artifact: Path, run_cli: Cli, case: tuple[str, ...]
) -> None:
    identity, issuer, reason = case
    bundle = _sign(double, tmp_path, statement_bytes(report_for(artifact)))
    root, _ = double.write(tmp_path)
    code, out, err = _verify(
        run_cli, bundle, artifact, root, "--identity", identity, "--issuer", issuer
    )
    assert code == 1
    assert reason in out + err


def test_bundle_from_another_trust_root_fails(
    double: SigstoreDouble, tmp_path: Path, artifact: Path, run_cli: Cli
) -> None:
    payload = statement_bytes(report_for(artifact))
    with SigstoreDouble("rogue") as rogue:
        bundle = _sign(rogue, tmp_path, payload)
    root, _ = double.write(tmp_path)
    code, out, err = _verify(
        run_cli, bundle, artifact, root, "--identity", ALICE, "--issuer", ISSUER
    )
    assert code == 1
    assert "another sigstore instance" in out + err
    # Nor does sigstore's own public-good root, shipped in the package, the default here.
    code, out, err = _verify(
        run_cli, bundle, artifact, None, "--identity", ALICE, "--issuer", ISSUER
    )
    assert code == 1
    assert "another sigstore instance" in out + err


def test_default_root_is_the_one_shipped_in_the_package_not_the_user_cache(
    tmp_path: Path, double: SigstoreDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rogue trusted_root.json planted in sigstore's user cache must change nothing."""
    cache = (
        tmp_path
        / "xdg-data"
        / "sigstore-python"
        / "tuf"
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
    )
    cache.mkdir(parents=True)
    (cache / "trusted_root.json").write_text(json.dumps(double.trusted_root()))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-data"))
    from sigstore.models import ClientTrustConfig

    # The plant works: sigstore's own offline production config now trusts the rogue CA ...
    cached = ClientTrustConfig.production(offline=True).trusted_root.get_fulcio_certs()
    assert double.ca_cert in cached
    # ... but reprover's default root is the one shipped inside the package.
    root = sigstore_verify.load_trusted_root(None)
    fulcio = root.get_fulcio_certs()
    assert double.ca_cert not in fulcio
    assert any("sigstore" in str(c.subject) for c in fulcio)


def test_failed_result_and_other_file_fail_under_sigstore_too(
    double: SigstoreDouble, tmp_path: Path, artifact: Path, run_cli: Cli
) -> None:
    root, _ = double.write(tmp_path)
    failed = _sign(double, tmp_path, statement_bytes(report_for(artifact, passed=False)))
    code, out, err = _verify(
        run_cli, failed, artifact, root, "--identity", ALICE, "--issuer", ISSUER
    )
    assert code == 1
    assert "verificationResult FAILED" in out + err
    other = tmp_path / "other"
    other.write_bytes(b"something else")
    code, out, err = _verify(
        run_cli,
        _sign(double, tmp_path, statement_bytes(report_for(other)), "bob@lab.example"),
        artifact,
        root,
        "--identity",
        "bob@lab.example",
        "--issuer",
        ISSUER,
    )
    assert code == 1
    assert "no subject matches artifact" in out + err


def test_tampered_bundle_payload_fails(
    double: SigstoreDouble, tmp_path: Path, artifact: Path, run_cli: Cli
) -> None:
    import base64

    bundle = _sign(double, tmp_path, statement_bytes(report_for(artifact, passed=False)))
    root, _ = double.write(tmp_path)
    document = json.loads(bundle.read_bytes())
    payload = base64.b64decode(document["dsseEnvelope"]["payload"])
    document["dsseEnvelope"]["payload"] = base64.b64encode(
        payload.replace(b'"FAILED"', b'"PASSED"')
    ).decode()
    bundle.write_text(json.dumps(document))
    code, out, err = _verify(
        run_cli, bundle, artifact, root, "--identity", ALICE, "--issuer", ISSUER
    )
    assert code == 1
    assert "invalid signature" in out + err or "does not match" in out + err


def test_k_of_n_mixes_keys_and_identities_and_counts_each_once(
    double: SigstoreDouble, tmp_path: Path, artifact: Path, run_cli: Cli
) -> None:
    payload = statement_bytes(report_for(artifact))
    root, _ = double.write(tmp_path)
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    alice_1 = _sign(double, tmp_path / "1", payload)
    alice_2 = _sign(double, tmp_path / "2", payload)
    lab_key, lab_pub = new_key(tmp_path / "keys", "lab")
    keyed = sign_file(tmp_path / "keyed.json", payload, lab_key)
    trust = ("--trusted-root", root, "--identity", ALICE, "--issuer", ISSUER, "--key", lab_pub)
    code, out, err = run_cli(
        "verify-attestation", alice_1, alice_2, "--artifact", artifact, *trust, "--threshold", "2"
    )
    assert code == 1
    assert "only 1 distinct trusted signer" in out + err and "counts once" in out + err
    code, out, err = run_cli(
        "verify-attestation", alice_1, keyed, "--artifact", artifact, *trust, "--threshold", "2"
    )
    assert code == 0, err


def test_bundle_made_by_sigstore_directly_is_accepted(
    double: SigstoreDouble, tmp_path: Path, artifact: Path
) -> None:
    """Another tool's attestation: sigstore's own StatementBuilder and signer."""
    from sigstore.dsse import StatementBuilder, Subject
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
    statement = (
        StatementBuilder()
        .subjects([Subject(name="engine", digest={"sha256": sha})])
        .predicate_type("https://slsa.dev/verification_summary/v1")
        .predicate(
            {
                "verifier": {"id": "https://ci.example/gate"},
                "timeVerified": "2026-02-02T00:00:00Z",
                "resourceUri": "pkg:generic/engine@1.0",
                "policy": {"uri": "https://ci.example/policy", "digest": {"sha256": "6" * 64}},
                "verificationResult": "PASSED",
                "verifiedLevels": ["SLSA_BUILD_LEVEL_2"],
            }
        )
        .build()
    )
    context = SigningContext.from_trust_config(
        ClientTrustConfig.from_json(json.dumps(double.trust_config()))
    )
    with context.signer(IdentityToken(make_token(ALICE, ISSUER))) as signer:
        bundle = signer.sign_dsse(statement)
    root, _ = double.write(tmp_path)
    trust = check.Trust(
        identities=(sigstore_verify.Identity(ALICE, ISSUER),),
        trusted_root=sigstore_verify.load_trusted_root(root),
    )
    accepted = check.check_attestation(
        bundle.to_json().encode(),
        source="sigstore-made",
        trust=trust,
        artifacts={"engine": sha},
        policy_digest="6" * 64,
        expect=check.Expect(verifier_ids=("https://ci.example/gate",), require_rebuild=False),
    )
    assert accepted.signers == (f"sigstore:{ISSUER}|{ALICE}",)
