"""The tests' own reading of which bytes a loader maps executable, with LIEF, not reprover.

Owns: `executable_bytes(path)`: ELF PT_LOAD segments with PF_X and SHF_EXECINSTR sections; PE
sections with IMAGE_SCN_CNT_CODE or IMAGE_SCN_MEM_EXECUTE; Mach-O segments whose initial
protection has VM_PROT_EXECUTE and sections with an instruction attribute; minus the file
header, program headers and load commands (README "Policy rules"). A sample of system
binaries for the property tests (`system_binaries`).
Does not own: any check; the tests compare reprover's ledger against this.
"""

from __future__ import annotations

import random
from pathlib import Path

import lief

lief.logging.disable()

Span = tuple[int, int]


def executable_bytes(path: Path) -> list[Span]:  # noqa: PLR0912 - one branch per format
    """Sorted, merged [start, end) spans the loader maps executable (empty if not parsed)."""
    head = path.read_bytes()[:4]
    spans: list[Span] = []
    holes: list[Span] = []
    if head == b"\x7fELF":
        elf = lief.ELF.parse(str(path))
        if elf is None:
            return []
        hdr = elf.header
        phoff = hdr.program_header_offset
        holes += [
            (0, hdr.header_size),
            (phoff, phoff + hdr.numberof_segments * hdr.program_header_size),
        ]
        for seg in elf.segments:
            if seg.type == lief.ELF.Segment.TYPE.LOAD and int(seg.flags) & 1:
                spans.append((seg.file_offset, seg.file_offset + seg.physical_size))
        execs = [s for s in elf.sections if int(s.flags) & 4 and int(s.type) != 8 and s.size]
        extra = [(s.offset, s.offset + s.size) for s in execs]
        return _merge(_minus(_merge(spans), _merge(holes)) + extra)
    if head[:2] == b"MZ":
        pe = lief.PE.parse(str(path))
        if pe is None:
            return []
        for sec in pe.sections:
            if int(sec.characteristics) & 0x20000020 and sec.pointerto_raw_data:
                spans.append((sec.pointerto_raw_data, sec.pointerto_raw_data + sec.sizeof_raw_data))
        return _merge(spans)
    fat = lief.MachO.parse(str(path))
    if fat is None:
        return []
    extra = []
    for i in range(fat.size):
        binary = fat.at(i)
        base = binary.fat_offset if fat.size > 1 or head in (b"\xca\xfe\xba\xbe",) else 0
        size = 32 if binary.header.magic.value in (0xFEEDFACF, 0xCFFAEDFE) else 28
        holes.append((base, base + size + binary.header.sizeof_cmds))
        for seg in binary.segments:
            if seg.init_protection & 4 and seg.file_size:
                spans.append((base + seg.file_offset, base + seg.file_offset + seg.file_size))
            for sec in seg.sections:
                if int(sec.flags) & 0x80000400 and sec.offset and sec.size:
                    extra.append((base + sec.offset, base + sec.offset + sec.size))
    return _merge(_minus(_merge(spans), _merge(holes)) + extra)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def _minus(spans: list[Span], holes: list[Span]) -> list[Span]:
    out = []
    for start, end in spans:
        pos = start
        for h0, h1 in holes:
            if h1 <= pos or h0 >= end:
                continue
            if h0 > pos:
                out.append((pos, h0))
            pos = max(pos, h1)
        if pos < end:
            out.append((pos, end))
    return out


def system_binaries(count: int, *, seed: int = 18, max_size: int = 4 << 20) -> list[Path]:
    """A deterministic sample of ELF files from /usr/bin and /usr/lib (fewer if absent)."""
    found = []
    for folder in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib"):
        try:
            paths = sorted(Path(folder).iterdir())
        except OSError:
            continue
        for path in paths:
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                if not 4096 <= path.stat().st_size <= max_size:
                    continue
                with path.open("rb") as handle:
                    if handle.read(4) == b"\x7fELF":
                        found.append(path)
            except OSError:
                continue
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    return sorted(rng.sample(found, min(count, len(found))))
