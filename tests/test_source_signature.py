"""Commit signatures: SSH (allowed_signers) and GPG (keyring), verified with real keys."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from attest_support import new_key
from conftest import HELLO_C, MAKEFILE, Project, git, vendor_build

Cli = Callable[..., tuple[int, str, str]]


def _ssh_key(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key


def _signed_project(
    tmp_path: Path, config: list[str] | None, env: dict[str, str] | None = None
) -> Project:
    """A project whose one commit is signed when `config` names a signing key."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hello.c").write_text(HELLO_C)
    (repo / "Makefile").write_text(MAKEFILE)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    sign = ["-S"] if config else []
    git(repo, *(config or []), "commit", "--quiet", *sign, "-m", "release", env=env)
    commit = git(repo, "rev-parse", "HEAD")
    vendor_build(repo, commit, tmp_path / "release", tmp_path)
    return Project(tmp_path, repo, commit, tmp_path / "release")


@pytest.fixture
def ssh_keys(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    return _ssh_key(keys, "vendor"), _ssh_key(keys, "intruder")


def _ssh_signing(key: Path) -> list[str]:
    return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"]


def _allowed_signers(tmp_path: Path, key: Path) -> str:
    path = tmp_path / "keys" / "allowed_signers"
    public = key.with_suffix(".pub").read_text().split()
    path.write_text(f"ada@vendor.example {public[0]} {public[1]}\n")
    return 'allowed_signers = "keys/allowed_signers"\n'


def _with_source_option(project: Project, option: str) -> Path:
    body = project.manifest().read_text()
    return project.manifest(body.replace("[build]\n", option + "[build]\n", 1))


def test_ssh_signed_commit_by_listed_key_passes(
    tmp_path: Path, ssh_keys: tuple[Path, Path], run_cli: Cli
) -> None:
    vendor, _ = ssh_keys
    project = _signed_project(tmp_path, _ssh_signing(vendor))
    manifest = _with_source_option(project, _allowed_signers(tmp_path, vendor))
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0, out
    report = json.loads(out)
    [check] = report["checks"]
    assert check["name"] == "source-signature"
    assert check["passed"] is True
    assert "ada@vendor.example" in report["source"]["signer"]


def test_unsigned_commit_fails_when_signature_required(
    tmp_path: Path, ssh_keys: tuple[Path, Path], run_cli: Cli
) -> None:
    vendor, _ = ssh_keys
    project = _signed_project(tmp_path, None)
    manifest = _with_source_option(project, _allowed_signers(tmp_path, vendor))
    key, _ = new_key(tmp_path / "keys", "lab")
    attestation = tmp_path / "failed.intoto.json"
    code, out, _ = run_cli(
        "verify", manifest, "--format", "json", "--attest", attestation, "--attest-key", key
    )
    assert code == 1
    report = json.loads(out)
    [check] = report["checks"]
    assert check == {
        "name": "source-signature",
        "passed": False,
        "detail": f"commit {project.commit}: the commit is not signed",
        "findings": [],
    }
    # Nothing was built, yet every released file is listed with the digest of the snapshot
    # taken before the source check, and the FAILED attestation names those digests: it never
    # re-reads the release, which could have changed since.
    released = {a["path"]: a for a in report["artifacts"]}
    assert released, report
    for artifact in released.values():
        assert artifact["verdict"] == "missing"
        assert artifact["notes"] == ["not rebuilt: the source check failed"]
    envelope = json.loads(attestation.read_bytes())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    assert payload["predicate"]["verificationResult"] == "FAILED"
    assert {s["name"]: s["digest"]["sha256"] for s in payload["subject"]} == {
        name: a["released"]["sha256"] for name, a in released.items()
    }


def test_commit_signed_by_unlisted_key_fails(
    tmp_path: Path, ssh_keys: tuple[Path, Path], run_cli: Cli
) -> None:
    vendor, intruder = ssh_keys
    project = _signed_project(tmp_path, _ssh_signing(intruder))
    manifest = _with_source_option(project, _allowed_signers(tmp_path, vendor))
    code, out, _ = run_cli("verify", manifest)
    assert code == 1
    assert "source-signature" in out
    assert "FAIL" in out


def test_missing_allowed_signers_file_is_bad_input(tmp_path: Path, run_cli: Cli) -> None:
    project = _signed_project(tmp_path, None)
    manifest = _with_source_option(project, 'allowed_signers = "nowhere"\n')
    code, _, err = run_cli("verify", manifest)
    assert code == 2
    assert "does not exist" in err


def _gpg_key(home: Path, email: str) -> str:
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--quiet",
            "--passphrase",
            "",
            "--quick-gen-key",
            email,
            "ed25519",
            "sign",
            "never",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys", email],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))


@pytest.mark.slow
def test_gpg_signed_commit_with_keyring(tmp_path: Path, run_cli: Cli) -> None:
    vendor_home, other_home = tmp_path / "gpg-vendor", tmp_path / "gpg-other"
    fingerprint = _gpg_key(vendor_home, "ada@vendor.example")
    _gpg_key(other_home, "someone@else.example")
    project = _signed_project(
        tmp_path, ["-c", f"user.signingkey={fingerprint}"], env={"GNUPGHOME": str(vendor_home)}
    )
    for name, home in (("vendor.gpg", vendor_home), ("other.gpg", other_home)):
        exported = subprocess.run(
            ["gpg", "--batch", "--export"],
            env={**os.environ, "GNUPGHOME": str(home)},
            check=True,
            capture_output=True,
        ).stdout
        (tmp_path / name).write_bytes(exported)
    code, out, _ = run_cli(
        "verify", _with_source_option(project, 'gpg_keyring = "vendor.gpg"\n'), "--format", "json"
    )
    assert code == 0, out
    assert fingerprint in json.loads(out)["source"]["signer"]
    code, out, _ = run_cli(
        "verify", _with_source_option(project, 'gpg_keyring = "other.gpg"\n'), "--format", "json"
    )
    assert code == 1
    assert "not among the trusted keys" in json.loads(out)["checks"][0]["detail"]


def test_entitlements_are_read_from_the_commit_not_the_tree(tmp_path: Path) -> None:
    """`[signature] entitlements` is the file as committed: a later edit in the tree is ignored."""
    import subprocess

    from reprover.errors import InputError
    from reprover.source import git_env, read_committed

    repo = tmp_path / "src"
    repo.mkdir()
    env = git_env(
        tmp_path,
        GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="a",
        GIT_COMMITTER_EMAIL="a@x",
    )  # fmt: skip
    (repo / "e.plist").write_bytes(b"<plist>committed</plist>")
    for argv in (["init", "-q"], ["add", "e.plist"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *argv], cwd=repo, env=env, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    (repo / "e.plist").write_bytes(b"<plist>edited by the build</plist>")
    assert read_committed(repo, commit, "e.plist") == b"<plist>committed</plist>"
    with pytest.raises(InputError, match="has no file"):
        read_committed(repo, commit, "missing.plist")
