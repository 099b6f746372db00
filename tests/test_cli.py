"""The CLI contract: help, usage errors, the single catch-all, `diff`, `key new`, the demo."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from reprover import cli

Cli = Callable[..., tuple[int, str, str]]


def test_help_and_version(run_cli: Cli) -> None:
    code, out, _ = run_cli("--help")
    assert code == 0
    assert "exit codes" in out
    assert run_cli("--version")[0] == 0


def test_usage_errors_exit_2(run_cli: Cli) -> None:
    assert run_cli("no-such-command")[0] == 2
    assert run_cli("diff", "only-one")[0] == 2
    assert run_cli("verify", "--format", "pdf")[0] == 2


def test_unexpected_exception_is_one_line_exit_3(
    run_cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def explode(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.diff, "hash_files", explode)
    (tmp_path / "a").write_bytes(b"a")
    code, out, err = run_cli("diff", tmp_path / "a", tmp_path / "a")
    assert code == 3
    assert out == ""
    assert "internal error: RuntimeError: boom" in err
    assert "Traceback" not in err
    assert "--verbose" in err
    code, _, err = run_cli("diff", "--verbose", tmp_path / "a", tmp_path / "a")
    assert code == 3
    assert "Traceback" in err


def test_diff_files(run_cli: Cli, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(bytes(64))
    b.write_bytes(bytes(10) + b"\x01\x02" + bytes(52))
    assert run_cli("diff", a, a)[0] == 0
    code, out, _ = run_cli("diff", a, b, "--format", "json")
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    assert artifact["verdict"] == "different"
    assert [(d["offset"], d["length"]) for d in artifact["differences"]] == [(10, 2)]


def test_diff_folders(run_cli: Cli, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        (folder / "bin").mkdir(parents=True)
        (folder / "bin" / "same").write_bytes(b"same")
    (old / "gone").write_bytes(b"x")
    (new / "added").write_bytes(b"y")
    code, out, _ = run_cli("diff", old, new, "--format", "json")
    assert code == 1
    verdicts = {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}
    assert verdicts == {"added": "unexpected", "bin/same": "identical", "gone": "missing"}
    # --allow relaxes strictness for labelled regions, never for a file on one side only
    (old / "gone").unlink()
    assert run_cli("diff", old, new, "--allow", "pe.timestamp")[0] == 1
    (new / "added").unlink()
    assert run_cli("diff", old, new, "--allow", "pe.timestamp")[0] == 0


def test_diff_folders_follow_symlinks_only_inside(run_cli: Cli, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
        (folder / "lib.so.1").write_bytes(b"library")
        (folder / "lib.so").symlink_to("lib.so.1")
    assert run_cli("diff", old, new)[0] == 0
    (tmp_path / "secret").write_bytes(b"outside")
    (new / "escape").symlink_to(tmp_path / "secret")
    (old / "escape").write_bytes(b"outside")
    code, _, err = run_cli("diff", old, new)
    assert code == 2
    assert "outside" in err


def test_diff_bad_input(run_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    code, _, err = run_cli("diff", tmp_path / "file", tmp_path)
    assert code == 2
    assert "one is a folder" in err
    code, _, err = run_cli("diff", tmp_path / "nothing", tmp_path / "file")
    assert code == 2
    assert "does not exist" in err


def test_output_in_a_missing_folder_creates_it(run_cli: Cli, tmp_path: Path) -> None:
    """One rule for every command: missing parent folders of an output are created."""
    a = tmp_path / "a"
    a.write_bytes(b"a")
    code, out, _ = run_cli("diff", a, a, "-o", tmp_path / "no" / "report.txt")
    assert code == 0
    assert out == ""
    assert (tmp_path / "no" / "report.txt").read_text().startswith("verdict: PASS")
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    code, _, err = run_cli("diff", a, a, "-o", blocked / "report.txt")
    assert code == 2
    assert "is not a folder" in err


def test_key_new_writes_pem_pair(
    run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprover.keys import load_public_key, load_signer

    code, out, _ = run_cli("key", "new", "owner", "--dir", tmp_path)
    assert code == 0
    private, public = tmp_path / "owner.pem", tmp_path / "owner.pub.pem"
    assert out.split() == [str(private), str(public)]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_signer(private).public_key.keyid == load_public_key(public).keyid
    assert run_cli("key", "new", "owner", "--dir", tmp_path)[0] == 2
    monkeypatch.setenv("KEY_PASS", "correct horse")
    assert (
        run_cli("key", "new", "locked", "--dir", tmp_path, "--passphrase-env", "KEY_PASS")[0] == 0
    )
    assert b"ENCRYPTED" in (tmp_path / "locked.pem").read_bytes()
    load_signer(tmp_path / "locked.pem", b"correct horse")
    from reprover.errors import InputError

    with pytest.raises(InputError, match="passphrase"):
        load_signer(tmp_path / "locked.pem")
    with pytest.raises(InputError, match="not a usable private key"):
        load_signer(tmp_path / "locked.pem", b"wrong")


@pytest.mark.slow
def test_demo_runs_end_to_end(run_cli: Cli, tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    code, out, err = run_cli("demo", "--workspace", workspace)
    assert code == 0, out + err
    assert "demo: every step behaved as expected" in out
    assert "verdict: PASS" in out
    assert "verdict: FAIL" in out
    assert (workspace / "reprover.toml").is_file()
    cwd = Path.cwd()
    os.chdir(workspace)
    try:
        assert run_cli("verify", "--quiet")[0] == 0
        assert run_cli("verify", "reprover-tampered.toml", "--quiet")[0] == 1
        code, out, _ = run_cli("verify", "reprover-tampered-links.toml", "--format", "json")
        assert code == 1
        [intoto] = [c for c in json.loads(out)["checks"] if c["name"] == "in-toto"]
        assert intoto["passed"] is False
        # the reviewer re-checks that both results are in the evidence log, offline
        vkey = "evidence-log/log.vkey"
        for name in ("pass", "fail"):
            proof = f"{name}.intoto.json.proof.json"
            assert run_cli("log", "check", proof, f"{name}.intoto.json", "--vkey", vkey)[0] == 0
        assert run_cli("log", "audit", "evidence-log", "--vkey", vkey)[0] == 0
        code, _, err = run_cli(
            "verify-attestation", "pass.intoto.json", "--artifact", "release/scan",
            "--key", "keys/lab.pub.pem", "--log-vkey", vkey,
        )  # fmt: skip
        assert code == 0, err
    finally:
        os.chdir(cwd)
    # A second run replaces the previous demo; a foreign folder is never replaced.
    assert run_cli("demo", "--workspace", workspace, "--quiet")[0] == 0
    foreign = tmp_path / "mine"
    (foreign / "file").parent.mkdir()
    (foreign / "file").write_text("mine")
    code, _, err = run_cli("demo", "--workspace", foreign)
    assert code == 2
    assert (foreign / "file").read_text() == "mine"
