"""Key-based attestations: the Statement shape, standard DSSE, and every way to cheat."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError

from attest_support import (
    COMMIT,
    OTHER_COMMIT,
    new_key,
    report_for,
    sign_file,
    statement_bytes,
)
from reprover import keys
from reprover.attest import check, dsse, statement
from reprover.errors import InconclusiveError, VerificationError
from reprover.model import Report

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    """A released file, two verifiers' key pairs and an outsider's."""
    artifact = tmp_path / "release" / "engine"
    artifact.parent.mkdir()
    artifact.write_bytes(b"\x7fELF engine build 1.0\n" * 50)
    other = tmp_path / "release" / "other"
    other.write_bytes(b"another released file\n")
    lab_a, lab_a_pub = new_key(tmp_path / "keys", "lab-a")
    lab_b, lab_b_pub = new_key(tmp_path / "keys", "lab-b")
    outsider, outsider_pub = new_key(tmp_path / "keys", "outsider")
    return {
        "root": tmp_path,
        "artifact": artifact,
        "other": other,
        "lab_a": lab_a,
        "lab_a_pub": lab_a_pub,
        "lab_b": lab_b,
        "lab_b_pub": lab_b_pub,
        "outsider": outsider,
        "outsider_pub": outsider_pub,
    }


def test_statement_is_a_vsa_v1_with_the_rebuild_extension(scene: dict[str, Path]) -> None:
    report = report_for(scene["artifact"])
    data = json.loads(statement_bytes(report))
    assert data["_type"] == "https://in-toto.io/Statement/v1"
    assert data["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert data["subject"] == [
        {
            "name": "engine",
            "digest": {"sha256": hashlib.sha256(scene["artifact"].read_bytes()).hexdigest()},
        }
    ]
    vsa = data["predicate"]
    assert vsa["verifier"]["id"].startswith("https://")
    assert vsa["verifier"]["version"]["reprover"]
    assert vsa["timeVerified"] == "2026-02-01T12:00:00Z"
    assert vsa["resourceUri"] == "engine"  # the artifact, not the source repository
    assert vsa["policy"] == {
        "uri": "reprover.toml",
        "digest": {"sha256": report.manifest_sha256},
        "annotations": {"reprover.policySha256": "4" * 64},
    }
    assert vsa["verificationResult"] == "PASSED"
    assert isinstance(vsa["verifiedLevels"], list)
    assert not any(level.startswith("SLSA_") for level in vsa["verifiedLevels"])
    assert vsa["slsaVersion"] == "1.0"
    rebuild = vsa[statement.REBUILD_PREDICATE]
    assert rebuild["source"]["commit"] == COMMIT
    assert rebuild["source"]["tree"] == "3" * 40
    assert rebuild["toolchain"] == {"cc": "gcc 12.2.0"}
    assert len(rebuild["recipe"]["sha256"]) == 64
    [artifact] = rebuild["artifacts"]
    assert artifact["verdict"] == "identical"
    assert artifact["ledgerSha256"] == hashlib.sha256(b"[]").hexdigest()


def test_failed_result_is_attested_like_a_passed_one(scene: dict[str, Path]) -> None:
    data = json.loads(statement_bytes(report_for(scene["artifact"], passed=False)))
    vsa = data["predicate"]
    assert vsa["verificationResult"] == "FAILED"
    assert vsa["verifiedLevels"] == ["FAILED"]
    [artifact] = vsa[statement.REBUILD_PREDICATE]["artifacts"]
    assert artifact["verdict"] == "different"
    assert artifact["differences"] == 1
    assert artifact["ledgerSha256"] != hashlib.sha256(b"[]").hexdigest()


def test_inconclusive_runs_are_not_attested(scene: dict[str, Path]) -> None:
    report = Report(command="verify", artifacts=())
    with pytest.raises(InconclusiveError, match="inconclusive"):
        statement_bytes(report)


def test_envelope_is_standard_dsse_that_securesystemslib_verifies(
    scene: dict[str, Path],
) -> None:
    payload = statement_bytes(report_for(scene["artifact"]))
    path = sign_file(scene["root"] / "a.intoto.json", payload, scene["lab_a"])
    document = json.loads(path.read_bytes())
    assert document["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(document["payload"]) == payload  # the exact bytes signed
    envelope = Envelope.from_dict(json.loads(path.read_bytes()))
    key_a = keys.load_public_key(scene["lab_a_pub"])
    assert list(envelope.verify([key_a], 1)) == [key_a.keyid]
    with pytest.raises(SslibVerificationError):
        envelope.verify([keys.load_public_key(scene["outsider_pub"])], 1)


def test_envelope_made_by_other_means_is_accepted(scene: dict[str, Path]) -> None:
    """A Statement written by hand and signed with securesystemslib directly."""
    sha = hashlib.sha256(scene["artifact"].read_bytes()).hexdigest()
    payload = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "engine", "digest": {"sha256": sha, "sha512": "ab" * 64}}],
            "predicateType": "https://slsa.dev/verification_summary/v1",
            "predicate": {
                "verifier": {"id": "https://lab.example/verifier"},
                "timeVerified": "2026-02-02T00:00:00Z",
                "resourceUri": "pkg:generic/engine@1.0",
                "policy": {"uri": "https://lab.example/policy", "digest": {"sha256": "5" * 64}},
                "verificationResult": "PASSED",
                "verifiedLevels": ["SLSA_BUILD_LEVEL_3"],
                "https://lab.example/extra": {"anything": [1, 2]},
            },
        },
        indent=1,
    ).encode()
    envelope = Envelope(payload, "application/vnd.in-toto+json", {})
    envelope.sign(keys.load_signer(scene["lab_a"]))
    trust = check.Trust(keys=(keys.load_public_key(scene["lab_a_pub"]),))
    accepted = check.check_attestation(
        json.dumps(envelope.to_dict()).encode(),
        source="hand-made",
        trust=trust,
        artifacts={"engine": sha},
        policy_digest="sha256:" + "5" * 64,
        expect=check.Expect(verifier_ids=("https://lab.example/verifier",), require_rebuild=False),
    )
    assert accepted.signers == (f"key:{keys.load_public_key(scene['lab_a_pub']).keyid}",)


def _verify(
    run_cli: Cli,
    scene: dict[str, Path],
    *files: Path,
    extra: tuple[str, ...] = (),
    keys_: tuple[str, ...] = ("lab_a_pub",),
    artifact: str = "artifact",
) -> tuple[int, str, str]:
    argv: list[str | Path] = ["verify-attestation", *files, "--artifact", scene[artifact]]
    for name in keys_:
        argv += ["--key", scene[name]]
    return run_cli(*argv, *extra)


def test_valid_attestation_passes_with_policy_digest(scene: dict[str, Path], run_cli: Cli) -> None:
    report = report_for(scene["artifact"])
    path = sign_file(scene["root"] / "a.json", statement_bytes(report), scene["lab_a"])
    code, out, err = _verify(
        run_cli,
        scene,
        path,
        extra=("--policy-digest", report.manifest_sha256 or "", "--format", "json"),
    )
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["verdict"] == "pass"
    assert outcome["attestations"][0]["commit"] == COMMIT


def test_tampered_payload_fails(scene: dict[str, Path], run_cli: Cli) -> None:
    payload = statement_bytes(report_for(scene["artifact"], passed=False))
    path = sign_file(scene["root"] / "a.json", payload, scene["lab_a"])
    document = json.loads(path.read_bytes())
    forged = payload.replace(b'"FAILED"', b'"PASSED"')
    assert forged != payload
    document["payload"] = base64.b64encode(forged).decode()
    path.write_text(json.dumps(document))
    code, out, err = _verify(run_cli, scene, path)
    assert code == 1
    assert "does not verify" in out + err and "altered" in out + err


def test_signature_by_unlisted_key_fails(scene: dict[str, Path], run_cli: Cli) -> None:
    path = sign_file(
        scene["root"] / "a.json", statement_bytes(report_for(scene["artifact"])), scene["outsider"]
    )
    code, out, err = _verify(run_cli, scene, path)
    assert code == 1
    assert "signed by no trusted key" in out + err


def test_keyid_claiming_a_trusted_key_does_not_help_an_outsider(
    scene: dict[str, Path], run_cli: Cli
) -> None:
    path = sign_file(
        scene["root"] / "a.json", statement_bytes(report_for(scene["artifact"])), scene["outsider"]
    )
    document = json.loads(path.read_bytes())
    document["signatures"][0]["keyid"] = keys.load_public_key(scene["lab_a_pub"]).keyid
    path.write_text(json.dumps(document))
    code, out, err = _verify(run_cli, scene, path)
    assert code == 1
    assert "does not verify" in out + err


def test_attestation_for_another_file_fails(scene: dict[str, Path], run_cli: Cli) -> None:
    path = sign_file(
        scene["root"] / "a.json", statement_bytes(report_for(scene["other"])), scene["lab_a"]
    )
    code, out, err = _verify(run_cli, scene, path)
    assert code == 1
    assert "no subject matches artifact" in out + err and "another file" in out + err


def test_right_file_but_failed_result_fails(scene: dict[str, Path], run_cli: Cli) -> None:
    payload = statement_bytes(report_for(scene["artifact"], passed=False))
    path = sign_file(scene["root"] / "a.json", payload, scene["lab_a"])
    code, out, err = _verify(run_cli, scene, path)
    assert code == 1
    assert "verificationResult FAILED" in out + err


def test_replay_for_another_commit_fails_with_policy_digest(
    scene: dict[str, Path], run_cli: Cli
) -> None:
    """The same file once passed for another commit; the policy digest pins ours."""
    ours = report_for(scene["artifact"], commit=COMMIT)
    old = report_for(scene["artifact"], commit=OTHER_COMMIT)
    path = sign_file(
        scene["root"] / "old.json", statement_bytes(old, commit=OTHER_COMMIT), scene["lab_a"]
    )
    assert _verify(run_cli, scene, path)[0] == 0  # without the pin it is a valid attestation
    code, out, err = _verify(
        run_cli, scene, path, extra=("--policy-digest", ours.manifest_sha256 or "")
    )
    assert code == 1
    assert "another manifest" in out + err and OTHER_COMMIT in out + err


def test_same_signer_twice_does_not_meet_a_threshold_of_two(
    scene: dict[str, Path], run_cli: Cli
) -> None:
    payload = statement_bytes(report_for(scene["artifact"]))
    first = sign_file(scene["root"] / "1.json", payload, scene["lab_a"])
    second = sign_file(scene["root"] / "2.json", payload, scene["lab_a"])
    code, out, err = _verify(
        run_cli, scene, first, second, keys_=("lab_a_pub", "lab_b_pub"), extra=("--threshold", "2")
    )
    assert code == 1
    assert "only 1 distinct trusted signer" in out + err and "counts once" in out + err
    assert "FAIL threshold" in out


def test_same_key_listed_twice_is_one_signer(scene: dict[str, Path], run_cli: Cli) -> None:
    payload = statement_bytes(report_for(scene["artifact"]))
    first = sign_file(scene["root"] / "1.json", payload, scene["lab_a"])
    code, out, err = _verify(
        run_cli, scene, first, keys_=("lab_a_pub", "lab_a_pub"), extra=("--threshold", "2")
    )
    assert code == 2
    assert "can never be met" in out + err


def test_two_distinct_signers_meet_a_threshold_of_two(scene: dict[str, Path], run_cli: Cli) -> None:
    payload = statement_bytes(report_for(scene["artifact"]))
    first = sign_file(scene["root"] / "1.json", payload, scene["lab_a"])
    second = sign_file(scene["root"] / "2.json", payload, scene["lab_b"])
    both = ("lab_a_pub", "lab_b_pub", "outsider_pub")
    code, out, err = _verify(
        run_cli, scene, first, second, keys_=both, extra=("--threshold", "2", "--format", "json")
    )
    assert code == 0, err
    assert len(json.loads(out)["distinct_signers"]) == 2
    # One envelope carrying two signatures also counts two distinct signers.
    dual = sign_file(scene["root"] / "dual.json", payload, scene["lab_a"], scene["lab_b"])
    assert _verify(run_cli, scene, dual, keys_=both, extra=("--threshold", "2"))[0] == 0
    # ... but an outsider's extra signature does not count.
    mixed = sign_file(scene["root"] / "mixed.json", payload, scene["lab_a"], scene["outsider"])
    code, out, err = _verify(
        run_cli, scene, mixed, keys_=("lab_a_pub", "lab_b_pub"), extra=("--threshold", "2")
    )
    assert code == 1
    assert "only 1 distinct trusted signer" in out + err


def test_wrong_payload_type_or_predicate_type_fails(scene: dict[str, Path]) -> None:
    key = keys.load_public_key(scene["lab_a_pub"])
    trust = check.Trust(keys=(key,))
    sha = hashlib.sha256(scene["artifact"].read_bytes()).hexdigest()
    payload = statement_bytes(report_for(scene["artifact"]))
    envelope = Envelope(payload, "application/json", {})
    envelope.sign(keys.load_signer(scene["lab_a"]))
    with pytest.raises(VerificationError, match="payloadType"):
        check.check_attestation(
            json.dumps(envelope.to_dict()).encode(), source="x", trust=trust, artifacts={"e": sha}
        )
    other = payload.replace(b"verification_summary/v1", b"provenance/v1")
    signed = dsse.sign_envelope(other, [keys.load_signer(scene["lab_a"])])
    with pytest.raises(VerificationError, match="predicateType"):
        check.check_attestation(signed, source="x", trust=trust, artifacts={"e": sha})


def test_duplicate_json_keys_in_the_payload_are_refused(scene: dict[str, Path]) -> None:
    """Two parsers must never read two different results from one signed payload."""
    payload = statement_bytes(report_for(scene["artifact"], passed=False))
    doubled = payload.replace(
        b'"verificationResult":"FAILED"',
        b'"verificationResult":"FAILED","verificationResult":"PASSED"',
    )
    signed = dsse.sign_envelope(doubled, [keys.load_signer(scene["lab_a"])])
    trust = check.Trust(keys=(keys.load_public_key(scene["lab_a_pub"]),))
    sha = hashlib.sha256(scene["artifact"].read_bytes()).hexdigest()
    with pytest.raises(VerificationError, match="duplicate key"):
        check.check_attestation(signed, source="x", trust=trust, artifacts={"e": sha})


def test_one_bad_file_among_good_ones_fails_the_run(scene: dict[str, Path], run_cli: Cli) -> None:
    good = sign_file(
        scene["root"] / "good.json", statement_bytes(report_for(scene["artifact"])), scene["lab_a"]
    )
    bad = sign_file(
        scene["root"] / "bad.json",
        statement_bytes(report_for(scene["artifact"], passed=False)),
        scene["lab_b"],
    )
    code, out, _ = _verify(run_cli, scene, good, bad, keys_=("lab_a_pub", "lab_b_pub"))
    assert code == 1
    assert "ok   " in out and "FAIL " in out


def test_bad_input_exits_2(scene: dict[str, Path], run_cli: Cli) -> None:
    junk = scene["root"] / "junk.json"
    junk.write_text("not json")
    assert _verify(run_cli, scene, junk)[0] == 2
    junk.write_text('{"hello": "world"}')
    assert _verify(run_cli, scene, junk)[0] == 2
    good = sign_file(
        scene["root"] / "good.json", statement_bytes(report_for(scene["artifact"])), scene["lab_a"]
    )
    assert _verify(run_cli, scene, good, extra=("--policy-digest", "abc"))[0] == 2
    assert _verify(run_cli, scene, good, keys_=())[0] == 2
    assert _verify(run_cli, scene, good, extra=("--threshold", "0"))[0] == 2


def test_input_attestations_name_the_intoto_layout_and_links(scene: dict[str, Path]) -> None:
    from reprover.model import InTotoSpec, Manifest, Recipe, SourceSpec

    root = scene["root"]
    (root / "links").mkdir()
    layout = root / "root.layout"
    layout.write_bytes(b'{"signed": {"_type": "layout"}}')
    (root / "links" / "build.abcd1234.link").write_bytes(b'{"signed": {"name": "build"}}')
    (root / "links" / "notes.txt").write_bytes(b"not a link")
    spec = Manifest(
        path=root / "reprover.toml",
        sha256="7" * 64,
        source=SourceSpec("https://git.example/engine.git", COMMIT),
        recipe=Recipe(command=("make",)),
        release=root / "release",
        intoto=InTotoSpec(layout, (scene["lab_a_pub"],), root / "links"),
    )
    report = report_for(scene["artifact"])
    inputs = statement.inputs_from_manifest(spec, report)
    data = statement.build_statement(report, inputs)
    assert data["predicate"]["inputAttestations"] == [
        {
            "uri": "root.layout",
            "digest": {"sha256": hashlib.sha256(layout.read_bytes()).hexdigest()},
        },
        {
            "uri": "links/build.abcd1234.link",
            "digest": {"sha256": hashlib.sha256(b'{"signed": {"name": "build"}}').hexdigest()},
        },
    ]
    assert data["subject"][0]["name"] == "engine"
