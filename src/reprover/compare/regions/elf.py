"""ELF region map (32/64-bit, both byte orders), built inside the parsing worker.

Owns: labelling every byte of an ELF file: header fields (offset tables from the System V ABI,
because LIEF exposes no file offsets for them), program and section headers, section contents
by type, notes (GNU build-id), `.dynamic` entries, symbol and string tables, and the bytes
outside any section; nearest-symbol data from `.symtab` and `.dynsym`.
Does not own: process isolation (`worker`), comparing or classifying differences (`ledger`).
"""

from __future__ import annotations

import bisect
from typing import Any

from reprover.compare.regions.map import Reader, RegionBuilder
from reprover.model import Kind

M = Kind.METADATA
HEADER64 = (
    ("e_ident", 0, 16, M), ("e_type", 16, 2, M), ("e_machine", 18, 2, M), ("e_version", 20, 4, M),
    ("e_entry", 24, 8, Kind.CODE), ("e_phoff", 32, 8, M), ("e_shoff", 40, 8, M),
    ("e_flags", 48, 4, M), ("e_ehsize", 52, 2, M), ("e_phentsize", 54, 2, M),
    ("e_phnum", 56, 2, M), ("e_shentsize", 58, 2, M), ("e_shnum", 60, 2, M),
    ("e_shstrndx", 62, 2, M),
)  # fmt: skip
HEADER32 = (
    ("e_ident", 0, 16, M), ("e_type", 16, 2, M), ("e_machine", 18, 2, M), ("e_version", 20, 4, M),
    ("e_entry", 24, 4, Kind.CODE), ("e_phoff", 28, 4, M), ("e_shoff", 32, 4, M),
    ("e_flags", 36, 4, M), ("e_ehsize", 40, 2, M), ("e_phentsize", 42, 2, M),
    ("e_phnum", 44, 2, M), ("e_shentsize", 46, 2, M), ("e_shnum", 48, 2, M),
    ("e_shstrndx", 50, 2, M),
)  # fmt: skip

SHT_SYMTAB, SHT_STRTAB, SHT_DYNAMIC, SHT_NOTE, SHT_NOBITS, SHT_DYNSYM = 2, 3, 6, 7, 8, 11
SHF_EXECINSTR = 0x4
PT_NAMES = {0: "PT_NULL", 1: "PT_LOAD", 2: "PT_DYNAMIC", 3: "PT_INTERP", 4: "PT_NOTE",
            6: "PT_PHDR", 7: "PT_TLS", 0x6474E550: "PT_GNU_EH_FRAME",
            0x6474E551: "PT_GNU_STACK", 0x6474E552: "PT_GNU_RELRO",
            0x6474E553: "PT_GNU_PROPERTY"}  # fmt: skip
DT_NAMES = {0: "DT_NULL", 1: "DT_NEEDED", 5: "DT_STRTAB", 6: "DT_SYMTAB", 10: "DT_STRSZ",
            12: "DT_INIT", 13: "DT_FINI", 14: "DT_SONAME", 15: "DT_RPATH", 29: "DT_RUNPATH",
            0x6FFFFEF5: "DT_GNU_HASH", 0x6FFFFFFB: "DT_FLAGS_1", 30: "DT_FLAGS",
            0x6FFFFFF0: "DT_VERSYM", 0x6FFFFFFE: "DT_VERNEED"}  # fmt: skip
NT_GNU_BUILD_ID = 3


def build(data: Any, binary: Any) -> RegionBuilder:
    """Map `data` (the file's bytes) using the parsed LIEF ELF `binary`.

    Raises:
        ValueError: the ELF identification bytes are not understood.
    """
    out = RegionBuilder("elf", len(data))
    is64 = data[4:5] == b"\x02"
    if data[4:5] not in (b"\x01", b"\x02") or data[5:6] not in (b"\x01", b"\x02"):
        raise ValueError("ELF identification: unknown class or byte order")
    rd = Reader(data, little=data[5:6] == b"\x01")
    table = HEADER64 if is64 else HEADER32
    out.add(0, 64 if is64 else 52, "elf.header", M)
    out.fields(0, table, "elf.header")
    offs = {name: off for name, off, _, _ in table}
    width = 8 if is64 else 4
    phoff = rd.uint(offs["e_phoff"], width) or 0
    shoff = rd.uint(offs["e_shoff"], width) or 0
    phentsize = rd.uint(offs["e_phentsize"], 2) or 0
    shentsize = rd.uint(offs["e_shentsize"], 2) or 0
    phnum = rd.uint(offs["e_phnum"], 2) or 0
    shnum = rd.uint(offs["e_shnum"], 2) or 0

    segments = list(binary.segments)
    if phnum and len(segments) != phnum:
        out.note(f"header says {phnum} program headers, {len(segments)} parsed (truncated?)")
    out.add(phoff, phnum * phentsize, "elf.program_headers", M)
    for i, seg in enumerate(segments):
        ptype = int(seg.type)
        label = PT_NAMES.get(ptype, f"PT_0x{ptype:x}")
        out.add(phoff + i * phentsize, phentsize, f"elf.program_header[{i}:{label}]", M)
        out.add(seg.file_offset, seg.physical_size, f"elf.segment[{i}:{label}]", Kind.DATA)

    sections = list(binary.sections)
    if shnum and len(sections) != shnum:
        out.note(f"header says {shnum} sections, {len(sections)} parsed (truncated?)")
    out.add(shoff, shnum * shentsize, "elf.section_headers", M)
    mapped: list[tuple[int, int, int]] = []  # (va, va_end, offset) of sections with file bytes
    for i, sec in enumerate(sections):
        name = sec.name or f"#{i}"
        out.add(shoff + i * shentsize, shentsize, f"elf.section_header[{name}]", M)
        stype = int(sec.type)
        if stype == SHT_NOBITS or sec.size == 0:
            continue
        if sec.virtual_address:
            mapped.append((sec.virtual_address, sec.virtual_address + sec.size, sec.offset))
        region = f"elf.section[{name}]"
        out.add(sec.offset, sec.size, region, _section_kind(name, stype, int(sec.flags)))
        if stype == SHT_NOTE:
            _notes(out, rd, sec.offset, sec.size, name)
        elif stype == SHT_DYNAMIC:
            _dynamic(out, rd, sec.offset, sec.size, 16 if is64 else 8)
    if not sections:
        for i, seg in enumerate(segments):
            if int(seg.type) == 4:
                _notes(out, rd, seg.file_offset, seg.physical_size, f"segment{i}")
    _symbols(out, binary, mapped)
    out.fill_gaps(data, "elf.outside-sections", skip=("elf.segment",))
    return out


def _section_kind(name: str, stype: int, flags: int) -> Kind:
    if name.startswith((".debug", ".zdebug", ".gnu_debug", ".stab")):
        return Kind.DEBUG_INFO
    if flags & SHF_EXECINSTR:
        return Kind.CODE
    if stype in (SHT_SYMTAB, SHT_DYNSYM, SHT_STRTAB):
        return Kind.SYMBOLS
    if stype in (SHT_NOTE, SHT_DYNAMIC) or name in (".comment", ".gnu.version", ".gnu.hash"):
        return Kind.METADATA
    return Kind.DATA


def _notes(out: RegionBuilder, rd: Reader, start: int, size: int, where: str) -> None:
    """Walk the notes in [start, start+size): namesz, descsz, type, name, desc (4-aligned)."""
    pos, end, count = start, start + size, 0
    while pos + 12 <= end and count < 256:
        head = rd.unpack("III", pos)
        if head is None:
            return
        namesz, descsz, ntype = head
        name_end = pos + 12 + ((namesz + 3) & ~3)
        desc_end = name_end + ((descsz + 3) & ~3)
        if desc_end > end:
            out.note(f"note in {where} at 0x{pos:x} runs past its section")
            return
        owner = rd.cstring(pos + 12, namesz)
        if owner == "GNU" and ntype == NT_GNU_BUILD_ID:
            out.add(pos, desc_end - pos, "elf.note.gnu.build-id", M)
            out.add(name_end, descsz, "elf.note.gnu.build-id.desc", Kind.BUILD_ID)
        else:
            label = f"elf.note[{where}:{owner}:{ntype}]"
            out.add(pos, desc_end - pos, label, M)
        pos, count = desc_end, count + 1


def _dynamic(out: RegionBuilder, rd: Reader, start: int, size: int, entsize: int) -> None:
    seen: dict[str, int] = {}
    for pos in range(start, start + min(size, entsize * 4096), entsize):
        tag = rd.uint(pos, entsize // 2)
        if tag is None:
            return
        label = DT_NAMES.get(tag, f"DT_0x{tag:x}")
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.add(pos, entsize, f"elf.dynamic.{label}[{n}]", M)
        if tag == 0:
            out.add(
                pos + entsize, start + size - pos - entsize, "elf.dynamic.padding", Kind.PADDING
            )
            return


def _symbols(out: RegionBuilder, binary: Any, mapped: list[tuple[int, int, int]]) -> None:
    mapped.sort()
    starts = [m[0] for m in mapped]
    for table in (binary.symtab_symbols, binary.dynamic_symbols):
        for sym in table:
            value, name = sym.value, sym.name
            if not value or not name or sym.shndx == 0:
                continue
            i = bisect.bisect_right(starts, value) - 1
            if i >= 0 and value < mapped[i][1]:
                out.symbol(mapped[i][2] + value - mapped[i][0], sym.size, name)
