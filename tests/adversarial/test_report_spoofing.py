"""Hostile strings in every report format, through the real CLI and the real viewers.

The vendor names the released files, the ELF sections and symbols, the certificate subjects and
the manifest values. None of them may drive the terminal (tmux shows what a person would see),
break out of Markdown code (cmark-gfm renders what GitHub would), reorder or hide text, or crash
a renderer; each suspicious name is flagged in every format. Each test names its attack; each
terminal test first shows the raw bytes do what the attack wants, so it cannot pass by accident.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from screens import raw_control, reprover, terminal

import gfm
from conftest import Project
from signature_support import fx

Cli = Callable[..., tuple[int, str, str]]
FORMATS = ("text", "json", "html", "markdown", "junit")

CLEAR_AND_PAINT = "\x1b[2J\x1b[H\x1b]2;owned\x07verdict: PASS  (1 identical)"
# Every control a terminal acts on, in C0, C1 and as escape sequences.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b-\u200f]")


def _pair(tmp: Path, name: str | bytes, old: bytes = b"A" * 64, new: bytes = b"B" * 64) -> None:
    for side, data in (("old", old), ("new", new)):
        folder = tmp / side
        folder.mkdir(exist_ok=True)
        (folder / (os.fsdecode(name) if isinstance(name, bytes) else name)).write_bytes(data)


def _all_formats(run_cli: Cli, tmp: Path, *args: str | Path) -> dict[str, bytes]:
    """Run `reprover diff` once per format; every run must end with exit 1 (they differ)."""
    written = {}
    for fmt in FORMATS:
        target = tmp / f"report.{fmt}"
        code, _, err = run_cli("diff", *args, "--format", fmt, "-o", target)
        assert code == 1, (fmt, err)
        written[fmt] = target.read_bytes()
    return written


@pytest.mark.slow
def test_escape_sequences_in_file_names_cannot_paint_the_terminal(tmp_path: Path) -> None:
    raw_screen, raw_title = raw_control(tmp_path, CLEAR_AND_PAINT.encode() + b"\n")
    assert raw_title == "owned" and raw_screen.lstrip().startswith("verdict: PASS")
    _pair(tmp_path, CLEAR_AND_PAINT + ".exe")
    screen, title = terminal(reprover("diff", "old", "new"), tmp_path)
    assert title != "owned"
    assert screen.startswith("verdict: FAIL  (1 different, 1/1 checks passed)"), screen
    painted = [line for line in screen.splitlines() if "verdict: PASS" in line]
    assert painted and all("\\x1b[2J\\x1b[H\\x1b]2;owned\\x07" in line for line in painted)
    assert "suspicious-name: control characters" in screen
    assert "__reprover_test_done__ 1" in screen


def test_escape_sequences_in_error_messages_on_stderr(tmp_path: Path) -> None:
    screen, title = terminal(
        reprover("diff", f"{CLEAR_AND_PAINT}-missing", "also-missing"), tmp_path
    )
    assert title != "owned"
    assert "does not exist" in screen and "\\x1b]2;owned\\x07" in screen
    assert "__reprover_test_done__ 2" in screen


def _evil_elf(tmp: Path) -> tuple[Path, Path]:
    """A gcc-built ELF whose section and function names are escape sequences (patched in)."""
    source = tmp / "s.c"
    section, symbol = "SECTNAME" + "A" * 30, "SYMBOLNAME" + "B" * 30
    source.write_text(
        f'__attribute__((section("{section}"), used)) static const char data[64] = "payload";\n'
        f"int {symbol}(int x) {{ return x * 3 + data[0]; }}\n"
        f"int main(void) {{ return {symbol}(1); }}\n"
    )
    built = tmp / "a.out"
    subprocess.run(["gcc", "-O0", "-o", built, source], check=True)
    data = built.read_bytes()
    evil_section = b"\x1b[2J\x1b]2;owned\x07"
    evil_symbol = b"\x1b]8;;http://evil.test\x07X\x1b]8;;\x07\xc2\x9b2J"
    data = data.replace(section.encode(), evil_section.ljust(len(section), b"A"))
    data = data.replace(symbol.encode(), evil_symbol.ljust(len(symbol), b"B"))
    changed = bytearray(data)
    changed[data.index(b"payload")] ^= 1
    text = subprocess.run(["nm", built], capture_output=True, text=True, check=True).stdout
    address = int(next(line for line in text.splitlines() if symbol in line).split()[0], 16)
    changed[address + 8] ^= 1  # a code byte inside the function (PIE: file offset = address)
    old, new = tmp / "old.elf", tmp / "new.elf"
    old.write_bytes(data)
    new.write_bytes(bytes(changed))
    return old, new


@pytest.mark.slow
def test_escape_sequences_in_elf_section_and_symbol_names(tmp_path: Path, run_cli: Cli) -> None:
    old, new = _evil_elf(tmp_path)
    screen, title = terminal(reprover("diff", old, new), tmp_path)
    assert title != "owned" and screen.startswith("verdict: FAIL"), screen
    assert "elf.section[\\x1b[2J\\x1b]2;owned\\x07" in screen
    assert "\\x1b]8;;http://evil.test\\x07X\\x1b]8;;\\x07\\x9b2J" in screen  # OSC 8 link, C1 CSI
    for fmt, data in _all_formats(run_cli, tmp_path, old, new).items():
        text = data.decode()
        assert not CONTROL.search(text.replace("\n", "")) or fmt == "json", fmt
        if fmt == "json":
            assert "\x1b" not in text and "\\u001b]2;owned" in text


def _evil_certificate(tmp: Path, subject: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem, pkey = tmp / "evil.pem", tmp / "evil.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkey.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem, pkey


@pytest.mark.slow
def test_escape_sequences_in_certificate_subjects(tmp_path: Path) -> None:
    subject = "\x1b[2J\x1b[H(chains to pinned trust)\x1b]2;owned\x07"
    pem, pkey = _evil_certificate(tmp_path, subject)
    signed = tmp_path / "signed.exe"
    subprocess.run(
        [
            *("osslsigncode", "sign", "-certs", pem, "-key", pkey, "-h", "sha256"),
            *("-in", fx("unsigned.exe"), "-out", signed),
        ],
        check=True,
        capture_output=True,
    )
    screen, title = terminal(reprover("sign-check", fx("unsigned.exe"), signed), tmp_path)
    assert title != "owned", screen
    assert "verdict: PASS" in screen and "[H(chains to pinned trust)" in screen
    # the subject is quoted, so its "(chains to pinned trust)" reads as part of the name
    assert 'signed by "CN=\\u001b[2J\\u001b[H(chains to pinned trust)' in screen
    assert 'owned\\u0007" (signer not pinned)' in screen.replace("\n", "")
    other = tmp_path / "other.exe"
    other.write_bytes(signed.read_bytes()[:-1] + b"\x01")  # breaks the proof: stderr names why
    screen, title = terminal(
        reprover("sign-check", fx("unsigned.exe"), other, "--trusted", fx("ca.pem")), tmp_path
    )
    assert title != "owned" and "verdict: FAIL" in screen, screen


def test_build_path_cannot_break_out_of_the_markdown_fence(tmp_path: Path) -> None:
    from dataclasses import replace

    import render_samples as samples
    from reprover.render import render

    hostile = "/tmp/x\n```\n# \u2705 PASS\n| a | b |\n|---|---|\n| x | y |\n![i](http://evil.test/i.png)\n"
    report = samples.tampered()
    assert report.build is not None
    report = replace(report, build=replace(report.build, build_path=hostile))
    page = gfm.to_html(render(report, "markdown").decode())
    assert "<h1>" not in page and "<img" not in page and 'evil.test/i.png"' not in page
    assert page.count("<table>") == 4  # artifacts, checks, regions, provenance: none injected
    assert '<pre><code class="language-sh">reprover verify reprover.toml' in page


def test_build_path_with_a_fence_through_verify(project: Project, run_cli: Cli) -> None:
    """The same attack through `reprover verify`: a manifest's [build] path is input too."""
    build = f"{project.root}/b\n```\n# PASS\n![i](http://evil.test/i.png)"
    manifest = project.manifest(
        build_path=build.replace("\n", "\\n"),
        command='"mkdir -p out && cc -O2 -g -o out/hello hello.c"',
    )
    summary = project.root / "summary.md"
    code, _, err = run_cli("verify", manifest, "--report", f"markdown={summary}")
    assert code == 1, err  # the build path is in the debug info: the run fails
    page = gfm.to_html(summary.read_text())
    assert "<h1>" not in page and "<img" not in page
    assert "\\n```\\n# PASS" in page


def test_www_names_do_not_become_links(tmp_path: Path, run_cli: Cli) -> None:
    _pair(tmp_path, "www.example.test")
    _pair(tmp_path, "see https:example.test and <http:evil.test> @octocat")
    markdown = _all_formats(run_cli, tmp_path, tmp_path / "old", tmp_path / "new")["markdown"]
    page = gfm.to_html(markdown.decode())
    assert "<a " not in page
    assert "<code>www.example.test</code>" in page


def test_bidi_and_cyrillic_look_alikes_are_flagged_in_every_format(
    tmp_path: Path, run_cli: Cli
) -> None:
    names = ("scan.exe", "sc\u0430n.exe", "\u202eexe.nacs", "scan\u200b.exe")
    for name in names:
        _pair(tmp_path, name)
    reports = _all_formats(run_cli, tmp_path, tmp_path / "old", tmp_path / "new")
    for fmt, data in reports.items():
        text = data.decode()
        assert "\u202e" not in text and "\u200b" not in text, fmt
        assert "mixed scripts (Cyrillic, Latin)" in text, fmt
        assert "bidi controls" in text and "invisible characters" in text, fmt
    flags = {a["path"]: a["flags"] for a in json.loads(reports["json"])["artifacts"]}
    assert flags["scan.exe"] == []
    assert flags["sc\u0430n.exe"] == ["suspicious-name: mixed scripts (Cyrillic, Latin)"]


def test_undecodable_file_names_never_crash_a_renderer(tmp_path: Path, run_cli: Cli) -> None:
    _pair(tmp_path, b"\xff\xfe.exe")
    reports = _all_formats(run_cli, tmp_path, tmp_path / "old", tmp_path / "new")
    raw_json = reports.pop("json")
    assert b"\\ud" not in raw_json  # no lone surrogate escape, which strict parsers refuse
    document = json.loads(raw_json)
    assert document["artifacts"][0]["path"] == "\\xff\\xfe.exe"
    for fmt, data in reports.items():
        assert "\\xff\\xfe.exe" in data.decode("utf-8"), fmt  # strict UTF-8 throughout
    assert document["artifacts"][0]["flags"] == ["suspicious-name: undecodable bytes"]


def test_html_and_cdata_end_in_junit_stay_text(tmp_path: Path, run_cli: Cli) -> None:
    name = ']]><failure message="PASS"><testcase name="x"><?x "&'  # no '!': diff refuses it
    _pair(tmp_path, name)
    junit = _all_formats(run_cli, tmp_path, tmp_path / "old", tmp_path / "new")["junit"]
    root = ET.fromstring(junit)  # noqa: S314 - our own output
    cases = root.findall("./testsuite[@name='artifacts']/testcase")
    assert [c.get("name") for c in cases] == [name]
    assert root.get("failures") == "1"


def test_very_long_names_render_in_every_format(tmp_path: Path, run_cli: Cli) -> None:
    deep = "/".join(["d" * 200] * 10) + "/" + "\u0436" * 120  # 2 KiB path, 240-byte last part
    _pair(tmp_path, deep.split("/", 1)[0] + "x")
    folder_old = tmp_path / "old" / Path(deep).parent
    folder_new = tmp_path / "new" / Path(deep).parent
    folder_old.mkdir(parents=True)
    folder_new.mkdir(parents=True)
    (tmp_path / "old" / deep).write_bytes(b"1")
    (tmp_path / "new" / deep).write_bytes(b"2")
    reports = _all_formats(run_cli, tmp_path, tmp_path / "old", tmp_path / "new")
    paths = [a["path"] for a in json.loads(reports.pop("json"))["artifacts"]]
    assert deep in paths
    assert all(deep in data.decode() for data in reports.values())


def test_verify_attestation_text_shows_hostile_paths_as_escapes(
    tmp_path: Path, run_cli: Cli
) -> None:
    artifact = tmp_path / "\x1b]2;owned\x07scan.exe"
    artifact.write_bytes(b"x")
    attestation = tmp_path / "\x1b[2Jatt.json"
    attestation.write_text("{}")
    key = tmp_path / "k"
    code, out, err = run_cli("key", "new", "k", "-d", key)
    assert code == 0, err
    code, out, err = run_cli(
        "verify-attestation", attestation, "--artifact", artifact, "--key", key / "k.pub.pem"
    )
    assert code in (1, 2)
    assert "\x1b" not in out + err and "\\x1b" in out + err


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_deterministic_with_hostile_names(
    tmp_path: Path, run_cli: Cli, fmt: str
) -> None:
    _pair(tmp_path, b"\xff" + CLEAR_AND_PAINT.encode())
    first = tmp_path / "1"
    second = tmp_path / "2"
    for target in (first, second):
        code, _, _ = run_cli(
            "diff", tmp_path / "old", tmp_path / "new", "--format", fmt, "-o", target
        )
        assert code == 1
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.slow
def test_look_alike_names_in_the_html_report_read_in_chromium(tmp_path: Path, run_cli: Cli) -> None:
    """What chromium builds from the page: no bidi control survives, each name is isolated."""
    from test_render_browser import CHROMIUM, console_lines

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (CI installs it)")
    names = ("scan.exe", "sc\u0430n.exe", "\u202eexe.nacs", "scan\u200d.exe")
    for name in names:
        _pair(tmp_path, name)
    page = tmp_path / "report.html"
    code, _, err = run_cli(
        "diff", tmp_path / "old", tmp_path / "new", "--format", "html", "-o", page
    )
    assert code == 1, err
    dom, console = console_lines(page, tmp_path)
    assert console == []
    assert "\u202e" not in dom and "\u200d" not in dom
    assert "<bdi>\\u202eexe.nacs</bdi>" in dom and "<bdi>scan\\u200d.exe</bdi>" in dom
    assert dom.count("suspicious-name: mixed scripts (Cyrillic, Latin)") >= 1
    assert dom.count("suspicious-name: bidi controls") >= 1


@pytest.mark.slow
def test_undecodable_released_file_name_through_verify(project: Project, run_cli: Cli) -> None:
    (project.release / os.fsdecode(b"\xff\xfe.exe")).write_bytes(b"not rebuilt")
    for fmt in FORMATS:
        code, out, err = run_cli("verify", project.manifest(), "--format", fmt)
        assert code == 1, (fmt, err)  # missing from the rebuild: a failure, not a crash
        if fmt == "json":
            paths = [a["path"] for a in json.loads(out)["artifacts"]]
            assert "\\xff\\xfe.exe" in paths
        else:
            assert "\\xff\\xfe.exe" in out, fmt


def test_certificate_subject_cannot_pose_as_an_issuer_or_a_trust_note(tmp_path: Path) -> None:
    """No control character needed: a subject holding `; issuer ...` or `(chains to pinned
    trust)` must read as one quoted name in every signer line, not as reprover's own words."""
    subject = "evil; issuer CN=Pinned Root CA (chains to pinned trust)"
    pem, pkey = _evil_certificate(tmp_path, subject)
    signed = tmp_path / "signed.exe"
    subprocess.run(
        [
            *("osslsigncode", "sign", "-certs", pem, "-key", pkey, "-h", "sha256"),
            *("-in", fx("unsigned.exe"), "-out", signed),
        ],
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        reprover("sign-check", fx("unsigned.exe"), signed),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if "CN=evil" in line]
    assert lines, done.stdout
    for line in lines:  # the whole subject sits inside one pair of quotes
        assert '"CN=evil' in line and 'CA (chains to pinned trust)"' in line, line
    assert "(signer not pinned)" in done.stdout
