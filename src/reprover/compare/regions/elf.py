"""ELF region map (32/64-bit, both byte orders), built inside the parsing worker.

Owns: labelling every byte of an ELF file: header fields (offset tables from the System V ABI,
because LIEF exposes no file offsets for them), program and section headers, section contents
by type, notes (GNU build-id), `.dynamic` entries (every System V and GNU tag by name), symbol
and string tables; what the loader maps executable (`PF_X` PT_LOAD segments, `SHF_EXECINSTR`
sections); the grants of `elf.build-id` and `debug-info` with their structure checks; function
extents from `.symtab` and `.dynsym` (st_size). Gaps come from `map.RegionBuilder`.
Does not own: process isolation (`worker`), comparing or classifying differences (`ledger`).
"""

from __future__ import annotations

import bisect
import struct
from typing import Any

from reprover.compare.regions.map import SELF, Reader, RegionBuilder
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
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4
PT_LOAD, PF_X = 1, 0x1
MACHINES = {62: "x86-64", 3: "x86", 183: "arm64", 40: "arm"}  # e_machine -> instruction set
BUILD_ID = "elf.note.gnu.build-id"
PT_NAMES = {0: "PT_NULL", 1: "PT_LOAD", 2: "PT_DYNAMIC", 3: "PT_INTERP", 4: "PT_NOTE",
            6: "PT_PHDR", 7: "PT_TLS", 0x6474E550: "PT_GNU_EH_FRAME",
            0x6474E551: "PT_GNU_STACK", 0x6474E552: "PT_GNU_RELRO",
            0x6474E553: "PT_GNU_PROPERTY"}  # fmt: skip
DT_NAMES = {  # System V gABI and GNU dynamic tags
    0: "DT_NULL", 1: "DT_NEEDED", 2: "DT_PLTRELSZ", 3: "DT_PLTGOT", 4: "DT_HASH",
    5: "DT_STRTAB", 6: "DT_SYMTAB", 7: "DT_RELA", 8: "DT_RELASZ", 9: "DT_RELAENT",
    10: "DT_STRSZ", 11: "DT_SYMENT", 12: "DT_INIT", 13: "DT_FINI", 14: "DT_SONAME",
    15: "DT_RPATH", 16: "DT_SYMBOLIC", 17: "DT_REL", 18: "DT_RELSZ", 19: "DT_RELENT",
    20: "DT_PLTREL", 21: "DT_DEBUG", 22: "DT_TEXTREL", 23: "DT_JMPREL", 24: "DT_BIND_NOW",
    25: "DT_INIT_ARRAY", 26: "DT_FINI_ARRAY", 27: "DT_INIT_ARRAYSZ", 28: "DT_FINI_ARRAYSZ",
    29: "DT_RUNPATH", 30: "DT_FLAGS", 32: "DT_PREINIT_ARRAY", 33: "DT_PREINIT_ARRAYSZ",
    34: "DT_SYMTAB_SHNDX", 35: "DT_RELRSZ", 36: "DT_RELR", 37: "DT_RELRENT",
    0x6FFFFDF5: "DT_GNU_PRELINKED", 0x6FFFFDF6: "DT_GNU_CONFLICTSZ",
    0x6FFFFDF7: "DT_GNU_LIBLISTSZ", 0x6FFFFDF8: "DT_CHECKSUM", 0x6FFFFDF9: "DT_PLTPADSZ",
    0x6FFFFDFA: "DT_MOVEENT", 0x6FFFFDFB: "DT_MOVESZ", 0x6FFFFDFC: "DT_FEATURE_1",
    0x6FFFFDFD: "DT_POSFLAG_1", 0x6FFFFDFE: "DT_SYMINSZ", 0x6FFFFDFF: "DT_SYMINENT",
    0x6FFFFEF5: "DT_GNU_HASH", 0x6FFFFEF6: "DT_TLSDESC_PLT", 0x6FFFFEF7: "DT_TLSDESC_GOT",
    0x6FFFFEF8: "DT_GNU_CONFLICT", 0x6FFFFEF9: "DT_GNU_LIBLIST", 0x6FFFFEFA: "DT_CONFIG",
    0x6FFFFEFB: "DT_DEPAUDIT", 0x6FFFFEFC: "DT_AUDIT", 0x6FFFFEFD: "DT_PLTPAD",
    0x6FFFFEFE: "DT_MOVETAB", 0x6FFFFEFF: "DT_SYMINFO", 0x6FFFFFF0: "DT_VERSYM",
    0x6FFFFFF9: "DT_RELACOUNT", 0x6FFFFFFA: "DT_RELCOUNT", 0x6FFFFFFB: "DT_FLAGS_1",
    0x6FFFFFFC: "DT_VERDEF", 0x6FFFFFFD: "DT_VERDEFNUM", 0x6FFFFFFE: "DT_VERNEED",
    0x6FFFFFFF: "DT_VERNEEDNUM", 0x7FFFFFFD: "DT_AUXILIARY", 0x7FFFFFFF: "DT_FILTER",
}  # fmt: skip
NT_GNU_BUILD_ID = 3


def build(data: Any, binary: Any) -> RegionBuilder:  # noqa: PLR0912, PLR0915 - follows the file in order
    """Map `data` (the file's bytes) using the parsed LIEF ELF `binary`.

    Raises:
        ValueError: the ELF identification bytes are not understood.
    """
    out = RegionBuilder("elf", len(data))
    is64 = data[4:5] == b"\x02"
    if data[4:5] not in (b"\x01", b"\x02") or data[5:6] not in (b"\x01", b"\x02"):
        raise ValueError("ELF identification: unknown class or byte order")
    rd = Reader(data, little=data[5:6] == b"\x01")
    arch = MACHINES.get(rd.uint(18, 2) or 0, "")
    table = HEADER64 if is64 else HEADER32
    out.fields(0, table, "elf.header")
    offs = {name: off for name, off, _, _ in table}
    width = 8 if is64 else 4
    phoff = rd.uint(offs["e_phoff"], width) or 0
    shoff = rd.uint(offs["e_shoff"], width) or 0
    phentsize = rd.uint(offs["e_phentsize"], 2) or 0
    shentsize = rd.uint(offs["e_shentsize"], 2) or 0
    phnum = rd.uint(offs["e_phnum"], 2) or 0
    shnum = rd.uint(offs["e_shnum"], 2) or 0

    phnum_read = _segments(out, rd, binary, phoff, phentsize, phnum, is64)
    out.structure(0, 64 if is64 else 52, "elf.header", M)
    out.structure(phoff, phnum_read * phentsize, "elf.program_headers", M)
    loaded = [(s, e) for s, e, name, _ in out.regions if ":PT_LOAD]" in name]

    sections = list(binary.sections)
    if shnum and len(sections) != shnum:
        out.note(f"header says {shnum} sections, {len(sections)} parsed (truncated?)")
    out.structure(shoff, shnum * shentsize, "elf.section_headers", M)
    mapped: list[tuple[int, int, int]] = []  # (va, va_end, offset) of sections with file bytes
    build_ids = 0
    for i, sec in enumerate(sections):
        name = sec.name or f"#{i}"
        out.add(shoff + i * shentsize, shentsize, f"elf.section_header[{name}]", M)
        stype, flags = int(sec.type), int(sec.flags)
        if stype == SHT_NOBITS or sec.size == 0:
            continue
        if sec.virtual_address:
            mapped.append((sec.virtual_address, sec.virtual_address + sec.size, sec.offset))
        region = f"elf.section[{name}]"
        kind = _section_kind(name, stype, flags)
        if flags & SHF_EXECINSTR:
            out.executable(sec.offset, sec.size, section=True)
            out.code_section(sec.offset, sec.size, arch, sec.virtual_address)
        if kind is Kind.DEBUG_INFO and _loaded(loaded, sec.offset, sec.size, flags):
            out.finding(f"{region} is named like debug info but the loader maps it; not granted")
            kind = Kind.DATA
        if kind is Kind.DEBUG_INFO:
            out.grant(sec.offset, sec.size, region, kind, SELF)
        else:
            out.structure(sec.offset, sec.size, region, kind)
        if stype == SHT_NOTE:
            build_ids += _notes(out, rd, sec.offset, sec.size, name, region)
        elif stype == SHT_DYNAMIC:
            _dynamic(out, rd, sec.offset, sec.size, 16 if is64 else 8)
    if not sections:
        for i, seg in enumerate(list(binary.segments)[:phnum_read]):
            if int(seg.type) == 4:
                where = f"segment{i}"
                build_ids += _notes(out, rd, seg.file_offset, seg.physical_size, where, SELF)
    if build_ids > 1:
        out.finding(f"{build_ids} GNU build-id notes: none is granted")
        out.grants = [g for g in out.grants if not out.regions[g[0]][2].startswith(BUILD_ID)]
    _symbols(out, binary, mapped)
    return out


def _segments(  # noqa: PLR0917 - private helper sharing the walk state of build
    out: RegionBuilder, rd: Reader, binary: Any, phoff: int, entsize: int, count: int, is64: bool
) -> int:
    """Label program headers and segments from the raw table; record executable spans.

    Returns the number of program headers read.
    """
    if len(list(binary.segments)) != count:
        out.note(f"header says {count} program headers, {len(binary.segments)} parsed (truncated?)")
    fmt = "IIQQQQQQ" if is64 else "IIIIIIII"
    for i in range(min(count, 4096)):
        row = rd.unpack(fmt, phoff + i * entsize)
        if row is None or entsize < struct.calcsize("<" + fmt):
            out.note(f"program header table truncated after {i} of {count} entries")
            return i
        if is64:
            ptype, pflags, offset, _, _, filesz = row[:6]
        else:
            ptype, offset, _, _, filesz, _, pflags = row[:7]
        label = PT_NAMES.get(ptype, f"PT_0x{ptype:x}")
        out.add(phoff + i * entsize, entsize, f"elf.program_header[{i}:{label}]", M)
        out.add(offset, filesz, f"elf.segment[{i}:{label}]", Kind.DATA)
        if ptype == PT_LOAD and pflags & PF_X:
            out.executable(offset, filesz)
    out.not_executable(0, 64 if is64 else 52)
    out.not_executable(phoff, count * entsize)
    return min(count, 4096)


def _loaded(loaded: list[tuple[int, int]], offset: int, size: int, flags: int) -> bool:
    """Whether a section is allocated (SHF_ALLOC) or lies in a PT_LOAD segment's file bytes."""
    return bool(flags & SHF_ALLOC) or any(s < offset + size and offset < e for s, e in loaded)


def _section_kind(name: str, stype: int, flags: int) -> Kind:
    """What a section holds, by its flags first: an executable section is code whatever its name."""
    if flags & SHF_EXECINSTR:
        return Kind.CODE
    if name.startswith((".debug", ".zdebug", ".gnu_debug", ".stab")):
        return Kind.DEBUG_INFO
    if stype in (SHT_SYMTAB, SHT_DYNSYM, SHT_STRTAB):
        return Kind.SYMBOLS
    if stype in (SHT_NOTE, SHT_DYNAMIC) or name in (".comment", ".gnu.version", ".gnu.hash"):
        return Kind.METADATA
    return Kind.DATA


def _notes(  # noqa: PLR0917 - private helper sharing the walk state of build
    out: RegionBuilder, rd: Reader, start: int, size: int, where: str, owner: str | None
) -> int:
    """Walk the notes in [start, start+size): namesz, descsz, type, name, desc (4-aligned).

    A GNU build-id descriptor is granted (`elf.build-id`) only inside `owner`, its note
    section, and only where nothing is executable (checked in `RegionBuilder.result`).
    Returns the number of GNU build-id notes seen.
    """
    pos, end, count, seen = start, start + size, 0, 0
    while pos + 12 <= end and count < 256:
        head = rd.unpack("III", pos)
        if head is None:
            return seen
        namesz, descsz, ntype = head
        name_end = pos + 12 + ((namesz + 3) & ~3)
        desc_end = name_end + ((descsz + 3) & ~3)
        if desc_end > end:
            out.note(f"note in {where} at 0x{pos:x} runs past its section")
            return seen
        vendor = rd.cstring(pos + 12, namesz)
        if vendor == "GNU" and ntype == NT_GNU_BUILD_ID:
            out.add(pos, desc_end - pos, BUILD_ID, M)
            out.grant(name_end, descsz, BUILD_ID + ".desc", Kind.BUILD_ID, owner)
            seen += 1
        else:
            label = f"elf.note[{where}:{vendor}:{ntype}]"
            out.add(pos, desc_end - pos, label, M)
        pos, count = desc_end, count + 1
    return seen


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
