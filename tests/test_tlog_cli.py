"""`reprover log ...` end to end through the CLI: init, append, prove, check, audit, witness."""

from __future__ import annotations

from pathlib import Path

from tlog_support import ORIGIN, Cli, append, make_key, make_log


def test_init_prints_the_vkey_and_writes_log_vkey(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=0)
    assert log.vkey.startswith(ORIGIN + "+")
    assert (log.logdir / "log.vkey").read_text().strip() == log.vkey
    assert (log.logdir / "checkpoint").read_text().startswith(f"{ORIGIN}\n0\n")
    code, _, err = run_cli("log", "init", log.logdir, "--origin", ORIGIN, "--key", log.key)
    assert code == 2
    assert "not empty" in err


def test_prove_and_check_offline_in_both_formats(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=300)
    target = log.files[257]
    for name in ("p.json", "p.tlog-proof"):
        proof = tmp_path / name
        code, _, err = run_cli("log", "prove", log.logdir, target, "-o", proof, "--vkey", log.vkey)
        assert code == 0, err
        code, out, err = run_cli("log", "check", proof, target, "--vkey", log.vkey)
        assert code == 0, err
        assert f"is entry 257 of {ORIGIN} at size 300" in out
        code, _, err = run_cli("log", "check", proof, log.files[256], "--vkey", log.vkey)
        assert code == 1
        assert "not in that tree" in err
    assert (tmp_path / "p.tlog-proof").read_text().startswith("c2sp.org/tlog-proof@v1\nindex 257\n")
    vkey_file = log.logdir / "log.vkey"
    code, _, _ = run_cli("log", "check", tmp_path / "p.json", target, "--vkey", vkey_file)
    assert code == 0


def test_a_file_that_was_never_logged_cannot_be_proven(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=3)
    stranger = log.file("stranger", b"never logged\n")
    code, _, err = run_cli("log", "prove", log.logdir, stranger, "-o", tmp_path / "p.json")
    assert code == 1
    assert "not among the 3 entries" in err
    assert not (tmp_path / "p.json").exists()


def test_audit_since_an_old_checkpoint_and_a_copy(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=5)
    old = tmp_path / "old.checkpoint"
    old.write_bytes((log.logdir / "checkpoint").read_bytes())
    mirror = log.copy("mirror")
    append(run_cli, log, [b"later %d" % i for i in range(600)])
    code, out, err = run_cli("log", "audit", log.logdir, "--vkey", log.vkey, "--since", old)
    assert code == 0, err
    assert "605 entries" in out
    assert "consistent with the checkpoint of size 5" in out
    code, _, err = run_cli("log", "audit", log.logdir, "--vkey", log.vkey, "--since", mirror)
    assert code == 0, err


def test_witness_cosigns_and_check_counts_witnesses(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=4)
    wkey = make_key(run_cli, tmp_path / "keys", "witness")
    code, wvkey, _ = run_cli(
        "log", "vkey", "--name", "auditor.example/w1", "--key", wkey, "--witness"
    )
    assert code == 0
    seen = tmp_path / "witness-state"
    seen.write_bytes((log.logdir / "checkpoint").read_bytes())
    append(run_cli, log, [b"x", b"y"])
    code, out, err = run_cli(
        "log", "witness", log.logdir, "--vkey", log.vkey, "--key", wkey,
        "--name", "auditor.example/w1", "--since", seen, "-o", seen,
    )  # fmt: skip
    assert code == 0, err
    assert out.count("\u2014 ") == 2
    assert seen.read_text() == out
    proof = tmp_path / "p.json"
    assert run_cli("log", "prove", log.logdir, log.files[5], "-o", proof)[0] == 0
    ok = run_cli(
        "log", "check", proof, log.files[5], "--vkey", log.vkey,
        "--witness-vkey", wvkey.strip(), "--witnesses", "1",
    )  # fmt: skip
    assert ok[0] == 0, ok[2]
    assert "cosigned by auditor.example/w1" in ok[1]
    other = make_key(run_cli, tmp_path / "keys", "other")
    code, other_vkey, _ = run_cli(
        "log", "vkey", "--name", "other.example/w", "--key", other, "--witness"
    )
    code, _, err = run_cli(
        "log", "check", proof, log.files[5], "--vkey", log.vkey,
        "--witness-vkey", wvkey.strip(), "--witness-vkey", other_vkey.strip(), "--witnesses", "2",
    )  # fmt: skip
    assert code == 1
    assert "1 valid cosignatures by trusted witnesses, 2 required" in err
    # the log's own later appends keep working after a cosignature
    append(run_cli, log, [b"z"])
    assert run_cli("log", "audit", log.logdir, "--vkey", log.vkey, "--since", seen)[0] == 0


def test_malformed_inputs_exit_2(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=2)
    junk = tmp_path / "junk.json"
    junk.write_text('{"schema": "reprover/tlog-proof/v1", "index": "zero"}')
    code, _, err = run_cli("log", "check", junk, log.files[0], "--vkey", log.vkey)
    assert code == 2, err
    code, _, err = run_cli("log", "check", junk, log.files[0], "--vkey", "not-a-vkey")
    assert code == 2, err
    code, _, err = run_cli("log", "audit", tmp_path / "nowhere", "--vkey", log.vkey)
    assert code == 2, err


def test_outputs_never_go_into_the_log_or_over_an_input(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=2)
    before = (log.logdir / "checkpoint").read_bytes()
    for target in (log.logdir / "checkpoint", log.files[0], log.logdir / "new.json"):
        code, _, err = run_cli("log", "prove", log.logdir, log.files[0], "-o", target)
        assert code == 2, err
        assert "refusing to write" in err
    assert (log.logdir / "checkpoint").read_bytes() == before
    assert log.files[0].read_bytes() == b"entry 0\n"
