"""Fuzzing: mutated PE, ELF and Mach-O files never crash, hang or falsely pass reprover.

A short fixed-seed campaign of scripts/fuzz.py runs here (the long one is documented in the
README); the other tests check that the mutators hit the fields they claim, that the oracle
agrees with reprover on the real fixture pairs, and that the judge really flags each kind of
violation (so the campaign could fail).
"""

# ruff: noqa: S311 - the fuzzer wants seeded, reproducible pseudo-randomness, not secrets
from __future__ import annotations

import importlib.util
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import fuzz_support as fs
from fuzz_oracle import ledger_violations, replaced_by_signing, signature_over, unexplained

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "tests" / "fixtures" / "ledger"
SIGNATURE = ROOT / "tests" / "fixtures" / "signature"
FUZZ_FIXTURES = ROOT / "tests" / "fixtures" / "fuzz"

_spec = importlib.util.spec_from_file_location("fuzz", ROOT / "scripts" / "fuzz.py")
assert _spec is not None and _spec.loader is not None
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["fuzz"] = fuzz
_spec.loader.exec_module(fuzz)


@pytest.mark.slow
def test_short_campaign_keeps_every_invariant() -> None:
    plan = fuzz.Plan(count=240, seed=20260201, jobs=2)
    summary = fuzz.campaign(plan)
    report = fuzz.report(summary, plan)
    assert summary.violations == [], report
    assert summary.inputs == 240
    assert summary.commands == 3 * 240
    assert summary.crashes == 0
    for name, codes in summary.exits.items():
        # sign-check refuses a file that is not PE or Mach-O as bad input (2); the oracle
        # accepts that exit only for such files
        assert set(codes) <= ({0, 1, 2, 3} if name == "sign-check" else {0, 1, 3}), (name, codes)
        assert codes[1] > 0, (name, codes)
    assert summary.max_seconds < plan.limits.seconds
    assert set(summary.mutators) == set(fs.MUTATORS), summary.mutators
    assert summary.max_rss_parsers > 0


@pytest.mark.slow
def test_subprocess_mode_runs_the_real_command_line(tmp_path: Path) -> None:
    plan = fuzz.Plan(count=30, seed=7, jobs=1, mode="subprocess", save=tmp_path, only=(3,))
    summary = fuzz.campaign(plan)
    assert summary.violations == [], fuzz.report(summary, plan)
    assert summary.inputs == 1
    assert summary.commands == 3
    assert summary.max_rss > 0


def test_inputs_are_reproducible() -> None:
    targets = fuzz.targets()
    corpus = [t.base.read_bytes() for t in targets]
    one = fuzz.make_input(42, 9, targets, corpus)
    two = fuzz.make_input(42, 9, targets, corpus)
    assert (one[0], one[1], one[2]) == (two[0], two[1], two[2])
    assert one[1] != fuzz.make_input(43, 9, targets, corpus)[1] or one[0] != two[0]


def _names(path: Path) -> set[str]:
    return {f.name for f in fs.fields(path.read_bytes())}


def test_structure_fields_cover_the_headers_parsers_trust() -> None:
    elf = _names(LEDGER / "elf-date" / "a")
    assert {"e_shoff", "e_shnum", "e_phnum", "e_phoff", "e_shstrndx"} <= elf
    assert any(n.endswith(".sh_offset") for n in elf) and any(n.endswith(".p_filesz") for n in elf)
    pe = _names(SIGNATURE / "signed.exe")
    assert {"e_lfanew", "coff.NumberOfSections", "coff.SizeOfOptionalHeader",
            "dir[SECURITY].rva", "dir[SECURITY].size", "cert.dwLength"} <= pe  # fmt: skip
    macho = _names(SIGNATURE / "macho-adhoc")
    assert {"macho.ncmds", "macho.sizeofcmds", "macho.lc[0].cmdsize"} <= macho
    assert any(".code_signature.cd." in n for n in macho)
    fat = _names(LEDGER / "macho-fat" / "a")
    assert {"fat.nfat_arch", "fat.arch[0].offset", "fat.arch[0].size", "macho[1].ncmds"} <= fat


def test_field_writes_change_only_that_field() -> None:
    data = (LEDGER / "elf-date" / "a").read_bytes()
    shnum = next(f for f in fs.elf_fields(data) if f.name == "e_shnum")
    assert struct.unpack_from("<H", data, shnum.offset)[0] == 37  # what `readelf -h` says
    rng = random.Random(5)
    for _ in range(50):
        mutant, steps = fs.mutate(data, rng, rounds=1)
        if not steps[0].startswith("field: field ") or "," in steps[0]:
            continue
        changed = [i for i in range(len(data)) if data[i] != mutant[i]]
        name = steps[0].split()[2].split("=")[0]
        field = next(f for f in fs.elf_fields(data) if f.name == name)
        assert all(field.offset <= i < field.offset + field.width for i in changed), steps


def test_der_writes_stay_inside_the_certificate_table() -> None:
    data = (SIGNATURE / "signed.exe").read_bytes()
    view = fs.pe_view(data)
    assert view is not None
    start = view.directories[4][1]
    rng = random.Random(3)
    for _ in range(30):
        mutant = bytearray(data)
        assert fs.der_write(mutant, rng) is not None
        assert mutant[:start] == data[:start]
    assert len(fs.der_nodes(data, start + 8, len(data))) > 50


@pytest.mark.parametrize("case", sorted(p.name for p in LEDGER.iterdir() if (p / "b").is_file()))
def test_oracle_agrees_with_reprover_on_real_pairs(
    case: str, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    """The oracle justifies a real pair's differences exactly when reprover allows them."""
    a, b = LEDGER / case / "a", LEDGER / case / "b"
    allow = [arg for rule in fuzz.ALLOW for arg in ("--allow", rule)]
    code, _, _ = run_cli("diff", a, b, *allow, "-q")
    assert code in (0, 1)
    assert (code == 0) == (not unexplained(a.read_bytes(), b.read_bytes()))


def _outcome(code: int | None = 1, stderr: str = "", signal: int | None = None) -> object:
    return fuzz.Outcome(code, signal, 0.1, 1 << 20, b"", stderr)


def test_judge_flags_every_kind_of_violation() -> None:
    original = (LEDGER / "pe-mingw-timestamp" / "a").read_bytes()
    text = bytearray(original)
    text[0x600] ^= 1  # a byte of .text
    stamp = bytearray(original)
    lfanew = struct.unpack_from("<I", original, 0x3C)[0]
    stamp[lfanew + 8] ^= 1  # the COFF TimeDateStamp
    m_text, m_stamp = bytes(text), bytes(stamp)
    judge = fuzz.judge
    assert judge("diff", _outcome(1), False, 1, original, m_text) == ([], None)
    assert judge("diff", _outcome(0), False, 1, original, m_text)[0]
    assert judge("diff-allow", _outcome(0), False, 1, original, m_text)[0]
    bad, review = judge("diff-allow", _outcome(0), False, 1, original, m_stamp)
    assert not bad and review
    assert judge("diff", _outcome(2, "reprover: x"), False, 1, original, m_text)[0]
    assert judge("diff", _outcome(None, signal=11), False, 1, original, m_text)[0]
    assert judge("diff", _outcome(3, "Traceback (most recent"), False, 1, original, m_text)[0]
    assert judge("diff", _outcome(3, "reprover: internal error: X"), False, 1, original, m_text)[0]
    assert judge("diff", _outcome(1, "x.py:1: RuntimeWarning: y"), False, 1, original, m_text)[0]
    assert judge("diff", _outcome(0), True, 1, original, original)[0]  # baseline said 1
    assert judge("diff", _outcome(0), True, 0, original, original) == ([], None)
    timed = fuzz.Outcome(None, 9, 61.0, 0, b"", "", timed_out=True)
    assert judge("diff", timed, False, 1, original, m_text)[0]


def test_rebuilt_side_passes_are_justified_only_by_what_signing_replaces() -> None:
    unsigned = (SIGNATURE / "unsigned.exe").read_bytes()
    assert unsigned.endswith(b"\0")
    assert replaced_by_signing(unsigned, unsigned[:-1])
    assert replaced_by_signing(unsigned, unsigned[:-1] + b"\1") is None
    macho = (SIGNATURE / "macho-adhoc").read_bytes()
    assert replaced_by_signing(macho, macho + b"junk") is None  # must now make the proof fail
    inside = bytearray(macho)
    inside[-40] ^= 1  # a byte of the rebuilt's own code signature
    assert replaced_by_signing(macho, bytes(inside))
    code = bytearray(macho)
    code[0x1000] ^= 1
    assert replaced_by_signing(macho, bytes(code)) is None


def test_another_signature_over_the_same_bytes_is_justified_only_if_nothing_else_changed() -> None:
    """The long campaign spliced timestamped.exe into noeku.exe: a valid signed file, so a pass."""
    unsigned = (SIGNATURE / "unsigned.exe").read_bytes()
    other = (SIGNATURE / "timestamped.exe").read_bytes()
    base = (SIGNATURE / "noeku.exe").read_bytes()
    assert unexplained(base, other)
    assert signature_over(unsigned, other)
    bad, review = fuzz.judge("sign-check", _outcome(0), False, 0, base, other, unsigned=unsigned)
    assert not bad and review
    code = bytearray(other)
    code[0x400] ^= 1
    assert signature_over(unsigned, bytes(code)) is None
    assert fuzz.judge("sign-check", _outcome(0), False, 0, base, bytes(code), unsigned=unsigned)[0]
    assert signature_over(unsigned, other + b"\0" * 8) is None  # the table must end at EOF


def test_parser_warnings_stay_off_stderr() -> None:
    """Regression (found by the fuzzer): an unknown ELF section type made the LIEF child print
    `RuntimeWarning: 65535 is not a valid TYPE.` on the user's terminal."""
    mutant = FUZZ_FIXTURES / "elf-section-type-0xffff-warns"
    done = subprocess.run(
        [sys.executable, "-m", "reprover", "diff", str(mutant), str(LEDGER / "elf-date" / "a")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "section_header" in done.stdout  # the region map was built, the type read raw
    assert "Warning" not in done.stderr, done.stderr


def test_macho_rebuilt_with_bytes_after_its_signature_is_not_signature_only(
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    """Found by the fuzzer: the proof used to check the rebuild only up to the code limit."""
    junk = FUZZ_FIXTURES / "macho-rebuilt-with-junk-after-its-signature"
    released = LEDGER / "macho-thin" / "b"
    assert junk.read_bytes().startswith(released.read_bytes())
    code, out, err = run_cli("sign-check", junk, released)
    assert code == 1
    assert "bytes after its own code signature" in out + err


def test_oracle_checks_the_ledger_is_exact(tmp_path: Path) -> None:
    """The fuzz oracle flags a ledger that is not exactly the differing bytes (issue 18)."""
    from reprover.cli import main

    original = (LEDGER / "elf-date" / "a").read_bytes()
    mutant = bytearray(original)
    mutant[0x1200] ^= 0x10
    mutant[0x3000] ^= 0x01
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(original)
    b.write_bytes(bytes(mutant))
    out = tmp_path / "r.json"
    assert main(["diff", str(a), str(b), "--format", "json", "-o", str(out), "--quiet"]) == 1
    report = out.read_text()
    assert ledger_violations(original, bytes(mutant), report) == []
    wrong = report.replace('"length": 1', '"length": 2', 1)
    assert ledger_violations(original, bytes(mutant), wrong)
    longer = bytes(mutant) + b"tail"
    assert ledger_violations(original, longer, report)  # no "only in" row for the size change
