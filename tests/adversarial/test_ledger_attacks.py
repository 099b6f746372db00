"""Code hidden behind an allow rule (issue 12) or in a gap (issue 18), built with gcc and mingw.

Each attack is a real build whose vendor release patches a function from "not licensed" to
"licensed", placed where a rule's name would cover it: an executable section named like debug
info, an executable GNU build-id note whose descriptor is the function, a PE debug-directory
entry (REPRO, type 16, or POGO, type 13) whose data lies in `.text`; and a code cave, a byte
changed in a gap inside the executable segment. Each goes through the real CLI (`verify` with
`[policy] allow`, and `diff --allow`) and must fail (exit 1) naming code or the finding.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import lief
import pytest

from conftest import Project, make_repo, vendor_build
from reprover.policy import RULES

Cli = Callable[..., tuple[int, str, str]]
ALL_RULES = sorted(RULES)
STORE_ZERO = re.compile(rb"\xc7\x44\x24.\x00\x00\x00\x00", re.DOTALL)  # movl $0, off(%rsp)

DEBUG_HOOKS_C = r"""
#include <stdio.h>
__attribute__((section(".debug_hooks"), noinline))
int licensed(void) { volatile int x = 0; return x; }
int main(void) { puts(licensed() ? "licensed" : "not licensed"); return 0; }
"""
NOTE_C = r"""
#include <stdio.h>
__asm__(".section .note.hooks,\"ax\",@note\n.p2align 2\n.long 4\n.long 8\n.long 3\n.asciz \"GNU\"\n"
        ".globl licensed\nlicensed:\nmovl $0, %eax\nret\nnop\nnop\n.text\n");
int licensed(void);
int main(void) { puts(licensed() ? "licensed" : "not licensed"); return 0; }
"""
PE_C = r"""
#include <stdio.h>
__attribute__((noinline)) int licensed(void) { volatile int x = 0; return x; }
int main(void) { puts(licensed() ? "licensed" : "not licensed"); return 0; }
"""
# The vendor's own post-link step: point the first debug-directory entry at `licensed`.
CRAFT_PY = r"""
import struct, sys
path, dtype, rva, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0), int(sys.argv[4], 0)
data = bytearray(open(path, "rb").read())
lfanew = struct.unpack_from("<I", data, 0x3C)[0]
opt = lfanew + 24
dbg_rva = struct.unpack_from("<I", data, opt + 112 + 8 * 6)[0]
nsect = struct.unpack_from("<H", data, lfanew + 6)[0]
optsize = struct.unpack_from("<H", data, lfanew + 20)[0]
for i in range(nsect):
    _, vsize, va, rawsize, rawptr = struct.unpack_from("<8sIIII", data, opt + optsize + 40 * i)
    if va <= dbg_rva < va + max(vsize, rawsize):
        entry = rawptr + dbg_rva - va
struct.pack_into("<IIII", data, entry + 12, dtype, 16, rva, off)
open(path, "wb").write(bytes(data))
"""


def _release(tmp_path: Path, files: dict[str, str]) -> Project:
    repo = tmp_path / "repo"
    commit = make_repo(repo, files)
    release = tmp_path / "release"
    vendor_build(repo, commit, release, tmp_path)
    return Project(tmp_path, repo, commit, release)


def _license(path: Path, start: int, end: int, pattern: re.Pattern[bytes] = STORE_ZERO) -> int:
    """Patch the released function in [start, end) to return 1; return the patched offset."""
    data = bytearray(path.read_bytes())
    match = pattern.search(bytes(data), start, end)
    assert match is not None, "the built function has the expected shape"
    at = match.end() - 4
    data[at] = 1
    path.write_bytes(bytes(data))
    return at


def _allow(rules: list[str]) -> str:
    return "[policy]\nallow = [" + ", ".join(f'"{r}"' for r in rules) + "]\n"


def _verify(project: Project, run_cli: Cli, rules: list[str]) -> dict[str, object]:
    code, out, _ = run_cli("verify", project.manifest(extra=_allow(rules)), "--format", "json")
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    assert artifact["verdict"] == "different"
    return artifact  # type: ignore[no-any-return]


def _diff(
    tmp_path: Path, released: Path, rebuilt: Path, run_cli: Cli, rules: list[str]
) -> dict[str, object]:
    code, out, _ = run_cli(
        "diff", released, rebuilt, *[x for r in rules for x in ("--allow", r)], "--format", "json"
    )
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    return artifact  # type: ignore[no-any-return]


def _rebuilt(tmp_path: Path, project: Project) -> Path:
    """A second vendor build of the same commit: what reprover's rebuild produces."""
    again = tmp_path / "again"
    (tmp_path / "work2").mkdir()
    vendor_build(project.repo, project.commit, again, tmp_path / "work2")
    return again


def _code_at(artifact: dict[str, object], at: int) -> None:
    diffs = artifact["differences"]
    assert isinstance(diffs, list)
    hit = [d for d in diffs if d["offset"] <= at < d["offset"] + d["length"]]
    assert hit and all(d["kind"] == "code" and not d["allowed"] for d in hit), diffs


def test_executable_section_named_debug_hooks_is_code(tmp_path: Path, run_cli: Cli) -> None:
    makefile = "out/hello: hello.c\n\tmkdir -p out\n\t$(CC) -O2 -o $@ hello.c\n"
    project = _release(tmp_path, {"hello.c": DEBUG_HOOKS_C, "Makefile": makefile})
    binary = project.release / "hello"
    section = lief.ELF.parse(str(binary)).get_section(".debug_hooks")
    at = _license(binary, section.offset, section.offset + section.size)
    artifact = _verify(project, run_cli, ["debug-info"])
    _code_at(artifact, at)
    assert any(d["region"] == "elf.section[.debug_hooks]" for d in artifact["differences"])  # type: ignore[attr-defined]
    _code_at(_diff(tmp_path, binary, _rebuilt(tmp_path, project) / "hello", run_cli, ALL_RULES), at)


def test_executable_build_id_note_over_a_function_is_refused(tmp_path: Path, run_cli: Cli) -> None:
    makefile = (
        "out/hello: hello.c\n\tmkdir -p out\n"
        "\t$(CC) -O2 -Wl,--build-id=none -o $@ hello.c 2>/dev/null\n"
    )
    project = _release(tmp_path, {"hello.c": NOTE_C, "Makefile": makefile})
    binary = project.release / "hello"
    note = lief.ELF.parse(str(binary)).get_section(".note.hooks")
    mov_zero = re.compile(rb"\xb8\x00\x00\x00\x00\xc3")
    data = bytearray(binary.read_bytes())
    match = mov_zero.search(bytes(data), note.offset, note.offset + note.size)
    assert match is not None
    at = match.start() + 1
    data[at] = 1
    binary.write_bytes(bytes(data))
    artifact = _verify(project, run_cli, ["elf.build-id"])
    _code_at(artifact, at)
    notes = artifact["notes"]
    assert any(n.startswith("overlapping-structure:") and "build-id" in n for n in notes)  # type: ignore[attr-defined]
    rebuilt = _rebuilt(tmp_path, project) / "hello"
    _code_at(_diff(tmp_path, binary, rebuilt, run_cli, ["elf.build-id"]), at)


@pytest.mark.skipif(shutil.which("x86_64-w64-mingw32-gcc") is None, reason="needs mingw-w64")
@pytest.mark.parametrize(("dtype", "rule"), [(16, "pe.debug.repro"), (13, "debug-info")])
def test_pe_debug_entry_pointing_into_text_is_refused(
    tmp_path: Path, run_cli: Cli, dtype: int, rule: str
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "hello.c").write_text(PE_C)
    import subprocess

    flags = ["-O2", "-Wl,--build-id", "-Wl,--no-insert-timestamp"]
    subprocess.run(
        ["x86_64-w64-mingw32-gcc", *flags, "-o", "p.exe", "hello.c"], cwd=probe, check=True
    )
    pe = lief.PE.parse(str(probe / "p.exe"))
    text = pe.get_section(".text")
    value = next(s.value for s in pe.symbols if s.name == "licensed")
    rva, off = text.virtual_address + value, text.offset + value
    makefile = (
        "out/hello.exe: hello.c craft.py\n\tmkdir -p out\n"
        f"\tx86_64-w64-mingw32-gcc {' '.join(flags)} -o $@ hello.c\n"
        f"\tpython3 craft.py $@ {dtype} {rva:#x} {off:#x}\n"
    )
    project = _release(tmp_path, {"hello.c": PE_C, "craft.py": CRAFT_PY, "Makefile": makefile})
    binary = project.release / "hello.exe"
    at = _license(binary, off, off + 32)
    artifact = _verify(project, run_cli, [rule, "pe.timestamp", "pe.checksum"])
    _code_at(artifact, at)
    notes = artifact["notes"]
    assert any(n.startswith("overlapping-structure:") and "executable" in n for n in notes)  # type: ignore[attr-defined]
    rebuilt = _rebuilt(tmp_path, project) / "hello.exe"
    _code_at(_diff(tmp_path, binary, rebuilt, run_cli, ALL_RULES), at)


def _exec_gap(binary: Path) -> tuple[int, int]:
    """A gap between sections inside the executable PT_LOAD segment of a gcc build."""
    elf = lief.ELF.parse(str(binary))
    seg = next(s for s in elf.segments if s.type == lief.ELF.Segment.TYPE.LOAD and int(s.flags) & 1)
    lo, hi = seg.file_offset, seg.file_offset + seg.physical_size
    spans = sorted(
        (s.offset, s.offset + s.size) for s in elf.sections if s.size and lo <= s.offset < hi
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start > end:
            return end, start
    raise AssertionError("no gap inside the executable segment")


def test_code_cave_in_a_gap_of_the_executable_segment_is_code(
    project: Project, run_cli: Cli
) -> None:
    binary = project.release / "hello"
    start, _ = _exec_gap(binary)
    data = bytearray(binary.read_bytes())
    data[start] ^= 0xCC
    binary.write_bytes(bytes(data))
    artifact = _verify(project, run_cli, ALL_RULES)
    [diff] = artifact["differences"]  # type: ignore[misc]
    assert (diff["offset"], diff["length"], diff["kind"]) == (start, 1, "code")
    assert diff["region"].startswith("elf.gap[after ") and not diff["allowed"]


def test_a_changed_gap_byte_is_one_byte_with_old_and_new_value(
    project: Project, run_cli: Cli
) -> None:
    """Issue 18's /usr/bin/basename example: one gap byte, not thousands of 'shrank' bytes."""
    binary = project.release / "hello"
    elf = lief.ELF.parse(str(binary))
    spans = sorted((s.offset, s.offset + s.size) for s in elf.sections if s.size and s.offset)
    gaps = [(e, s) for (_, e), (s, _) in itertools.pairwise(spans) if s - e >= 8]
    seg = next(s for s in elf.segments if s.type == lief.ELF.Segment.TYPE.LOAD and int(s.flags) & 1)
    gap = next(g for g in gaps if not seg.file_offset <= g[0] < seg.file_offset + seg.physical_size)
    data = bytearray(binary.read_bytes())
    at = gap[0] + 3
    old = data[at]
    data[at] = 0xC8
    binary.write_bytes(bytes(data))
    code, out, _ = run_cli("verify", project.manifest(), "--format", "json")
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    [diff] = artifact["differences"]
    assert (diff["offset"], diff["length"]) == (at, 1)
    assert diff["region"].startswith("elf.gap[after ") and diff["kind"] == "data"
    assert diff["detail"] == f"c8 -> {old:02x}"  # released -> rebuilt
    assert "grew" not in json.dumps(artifact) and "shrank" not in json.dumps(artifact)


def test_debug_section_header_over_data_is_refused(tmp_path: Path, run_cli: Cli) -> None:
    """`.comment` renamed `.debug_c` and pointed at `.rodata`: its bytes are never debug-info."""
    src = Path(__file__).parent.parent / "fixtures" / "ledger" / "elf-date" / "a"
    elf = lief.ELF.parse(str(src))
    data = bytearray(src.read_bytes())
    sections = list(elf.sections)
    comment = next(i for i, s in enumerate(sections) if s.name == ".comment")
    rodata = elf.get_section(".rodata")
    header = elf.header.section_header_offset + 64 * comment
    name_idx = int.from_bytes(data[header : header + 4], "little")  # sh_name
    names = sections[elf.header.section_name_table_idx].offset + name_idx
    assert data[names : names + 8] == b".comment"
    data[names : names + 8] = b".debug_c"
    data[header + 24 : header + 40] = rodata.offset.to_bytes(8, "little") + rodata.size.to_bytes(
        8, "little"
    )
    crafted = tmp_path / "rebuilt"
    crafted.write_bytes(bytes(data))
    at = rodata.offset + rodata.size // 2
    data[at] ^= 0x01  # the vendor's release changes a byte of the data
    released = tmp_path / "released"
    released.write_bytes(bytes(data))
    artifact = _diff(tmp_path, released, crafted, run_cli, ["debug-info"])
    [diff] = artifact["differences"]  # type: ignore[misc]
    assert diff["offset"] == at and not diff["allowed"]
    notes = artifact["notes"]
    assert any(n.startswith("overlapping-structure:") for n in notes)  # type: ignore[attr-defined]
