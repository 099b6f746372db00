"""Mach-O region map, thin and fat, built inside the parsing worker.

Owns: labelling every byte of a Mach-O file: fat header and arch entries, each slice's mach
header fields, each load command, segments and sections, `LC_UUID`, every `__LINKEDIT` blob
(dyld info, function starts, data in code, chained fixups, exports trie), symbol and string
tables (including `N_OSO` object mtimes and paths), the code signature SuperBlob with its
CodeDirectory header, identifier and hash slots; what the loader maps executable (segments whose
initial protection has VM_PROT_EXECUTE, sections with instruction attributes); the grants of
`macho.uuid`, `macho.oso` and `debug-info`; function extents from `LC_SYMTAB` bounded by
`LC_FUNCTION_STARTS`.
Does not own: isolation (`worker`) or classification (`ledger`).
"""

from __future__ import annotations

from typing import Any

from reprover.compare.regions.map import SELF, Reader, RegionBuilder
from reprover.model import Kind

M = Kind.METADATA
HEADER = (
    ("magic", 0, 4, M), ("cputype", 4, 4, M), ("cpusubtype", 8, 4, M), ("filetype", 12, 4, M),
    ("ncmds", 16, 4, M), ("sizeofcmds", 20, 4, M), ("flags", 24, 4, M),
)  # fmt: skip
ARCH = {7: "x86", 0x01000007: "x86-64", 12: "arm", 0x0100000C: "arm64", 0x0200000C: "arm64"}
CPU = {7: "i386", 0x01000007: "x86_64", 12: "arm", 0x0100000C: "arm64", 0x0200000C: "arm64_32"}
LC_SEGMENT, LC_SYMTAB, LC_DYSYMTAB, LC_UUID, LC_SEGMENT_64 = 0x1, 0x2, 0xB, 0x1B, 0x19
LC_CODE_SIGNATURE = 0x1D
LINKEDIT_DATA = {0x1D: "LC_CODE_SIGNATURE", 0x1E: "LC_SEGMENT_SPLIT_INFO",
                 0x26: "LC_FUNCTION_STARTS", 0x29: "LC_DATA_IN_CODE",
                 0x2B: "LC_DYLIB_CODE_SIGN_DRS", 0x2E: "LC_LINKER_OPTIMIZATION_HINT",
                 0x80000033: "LC_DYLD_EXPORTS_TRIE",
                 0x80000034: "LC_DYLD_CHAINED_FIXUPS"}  # fmt: skip
DYLD_INFO = ("rebase", "bind", "weak_bind", "lazy_bind", "export")
N_STAB, N_TYPE, N_SECT, N_SO, N_OSO = 0xE0, 0x0E, 0x0E, 0x64, 0x66
MAX_NLIST = 2_000_000
CD_MAGIC, SUPERBLOB_MAGIC = 0xFADE0C02, 0xFADE0CC0
VM_PROT_EXECUTE = 0x4
S_ATTR_INSTRUCTIONS = 0x80000400  # S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS


def build(data: Any, fat: Any) -> RegionBuilder:
    """Map `data` (the file's bytes) using the parsed LIEF Mach-O `fat` binary (thin or fat).

    Raises:
        ValueError: a fat header that lists no slices.
    """
    out = RegionBuilder("macho", len(data))
    be = Reader(data, little=False)
    slices: list[tuple[int, int, str]] = []
    if bytes(data[:4]) in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"):
        slices = _fat(out, be, bytes(data[:4]) == b"\xca\xfe\xba\xbf")
        out.format = "macho-fat"
    for i in range(fat.size):
        binary = fat.at(i)
        base = binary.fat_offset if slices else 0
        name = CPU.get(int(binary.header.cpu_type), f"cpu{i}") if slices else ""
        prefix = f"macho[{name}]" if slices else "macho"
        _slice(out, data, binary, base, prefix)
    if slices and fat.size != len(slices):
        out.note(f"fat header lists {len(slices)} slices, LIEF parsed {fat.size}")
    return out


def _fat(out: RegionBuilder, be: Reader, is64: bool) -> list[tuple[int, int, str]]:
    count = be.uint(4, 4) or 0
    if count == 0:
        raise ValueError("fat Mach-O header lists no slices")
    entsize = 32 if is64 else 20
    out.structure(0, 8, "macho.fat_header", M)
    slices: list[tuple[int, int, str]] = []
    for i in range(min(count, 64)):
        at = 8 + entsize * i
        row = be.unpack("IIQQII" if is64 else "IIIII", at)
        if row is None:
            out.note(f"fat arch table truncated after {i} of {count} entries")
            break
        cpu, offset, size = row[0], row[2], row[3]
        arch = CPU.get(cpu, f"cpu0x{cpu:x}")
        out.structure(at, entsize, f"macho.fat_arch[{i}:{arch}]", M)
        for other_start, other_end, other in slices:
            if offset < other_end and other_start < offset + size:
                out.note(f"fat slices {other} and {arch} overlap")
                out.finding(f"fat slices {other} and {arch} overlap")
        slices.append((offset, offset + size, arch))
        out.add(offset, size, f"macho.slice[{arch}]", Kind.DATA)
    return slices


def _slice(out: RegionBuilder, data: Any, binary: Any, base: int, p: str) -> None:  # noqa: PLR0912 - one branch per load-command family reads best
    rd = Reader(
        data, little=bytes(data[base : base + 4]) in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")
    )
    is64 = bytes(data[base : base + 4]) in (b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf")
    header = 32 if is64 else 28
    out.structure(base, header, f"{p}.header", M)
    out.fields(base, HEADER, f"{p}.header")
    ncmds = rd.uint(base + 16, 4) or 0
    out.not_executable(base, header + (rd.uint(base + 20, 4) or 0))
    commands = list(binary.commands)
    if len(commands) != ncmds:
        out.note(f"{p} header says {ncmds} load commands, LIEF parsed {len(commands)}")
    for i, cmd in enumerate(commands):
        at = base + cmd.command_offset
        ctype = rd.uint(at, 4) or 0
        cname = str(cmd.command).rsplit(".", 1)[-1]
        if ctype in (LC_SEGMENT, LC_SEGMENT_64):
            cname += " " + cmd.name
        lc = f"{p}.lc[{i}:LC_{cname}]"
        out.structure(at, cmd.size, lc, M)
        if ctype == LC_UUID:
            out.grant(at + 8, 16, f"{p}.LC_UUID.uuid", Kind.BUILD_ID, lc)
        elif ctype in (LC_SEGMENT, LC_SEGMENT_64):
            _segment(out, rd, cmd, at, base, is64, p)
        elif ctype == LC_SYMTAB:
            _symtab(out, rd, base, at, is64, p)
        elif ctype == LC_DYSYMTAB:
            off, n = rd.uint(at + 56, 4) or 0, rd.uint(at + 60, 4) or 0
            out.structure(base + off if off else None, 4 * n, f"{p}.indirect_symbols", Kind.SYMBOLS)
        elif ctype in LINKEDIT_DATA:
            off, size = rd.uint(at + 8, 4) or 0, rd.uint(at + 12, 4) or 0
            if ctype == LC_CODE_SIGNATURE:
                _code_signature(out, Reader(data, little=False), base + off, size, p)
            elif off:
                out.structure(base + off, size, f"{p}.linkedit[{LINKEDIT_DATA[ctype]}]", M)
        elif ctype in (0x22, 0x80000022):  # LC_DYLD_INFO(_ONLY)
            for j, part in enumerate(DYLD_INFO):
                off, size = rd.uint(at + 8 + 8 * j, 4) or 0, rd.uint(at + 12 + 8 * j, 4) or 0
                if off:
                    out.structure(base + off, size, f"{p}.dyld_info.{part}", M)
    _symbols(out, binary, base)


def _segment(  # noqa: PLR0917 - private helper sharing the walk state of _slice
    out: RegionBuilder, rd: Reader, seg: Any, at: int, base: int, is64: bool, p: str
) -> None:
    """Label a segment (context only) and its sections; record what the loader maps executable.

    A segment whose initial protection has VM_PROT_EXECUTE is executable as a whole (the
    header and load commands excepted, see `_slice`); so is every section with an
    instruction attribute, wherever it lies.
    """
    if seg.file_size:
        out.add(base + seg.file_offset, seg.file_size, f"{p}.segment[{seg.name}]", Kind.DATA)
        initprot = rd.uint(at + (60 if is64 else 44), 4) or 0
        if initprot & VM_PROT_EXECUTE:
            out.executable(base + seg.file_offset, seg.file_size)
    head, entsize = (72, 80) if is64 else (56, 68)
    arch = ARCH.get(rd.uint(base + 4, 4) or 0, "")
    for j, sec in enumerate(seg.sections):
        label = f"{seg.name},{sec.name}"
        out.add(at + head + entsize * j, entsize, f"{p}.section_header[{label}]", M)
        if sec.offset == 0 or sec.size == 0 or int(sec.type) in (1, 0xC, 0x12):
            continue  # zerofill sections have no file bytes
        region = f"{p}.section[{label}]"
        if int(sec.flags) & S_ATTR_INSTRUCTIONS or sec.name in ("__text", "__stubs"):
            out.executable(base + sec.offset, sec.size, section=True)
            out.code_section(base + sec.offset, sec.size, arch, sec.virtual_address)
            out.structure(base + sec.offset, sec.size, region, Kind.CODE)
        elif seg.name == "__DWARF":
            out.grant(base + sec.offset, sec.size, region, Kind.DEBUG_INFO, SELF)
        else:
            out.structure(base + sec.offset, sec.size, region, Kind.DATA)


def _symtab(  # noqa: PLR0917 - private helper sharing the walk state of _slice
    out: RegionBuilder, rd: Reader, base: int, at: int, is64: bool, p: str
) -> None:
    row = rd.unpack("IIII", at + 8)
    if row is None:
        return
    symoff, nsyms, stroff, strsize = row
    entsize = 16 if is64 else 12
    out.structure(base + symoff, nsyms * entsize, f"{p}.symtab", Kind.SYMBOLS)
    out.structure(base + stroff, strsize, f"{p}.strtab", Kind.SYMBOLS)
    for k in range(min(nsyms, MAX_NLIST)):
        entry = base + symoff + entsize * k
        ntype = rd.uint(entry + 4, 1)
        if ntype is None:
            out.note(f"{p} symbol table truncated after {k} of {nsyms} entries")
            return
        if ntype not in (N_SO, N_OSO):
            continue
        strx = rd.uint(entry, 4) or 0
        text = base + stroff + strx
        length = len(rd.cstring(text, 4096).encode()) + 1
        if strx and strx < strsize:
            tag = "N_OSO" if ntype == N_OSO else "N_SO"
            path = f"{p}.strtab.{tag}.path"
            if tag == "N_OSO":
                out.grant(text, min(length, strsize - strx), path, Kind.DEBUG_PATH, f"{p}.strtab")
            else:
                out.add(text, min(length, strsize - strx), path, Kind.DEBUG_PATH)
        if ntype == N_OSO:
            mtime = f"{p}.symtab.N_OSO.mtime"
            out.grant(entry + 8, entsize - 8, mtime, Kind.TIMESTAMP, f"{p}.symtab")


def _code_signature(out: RegionBuilder, be: Reader, off: int, size: int, p: str) -> None:
    c = f"{p}.code_signature"
    if not out.structure(off, size, c, Kind.SIGNATURE) or be.uint(off, 4) != SUPERBLOB_MAGIC:
        return
    count = be.uint(off + 8, 4) or 0
    out.add(off, 12 + 8 * count, f"{c}.super_blob", Kind.SIGNATURE)
    for i in range(min(count, 32)):
        row = be.unpack("II", off + 12 + 8 * i)
        if row is None:
            return
        btype, boff = row
        blob = off + boff
        magic, length = be.uint(blob, 4), be.uint(blob + 4, 4) or 0
        if magic != CD_MAGIC:
            out.add(blob, length, f"{c}.blob[0x{btype:x}]", Kind.SIGNATURE)
            continue
        hdr = be.unpack("IIIIIIIII4B", blob)
        if hdr is None:
            return
        _, _, _, _, hash_off, ident_off, nspecial, ncode, _, hsize, *_ = hdr
        cd = f"{c}.code_directory"
        out.add(blob, length, cd, Kind.SIGNATURE)
        header_end = min(ident_off, hash_off - nspecial * hsize, length)
        out.add(blob, header_end, f"{cd}.header", Kind.SIGNATURE)
        out.add(
            blob + ident_off,
            len(be.cstring(blob + ident_off, 1024)) + 1,
            f"{cd}.identifier",
            Kind.SIGNATURE,
        )
        out.add(
            blob + hash_off - nspecial * hsize,
            nspecial * hsize,
            f"{cd}.special_slots",
            Kind.SIGNATURE,
        )
        for n in range(min(ncode, 1 << 20)):
            out.add(blob + hash_off + n * hsize, hsize, f"{cd}.code_slot[{n}]", Kind.SIGNATURE)


def _symbols(out: RegionBuilder, binary: Any, base: int) -> None:
    """Name functions by the symbol table, each bounded by LC_FUNCTION_STARTS.

    A function extends to the next function start or the end of its section; a symbol at no
    function start gets no extent (it names only its first byte).
    """
    spans = sorted(
        (s.virtual_address, s.virtual_address + s.size, s.offset)
        for s in binary.sections
        if s.offset and s.size
    )
    extent: dict[int, int] = {}
    text = binary.get_segment("__TEXT") if binary.has_function_starts else None
    if text is not None:
        starts = sorted({text.virtual_address + f for f in binary.function_starts.functions})
        for i, start in enumerate(starts):
            section_end = next((e for s, e, _ in spans if s <= start < e), start)
            following = starts[i + 1] if i + 1 < len(starts) else section_end
            extent[start] = max(min(following, section_end) - start, 0)
    for sym in binary.symbols:
        if sym.raw_type & N_STAB or (sym.raw_type & N_TYPE) != N_SECT or not sym.name:
            continue
        for start, end, offset in spans:
            if start <= sym.value < end:
                at = base + offset + sym.value - start
                out.symbol(at, extent.get(sym.value, 0), sym.name)
                break
