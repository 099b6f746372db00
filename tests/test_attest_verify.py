"""End to end: `reprover verify --attest` on a real C project, then `verify-attestation`."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope

from attest_support import new_key
from conftest import Project
from reprover import keys
from sigstore_double import SigstoreDouble, make_token

Cli = Callable[..., tuple[int, str, str]]


def _manifest_sha(manifest: Path) -> str:
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def test_verify_signs_pass_and_fail_and_others_check_them(
    project: Project, run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, pub = new_key(project.root / "keys", "lab")
    monkeypatch.setenv("LAB_PASSPHRASE", "correct horse")
    encrypted, encrypted_pub = keys.generate("locked", project.root / "keys", b"correct horse")
    manifest = project.manifest()
    out = project.root / "pass.intoto.json"
    code, _, err = run_cli(
        "verify",
        manifest,
        "--format",
        "json",
        "-o",
        project.root / "report.json",
        "--attest",
        out,
        "--attest-key",
        encrypted,
        "--attest-passphrase-env",
        "LAB_PASSPHRASE",
    )
    assert code == 0, err
    assert "attestation (PASSED) written" in err
    envelope = Envelope.from_dict(json.loads(out.read_bytes()))
    envelope.verify([keys.load_public_key(encrypted_pub)], 1)  # standard DSSE
    statement = json.loads(envelope.payload)
    vsa = statement["predicate"]
    assert vsa["verificationResult"] == "PASSED"
    assert vsa["policy"]["digest"]["sha256"] == _manifest_sha(manifest)
    rebuild = vsa["https://reprover.dev/rebuild/v1"]
    assert rebuild["source"]["commit"] == project.commit
    assert rebuild["artifacts"][0]["verdict"] == "identical"
    assert "cc" in rebuild["toolchain"]
    released = project.release / "hello"
    assert statement["subject"] == [
        {"name": "hello", "digest": {"sha256": hashlib.sha256(released.read_bytes()).hexdigest()}}
    ]
    # Nothing machine-local is signed: the repository is named relative to the manifest, the
    # resource is the artifact. (The build path is the recipe's `[build] path`, the same for
    # everyone who repeats the build; this test's recipe puts it under its own folder.)
    payload_text = envelope.payload.decode().replace(f'"buildPath":"{project.root}/build"', "")
    assert str(project.root) not in payload_text and "file:" not in payload_text
    assert vsa["resourceUri"] == "hello"
    assert rebuild["source"]["repo"] == "repo"
    code, text, err = run_cli(
        "verify-attestation",
        out,
        "--artifact",
        released,
        "--key",
        encrypted_pub,
        "--policy-digest",
        _manifest_sha(manifest),
        "--commit",
        project.commit,
    )
    assert code == 0, err
    sha = hashlib.sha256(released.read_bytes()).hexdigest()
    assert f"subject hello sha256 {sha} matches {released}" in text
    assert f"commit {project.commit}, manifest sha256 {_manifest_sha(manifest)}" in text

    # The vendor ships a changed binary: the run fails, and the failure is attested too.
    data = bytearray(released.read_bytes())
    data[0x1100] ^= 0xFF
    released.write_bytes(bytes(data))
    failed = project.root / "fail.intoto.json"
    code, _, err = run_cli(
        "verify", manifest, "-o", project.root / "r2.txt", "--attest", failed, "--attest-key", key
    )
    assert code == 1
    assert "attestation (FAILED) written" in err
    payload = json.loads(base64.b64decode(json.loads(failed.read_bytes())["payload"]))
    assert payload["predicate"]["verificationResult"] == "FAILED"
    assert payload["predicate"]["https://reprover.dev/rebuild/v1"]["artifacts"][0]["verdict"] == (
        "different"
    )
    code, text, _ = run_cli("verify-attestation", failed, "--artifact", released, "--key", pub)
    assert code == 1
    assert "verificationResult FAILED" in text
    # The earlier PASSED attestation no longer covers the shipped bytes.
    code, text, _ = run_cli(
        "verify-attestation", out, "--artifact", released, "--key", encrypted_pub
    )
    assert code == 1
    assert "no subject matches" in text


def test_attest_options_are_checked_before_the_build(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest()
    out = project.root / "a.json"
    key, _ = new_key(project.root / "keys", "lab")
    assert run_cli("verify", manifest, "--attest", out)[0] == 2
    assert run_cli("verify", manifest, "--attest-key", key)[0] == 2
    locked, _ = keys.generate("locked", project.root / "keys", b"secret")
    code, _, err = run_cli("verify", manifest, "--attest", out, "--attest-key", locked)
    assert code == 2
    assert "passphrase" in err
    assert not (project.root / "build").exists()
    assert not out.exists()


def test_no_ambient_identity_is_bad_input(
    project: Project, run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI"):
        monkeypatch.delenv(var, raising=False)
    out = project.root / "a.json"
    code, _, err = run_cli("verify", project.manifest(), "--attest", out, "--attest-sigstore")
    assert code == 2
    assert "no ambient OIDC identity" in err
    assert not out.exists()


def test_verify_signs_keylessly_with_the_github_actions_identity(
    project: Project, run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub Actions with `id-token: write`, against a local Fulcio/CT/Rekor double."""
    workflow = "https://github.com/vendor/engine/.github/workflows/verify.yml@refs/heads/main"
    issuer = "https://token.actions.githubusercontent.com"
    with SigstoreDouble("gha") as double:
        root, config = double.write(project.root)
        double.token = make_token(workflow, issuer)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{double.url}/token")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-secret")
        out = project.root / "gha.sigstore.json"
        manifest = project.manifest()
        code, _, err = run_cli(
            "verify",
            manifest,
            "-o",
            project.root / "r.txt",
            "--attest",
            out,
            "--attest-sigstore",
            "--attest-trust-config",
            config,
        )
        assert code == 0, err
    bundle = json.loads(out.read_bytes())
    assert bundle["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    released = project.release / "hello"
    common = ("--artifact", released, "--trusted-root", root, "--issuer", issuer)
    code, _, err = run_cli(
        "verify-attestation",
        out,
        *common,
        "--identity",
        workflow,
        "--policy-digest",
        _manifest_sha(manifest),
    )
    assert code == 0, err
    code, text, _ = run_cli(
        "verify-attestation",
        out,
        *common,
        "--identity",
        workflow.replace("refs/heads/main", "refs/heads/evil"),
    )
    assert code == 1
    assert "SANs do not match" in text
