"""Reports that say true things (#14): one test per wording fault, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from attest_support import new_key, report_for, sign_file, statement_bytes
from conftest import Project, git
from signature_support import fx

Cli = Callable[..., tuple[int, str, str]]


def test_repeat_block_names_the_manifest_that_ran(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest(name="reprover-tampered.toml")
    binary = project.release / "hello"
    data = bytearray(binary.read_bytes())
    data[0x1100] ^= 0xFF
    binary.write_bytes(bytes(data))
    page, summary = project.root / "r.html", project.root / "r.md"
    code, out, _ = run_cli(
        "verify", manifest, "--report", f"html={page}", "--report", f"markdown={summary}"
    )
    assert code == 1
    for text in (out, page.read_text(), summary.read_text()):
        assert f"reprover verify {manifest}" in text
        assert "reprover verify reprover.toml" not in text


def test_the_digest_policy_digest_takes_is_labelled_so(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest()
    page = project.root / "r.html"
    code, out, _ = run_cli("verify", manifest, "--format", "json", "--report", f"html={page}")
    assert code == 0
    document = json.loads(out)
    assert document["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    html = page.read_text()
    label = "Manifest SHA-256 (what verify-attestation --policy-digest takes)"
    assert re.search(re.escape(label) + r"</th><td><code>" + document["manifest_sha256"], html)
    assert "Policy rules SHA-256 (the allow list alone, not for --policy-digest)" in html
    assert "<th>Policy SHA-256</th>" not in html


def _signed_release(root: Path) -> Path:
    """A repository whose build copies a committed unsigned PE; the release is it signed."""
    repo = root / "repo"
    repo.mkdir()
    (repo / "app.exe").write_bytes(fx("unsigned.exe").read_bytes())
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "unsigned build output")
    commit = git(repo, "rev-parse", "HEAD")
    (root / "release").mkdir()
    (root / "release" / "app.exe").write_bytes(fx("signed.exe").read_bytes())
    manifest = root / "reprover.toml"
    manifest.write_text(
        f'[source]\nrepo = "repo"\ncommit = "{commit}"\n'
        '[build]\ncommand = "mkdir -p out && cp app.exe out/app.exe"\noutput = "out"\n'
        f'path = "{root / "build"}"\ntimeout = 60\n'
        '[release]\npath = "release"\n[policy]\nallow = ["signature"]\n'
    )
    return manifest


def test_strict_says_it_refused_the_signature_only_artifact(tmp_path: Path, run_cli: Cli) -> None:
    manifest = _signed_release(tmp_path)
    code, out, err = run_cli("verify", manifest)
    assert code == 0, err
    assert "signature-only" in out
    code, out, _ = run_cli("verify", manifest, "--strict")
    assert code == 1
    assert "refused by --strict (it accepts only identical)" in out
    assert "under --strict, which accepts only byte-identical artifacts" in out


def test_diff_and_sign_check_speak_of_their_own_inputs(tmp_path: Path, run_cli: Cli) -> None:
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"\x00" * 64)
    new.write_bytes(b"\x00" * 63 + b"\x01")
    for fmt in ("text", "html", "markdown", "junit"):
        code, out, _ = run_cli("diff", old, new, "--format", fmt)
        assert code == 1
        assert "under --strict" not in out and "what the source builds" not in out, fmt
        assert "1 of 1 file does not match" in out or fmt == "junit"
    code, out, _ = run_cli("diff", old, old, "--format", "html")
    assert code == 0
    assert "PASS: the only file (1 identical) matches between OLD and NEW." in out
    unsigned, signed = fx("unsigned.exe"), fx("signed.exe")
    code, out, _ = run_cli("sign-check", unsigned, signed, "--format", "markdown")
    assert code == 0
    assert "what the source builds" not in out
    assert "the signed file is the unsigned file plus a valid code signature" in out
    assert f"reprover sign-check {unsigned} {signed}\n" in out  # the repeat block has arguments


def test_last_byte_is_inclusive(tmp_path: Path, run_cli: Cli) -> None:
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(bytes(0x100))
    changed = bytearray(0x100)
    changed[0xD8:0xDA] = b"\x01\x02"
    new.write_bytes(bytes(changed))
    outputs = {fmt: run_cli("diff", old, new, "--format", fmt)[1] for fmt in ("html", "markdown")}
    outputs["junit"] = run_cli("diff", old, new, "--format", "junit")[1]
    assert "0xd8\u20130xd9" in outputs["html"] and "0xda" not in outputs["html"]
    assert "`0xd8`\u2013`0xd9`" in outputs["markdown"]
    assert "bytes 0xd8-0xd9" in outputs["junit"]


def test_one_ledger_per_file_pair_whichever_command(tmp_path: Path, run_cli: Cli) -> None:
    unsigned, signed = fx("unsigned.exe"), fx("signed.exe")
    _, diff_out, _ = run_cli("diff", signed, unsigned, "--format", "json")
    _, sign_out, _ = run_cli("sign-check", unsigned, signed, "--format", "json")

    def ledger(document: str) -> list[tuple[object, ...]]:
        [artifact] = json.loads(document)["artifacts"]
        return [
            (d["offset"], d["length"], d["region"], d["kind"], d["cause"], d["detail"])
            for d in artifact["differences"]
        ]

    assert ledger(diff_out) == ledger(sign_out)
    assert ledger(diff_out)  # a real ledger, not two empty ones


def test_values_say_which_side_is_which_and_counts_are_singular(
    tmp_path: Path, run_cli: Cli
) -> None:
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(b"\x01" + bytes(63))
    new.write_bytes(bytes(64))
    _, out, _ = run_cli("diff", old, new)
    assert "1 differing run, 1 byte (values shown OLD -> NEW):" in out
    assert "1 run, 1 byte" in out
    assert "1 runs" not in out and "1 bytes" not in out
    _, out, _ = run_cli("sign-check", fx("unsigned.exe"), fx("signed.exe"))
    assert "(values shown SIGNED -> UNSIGNED)" in out


def test_verify_attestation_says_each_thing_once(tmp_path: Path, run_cli: Cli) -> None:
    artifact = tmp_path / "scan"
    artifact.write_bytes(b"released bytes")
    key, pub = new_key(tmp_path / "keys", "lab")
    failed = sign_file(
        tmp_path / "failed.json", statement_bytes(report_for(artifact, passed=False)), key
    )
    code, out, err = run_cli("verify-attestation", failed, "--artifact", artifact, "--key", pub)
    assert code == 1
    assert out.startswith("verdict: FAIL\n")
    [fail_line] = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert fail_line.count(str(failed)) == 1  # the path once
    assert "signers: not counted: 1 of 1 attestation(s) failed" in out
    assert "0 distinct trusted" not in out
    assert out.count("verificationResult") == 1 and err.count("verificationResult") == 1
    passed = sign_file(tmp_path / "passed.json", statement_bytes(report_for(artifact)), key)
    code, out, _ = run_cli("verify-attestation", passed, "--artifact", artifact, "--key", pub)
    assert code == 0
    assert out.startswith("verdict: PASS\n")


def test_a_file_that_is_not_a_certificate_gives_no_parser_internals(
    tmp_path: Path, run_cli: Cli
) -> None:
    text = tmp_path / "a.txt"
    text.write_text("not a certificate\n")
    code, _, err = run_cli("sign-check", fx("unsigned.exe"), fx("signed.exe"), "--trusted", text)
    assert code == 2
    assert "not a PEM or DER certificate" in err
    assert "ParseError" not in err and "ShortData" not in err


def test_diff_allow_speaks_of_allow(tmp_path: Path, run_cli: Cli) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"a")
    code, _, err = run_cli("diff", a, a, "--allow", "bogus")
    assert code == 2
    assert "unknown policy rule 'bogus' in --allow" in err
    assert "[policy]" not in err
