"""Policy and signature verdicts through the real CLI: equivalent, signature-only, refusals."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import git, make_repo
from signature_support import fx, set_table_fields, table_of, unsigned_part, with_table

Cli = Callable[..., tuple[int, str, str]]
LEDGER = Path(__file__).parent / "fixtures" / "ledger"


def _artifact(out: str) -> dict[str, object]:
    [artifact] = json.loads(out)["artifacts"]
    return artifact  # type: ignore[no-any-return]


def test_timestamp_pair_is_equivalent_only_when_both_rules_allow(run_cli: Cli) -> None:
    a, b = LEDGER / "pe-mingw-timestamp" / "a", LEDGER / "pe-mingw-timestamp" / "b"
    code, out, _ = run_cli("diff", a, b, "--format", "json")
    assert code == 1
    assert _artifact(out)["verdict"] == "different"
    code, out, _ = run_cli("diff", a, b, "--format", "json", "--allow", "pe.timestamp")
    assert code == 1, "the checksum follows the timestamp and is not allowed yet"
    code, out, _ = run_cli(
        "diff", a, b, "--format", "json", "--allow", "pe.timestamp", "--allow", "pe.checksum"
    )
    assert code == 0
    artifact = _artifact(out)
    assert artifact["verdict"] == "equivalent"
    rules = {d["rule"] for d in artifact["differences"]}  # type: ignore[union-attr]
    assert rules == {"pe.timestamp", "pe.checksum"}


def test_unknown_rule_is_bad_input(run_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    code, _, err = run_cli("diff", tmp_path / "a", tmp_path / "a", "--allow", "everything")
    assert code == 2
    assert "unknown policy rule 'everything'" in err
    assert "pe.timestamp" in err


def test_signed_release_is_signature_only_when_allowed(run_cli: Cli) -> None:
    signed, unsigned = fx("signed.exe"), fx("unsigned.exe")
    code, out, _ = run_cli("diff", signed, unsigned, "--format", "json")
    assert code == 1
    code, out, _ = run_cli("diff", signed, unsigned, "--format", "json", "--allow", "signature")
    assert code == 0, out
    artifact = _artifact(out)
    assert artifact["verdict"] == "signature-only"
    assert all(d["allowed"] and d["rule"] == "signature" for d in artifact["differences"])  # type: ignore[union-attr]
    assert any("released = rebuilt + Authenticode signature" in n for n in artifact["notes"])  # type: ignore[union-attr]


def test_cve_2013_3900_hidden_data_is_never_allowed(run_cli: Cli, tmp_path: Path) -> None:
    """Data appended inside the certificate area, sizes raised to cover it: `different`."""
    signed = fx("signed.exe").read_bytes()
    table = table_of(signed)
    length = struct.unpack_from("<I", table)[0]
    payload = b"EVIL" * 16
    grown = struct.pack("<I", length + len(payload)) + table[4:length] + payload + table[length:]
    tampered = set_table_fields(unsigned_part(signed) + grown, size=len(grown))
    path = tmp_path / "tampered.exe"
    path.write_bytes(tampered)
    code, out, _ = run_cli(
        "diff",
        path,
        fx("unsigned.exe"),
        "--format",
        "json",
        "--allow",
        "signature",
        "--allow",
        "pe.checksum",
    )
    assert code == 1
    artifact = _artifact(out)
    assert artifact["verdict"] == "different"
    assert any(n.startswith("signature-only refused") for n in artifact["notes"])  # type: ignore[union-attr]


def test_signature_copied_from_another_binary_is_different(run_cli: Cli, tmp_path: Path) -> None:
    forged = with_table(
        fx("unsigned.exe").read_bytes(), table_of(fx("other-signed.exe").read_bytes())
    )
    path = tmp_path / "forged.exe"
    path.write_bytes(forged)
    code, out, _ = run_cli(
        "diff", path, fx("unsigned.exe"), "--format", "json", "--allow", "signature"
    )
    assert code == 1
    assert _artifact(out)["verdict"] == "different"


MINGW_MAKEFILE = """\
all: out/engine.exe
out/engine.exe: engine.c
\tmkdir -p out
\tx86_64-w64-mingw32-gcc -O2 -Wl,--no-insert-timestamp -o $@ engine.c
"""


@pytest.mark.skipif(shutil.which("x86_64-w64-mingw32-gcc") is None, reason="needs mingw-w64")
@pytest.mark.skipif(shutil.which("osslsigncode") is None, reason="needs osslsigncode")
def test_verify_signed_release_against_pinned_ca(run_cli: Cli, tmp_path: Path) -> None:
    """The vendor signs its PE release; reprover rebuilds unsigned and proves signature-only."""
    repo = tmp_path / "engine"
    commit = make_repo(
        repo, {"engine.c": "int main(void) { return 42; }\n", "Makefile": MINGW_MAKEFILE}
    )
    vendor = tmp_path / "vendor"
    git(tmp_path, "clone", "--quiet", "--no-local", str(repo), str(vendor))
    subprocess.run(["make"], cwd=vendor, check=True, capture_output=True)
    release = tmp_path / "release"
    release.mkdir()
    subprocess.run(
        [
            "osslsigncode",
            "sign",
            "-certs",
            str(fx("leaf.pem")),
            "-key",
            str(fx("leaf.key")),
            "-h",
            "sha256",
            "-in",
            str(vendor / "out" / "engine.exe"),
            "-out",
            str(release / "engine.exe"),
        ],
        check=True,
        capture_output=True,
    )
    manifest = tmp_path / "reprover.toml"
    manifest.write_text(
        f'[source]\nrepo = "engine"\ncommit = "{commit}"\n'
        f'[build]\ncommand = ["make"]\npath = "{tmp_path / "build"}"\n'
        '[release]\npath = "release"\n'
        '[policy]\nallow = ["signature"]\n'
        f'[signature]\ntrusted = ["{fx("ca.pem")}"]\n'
    )
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0, out
    assert _artifact(out)["verdict"] == "signature-only"
    assert run_cli("verify", manifest, "--strict")[0] == 1
    other = manifest.read_text().replace(str(fx("ca.pem")), str(fx("other-ca.pem")))
    manifest.write_text(other)
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 1
    assert any("refused" in n for n in _artifact(out)["notes"])  # type: ignore[union-attr]
