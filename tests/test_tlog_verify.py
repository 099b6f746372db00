"""End to end: `reprover verify --attest ... --log` logs pass and fail; `verify-attestation
--log-vkey` requires the proof, and k witnesses when asked."""

from __future__ import annotations

import json

from attest_support import new_key
from conftest import Project
from tlog_support import Cli, make_key, make_log


def test_pass_and_fail_are_logged_and_proofs_check_offline(project: Project, run_cli: Cli) -> None:
    key, pub = new_key(project.root / "keys", "lab")
    log = make_log(run_cli, project.root / "evidence", entries=0)
    manifest = project.manifest()
    released = project.release / "hello"
    logged = ("--log", log.logdir, "--log-key", log.key)
    passed = project.root / "pass.intoto.json"
    code, _, err = run_cli(
        "verify", manifest, "-o", project.root / "r1.txt", "--attest", passed,
        "--attest-key", key, *logged,
    )  # fmt: skip
    assert code == 0, err
    assert "attestation logged as entry 0" in err
    proof = json.loads((project.root / "pass.intoto.json.proof.json").read_text())
    assert proof["index"] == 0
    assert proof["checkpoint"].startswith(f"{log.vkey.split('+')[0]}\n1\n")
    check = ("verify-attestation", passed, "--artifact", released, "--key", pub)
    code, out, err = run_cli(*check, "--log-vkey", log.vkey)
    assert code == 0, err
    assert "logged as entry 0 of transparency.example/evidence at size 1" in out
    code, out, err = run_cli(*check, "--log-vkey", log.vkey, "--format", "json")
    assert code == 0, err
    [item] = json.loads(out)["attestations"]
    assert item["log"] == {
        "index": 0,
        "origin": "transparency.example/evidence",
        "size": 1,
        "witnesses": [],
    }

    # the vendor ships a changed binary: the FAILED result is logged too
    original = released.read_bytes()
    data = bytearray(original)
    data[0x1100] ^= 0xFF
    released.write_bytes(bytes(data))
    failed = project.root / "fail.intoto.json"
    code, _, err = run_cli(
        "verify", manifest, "-o", project.root / "r2.txt", "--attest", failed,
        "--attest-key", key, *logged,
    )  # fmt: skip
    assert code == 1
    assert "attestation logged as entry 1" in err
    code, out, err = run_cli(
        "log", "check", project.root / "fail.intoto.json.proof.json", failed, "--vkey", log.vkey
    )
    assert code == 0, err
    assert "is entry 1 of" in out
    assert run_cli("log", "audit", log.logdir, "--vkey", log.vkey)[0] == 0
    released.write_bytes(original)

    # the first attestation still checks; a witness requirement needs a cosigned proof
    wkey = make_key(run_cli, project.root / "keys", "witness")
    _, wvkey, _ = run_cli("log", "vkey", "--name", "gov.example/w", "--key", wkey, "--witness")
    need = ("--log-vkey", log.vkey, "--witness-vkey", wvkey.strip(), "--witnesses", "1")
    code, out, err = run_cli(*check, *need)
    assert code == 1
    assert "0 valid cosignatures by trusted witnesses, 1 required" in out + err
    seen = project.root / "seen"
    seen.write_bytes(b"".join(proof["checkpoint"].encode().splitlines(keepends=True)))
    code, _, err = run_cli(
        "log", "witness", log.logdir, "--vkey", log.vkey, "--key", wkey,
        "--name", "gov.example/w", "--since", seen,
    )  # fmt: skip
    assert code == 0, err
    target = project.root / "pass.intoto.json.proof.json"
    assert run_cli("log", "prove", log.logdir, passed, "-o", target)[0] == 0
    code, out, err = run_cli(*check, *need)
    assert code == 0, err
    assert "at size 2, cosigned by gov.example/w" in out


def test_unlogged_attestation_fails_and_a_wrong_log_key_stops_before_the_build(
    project: Project, run_cli: Cli
) -> None:
    key, pub = new_key(project.root / "keys", "lab")
    log = make_log(run_cli, project.root / "evidence", entries=0)
    manifest = project.manifest()
    out = project.root / "a.intoto.json"
    assert run_cli("verify", manifest, "-o", project.root / "r.txt", "--attest", out,
                   "--attest-key", key)[0] == 0  # fmt: skip
    released = project.release / "hello"
    code, stdout, err = run_cli(
        "verify-attestation", out, "--artifact", released, "--key", pub, "--log-vkey", log.vkey
    )
    assert code == 1
    assert "has no log proof" in stdout + err
    stranger = make_key(run_cli, project.root / "keys", "stranger")
    code, _, err = run_cli(
        "verify", manifest, "--attest", out, "--attest-key", key,
        "--log", log.logdir, "--log-key", stranger,
    )  # fmt: skip
    assert code == 1
    assert "--log-key is not the key of the log" in err
    code, _, err = run_cli("verify", manifest, "--log", log.logdir, "--log-key", log.key)
    assert code == 2
    assert "--log needs" in err
