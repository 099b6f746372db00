"""Attestations read as a reviewer needs: who verified, what was rebuilt, which file, which commit.

Every attestation here is validly signed by a trusted key: the attacks are in what it says, or
in which file it is shown with. Each runs the real `reprover verify-attestation`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import SSlibKey

from attest_support import COMMIT, OTHER_COMMIT, WHEN, digest_of, new_key, report_for, sign_file
from reprover import keys
from reprover.attest import check, dsse, statement
from reprover.errors import VerificationError
from reprover.model import Recipe, Report

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    release = tmp_path / "release"
    release.mkdir()
    (release / "engine").write_bytes(b"\x7fELF engine 2026\n" * 40)
    (release / "engine-debug").write_bytes(b"\x7fELF engine with a debug backdoor\n" * 40)
    last_year = tmp_path / "2025"
    last_year.mkdir()
    (last_year / "engine").write_bytes(b"\x7fELF engine 2025, with a known hole\n" * 40)
    lab, lab_pub = new_key(tmp_path / "keys", "lab")
    other, other_pub = new_key(tmp_path / "keys", "other-lab")
    return {
        "root": tmp_path,
        "engine": release / "engine",
        "debug": release / "engine-debug",
        "old": last_year / "engine",
        "lab": lab,
        "lab_pub": lab_pub,
        "other": other,
        "other_pub": other_pub,
    }


def statement_for(report: Report, *, commit: str = COMMIT, subjects: Sequence[Path] = ()) -> bytes:
    inputs = statement.StatementInputs(
        subjects={p.name: digest_of(p) for p in subjects} or statement.released_subjects(report),
        recipe=Recipe(command=("make",)),
        repo="https://git.example/engine.git",
        commit=commit,
        manifest_name="reprover.toml",
    )
    return statement.statement_bytes(statement.build_statement(report, inputs, time_verified=WHEN))


def edited(payload: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    data = json.loads(payload)
    change(data)
    return statement.canonical_json(data)


def attested(run_cli: Cli, scene: dict[str, Path], *argv: str | Path) -> tuple[int, str]:
    code, out, err = run_cli("verify-attestation", *argv, "--key", scene["lab_pub"])
    return code, out + err


def test_vsa_from_another_verifier_is_refused(scene: dict[str, Path], run_cli: Cli) -> None:
    """A trusted key also signs summaries for another tool; that tool's VSA says PASSED for
    checks that are not a rebuild."""

    def other_verifier(data: dict[str, Any]) -> None:
        data["predicate"]["verifier"] = {"id": "https://scanner.example/policy-gate"}

    payload = edited(statement_for(report_for(scene["engine"])), other_verifier)
    path = sign_file(scene["root"] / "gate.json", payload, scene["lab"])
    code, text = attested(run_cli, scene, path, "--artifact", scene["engine"])
    assert code == 1, text
    assert "made by verifier 'https://scanner.example/policy-gate', which you do not accept" in text
    code, text = attested(
        run_cli, scene, path, "--artifact", scene["engine"],
        "--verifier-id", "https://scanner.example/policy-gate",
    )  # fmt: skip
    assert code == 0, text


def test_vsa_without_the_rebuild_extension_is_refused(scene: dict[str, Path], run_cli: Cli) -> None:
    def strip(data: dict[str, Any]) -> None:
        del data["predicate"][statement.REBUILD_PREDICATE]

    payload = edited(statement_for(report_for(scene["engine"])), strip)
    path = sign_file(scene["root"] / "bare.json", payload, scene["lab"])
    code, text = attested(run_cli, scene, path, "--artifact", scene["engine"])
    assert code == 1, text
    assert "carries no rebuild extension" in text
    code, text = attested(run_cli, scene, path, "--artifact", scene["engine"], "--allow-no-rebuild")
    assert code == 0, text
    assert "commit (not attested)" in text


def test_rebuild_extension_contradicting_the_vsa_is_refused(
    scene: dict[str, Path], run_cli: Cli
) -> None:
    def contradict(data: dict[str, Any]) -> None:
        data["predicate"][statement.REBUILD_PREDICATE]["verdict"] = "fail"

    payload = edited(statement_for(report_for(scene["engine"])), contradict)
    path = sign_file(scene["root"] / "odd.json", payload, scene["lab"])
    code, text = attested(run_cli, scene, path, "--artifact", scene["engine"])
    assert code == 1, text
    assert "contradicts verificationResult PASSED" in text


def test_rollback_to_last_years_binary_and_attestation(
    scene: dict[str, Path], run_cli: Cli
) -> None:
    """Last year's binary with last year's (valid) attestation: only a pin refuses it."""
    ours = report_for(scene["engine"], commit=COMMIT)
    old = report_for(scene["old"], commit=OTHER_COMMIT)
    path = sign_file(
        scene["root"] / "2025.json", statement_for(old, commit=OTHER_COMMIT), scene["lab"]
    )
    code, text = attested(run_cli, scene, path, "--artifact", scene["old"])
    assert code == 0, text  # unpinned, it is a valid attestation of that file: pin something
    assert f"commit {OTHER_COMMIT}" in text
    code, text = attested(run_cli, scene, path, "--artifact", scene["old"], "--commit", COMMIT)
    assert code == 1, text
    assert f"attests commit {OTHER_COMMIT}, expected {COMMIT}" in text and "rollback" in text
    digest = ours.manifest_sha256 or ""
    code, text = attested(
        run_cli, scene, path, "--artifact", scene["old"], "--manifest-digest", digest
    )
    assert code == 1, text
    assert "made for another manifest" in text and OTHER_COMMIT in text


def test_substitution_bytes_of_another_subject_under_this_name(
    scene: dict[str, Path], run_cli: Cli, tmp_path: Path
) -> None:
    """One attestation covers engine and engine-debug; engine-debug's bytes are shown as
    `engine`. The digest matches a subject, but not the subject of that name."""
    report = report_for(scene["engine"])
    payload = statement_for(report, subjects=[scene["engine"], scene["debug"]])
    path = sign_file(scene["root"] / "both.json", payload, scene["lab"])
    shown = tmp_path / "download" / "engine"
    shown.parent.mkdir()
    shown.write_bytes(scene["debug"].read_bytes())
    code, text = attested(run_cli, scene, path, "--artifact", shown)
    assert code == 1, text
    assert "its bytes are those of subject 'engine-debug', not of a subject named 'engine'" in text
    assert "substitution" in text
    code, text = attested(run_cli, scene, path, "--artifact", shown, "--subject", "engine-debug")
    assert code == 0, text
    sha = hashlib.sha256(shown.read_bytes()).hexdigest()
    assert f"subject engine-debug sha256 {sha} matches {shown}" in text


def test_one_key_with_keyids_in_lower_and_upper_case_counts_once(
    scene: dict[str, Path], run_cli: Cli
) -> None:
    """One envelope, two signatures by the same key under keyids in lower and upper case, and
    the key trusted twice (its PEM re-spelled with CRLF line ends), toward a threshold of 2."""
    payload = statement_for(report_for(scene["engine"]))
    signer = keys.load_signer(scene["lab"])
    path = scene["root"] / "twice.json"
    path.write_bytes(dsse.sign_envelope(payload, [signer]))
    document = json.loads(path.read_bytes())
    keyid = keys.load_public_key(scene["lab_pub"]).keyid
    [first] = document["signatures"]
    document["signatures"] = [{**first, "keyid": keyid.lower()}, {**first, "keyid": keyid.upper()}]
    path.write_text(json.dumps(document))
    respelled = scene["root"] / "keys" / "lab-again.pub.pem"
    respelled.write_bytes(scene["lab_pub"].read_bytes().replace(b"\n", b"\r\n"))
    code, out, err = run_cli(
        "verify-attestation", path, "--artifact", scene["engine"],
        "--key", scene["lab_pub"], "--key", respelled, "--key", scene["other_pub"],
        "--threshold", "2",
    )  # fmt: skip
    assert code == 1, out + err
    assert "only 1 distinct trusted signer(s) agree, 2 required" in out + err


def test_one_key_under_two_keyids_is_one_signer_in_the_library(scene: dict[str, Path]) -> None:
    """Through the library, a caller can trust the same public key under two keyids (here the
    ed25519 value in upper case hex): keys are compared by SubjectPublicKeyInfo DER."""
    key = keys.load_public_key(scene["lab_pub"])
    alias = SSlibKey("ab" * 32, key.keytype, key.scheme, {"public": key.keyval["public"].upper()})
    trust = check.Trust(keys=(key, alias, keys.load_public_key(scene["other_pub"])))
    assert trust.size == 2
    payload = statement_for(report_for(scene["engine"]))
    document = json.loads(dsse.sign_envelope(payload, [keys.load_signer(scene["lab"])]))
    [first] = document["signatures"]
    document["signatures"] = [first, {**first, "keyid": alias.keyid}]
    sha = hashlib.sha256(scene["engine"].read_bytes()).hexdigest()
    accepted = check.check_attestation(
        json.dumps(document).encode(), source="twice", trust=trust, artifacts={"engine": sha}
    )
    assert accepted.signers == (f"key:{key.keyid}",)
    with pytest.raises(VerificationError, match="only 1 distinct trusted signer"):
        check.require_threshold([accepted], 2, trust)
