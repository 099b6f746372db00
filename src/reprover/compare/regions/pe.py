"""PE region map (PE32 and PE32+), built inside the parsing worker.

Owns: labelling every byte of a PE file: DOS header and stub, Rich header, every COFF and
optional-header field and data-directory entry (offset tables from the PE/COFF specification,
because LIEF exposes no file offsets for them), section headers, section contents and their
alignment padding, data-directory payloads, debug directory entries with the CodeView GUID, age
and PDB path, export/resource/load-config timestamps, COFF symbol and string tables, overlay,
certificate table and the signer's padding; what the loader maps executable (sections with
CNT_CODE or MEM_EXECUTE, whatever their name); the grants of the PE rules with their structure
checks (debug data inside one non-executable section, overlapping nothing); function extents
from COFF symbols and exports bounded by `.pdata`.
Does not own: Authenticode proofs (`authenticode`), isolation (`worker`), classification
(`ledger`).
"""

from __future__ import annotations

from typing import Any

from reprover.compare.regions.map import SELF, Reader, RegionBuilder
from reprover.model import Kind

M, TS = Kind.METADATA, Kind.TIMESTAMP
COFF = (
    ("Machine", 0, 2, M), ("NumberOfSections", 2, 2, M), ("TimeDateStamp", 4, 4, TS),
    ("PointerToSymbolTable", 8, 4, M), ("NumberOfSymbols", 12, 4, M),
    ("SizeOfOptionalHeader", 16, 2, M), ("Characteristics", 18, 2, M),
)  # fmt: skip
_COMMON = (
    ("Magic", 0, 2, M), ("MajorLinkerVersion", 2, 1, M), ("MinorLinkerVersion", 3, 1, M),
    ("SizeOfCode", 4, 4, M), ("SizeOfInitializedData", 8, 4, M),
    ("SizeOfUninitializedData", 12, 4, M), ("AddressOfEntryPoint", 16, 4, Kind.CODE),
    ("BaseOfCode", 20, 4, M), ("SectionAlignment", 32, 4, M), ("FileAlignment", 36, 4, M),
    ("MajorOperatingSystemVersion", 40, 2, M), ("MinorOperatingSystemVersion", 42, 2, M),
    ("MajorImageVersion", 44, 2, M), ("MinorImageVersion", 46, 2, M),
    ("MajorSubsystemVersion", 48, 2, M), ("MinorSubsystemVersion", 50, 2, M),
    ("Win32VersionValue", 52, 4, M), ("SizeOfImage", 56, 4, M), ("SizeOfHeaders", 60, 4, M),
    ("CheckSum", 64, 4, Kind.CHECKSUM), ("Subsystem", 68, 2, M), ("DllCharacteristics", 70, 2, M),
)  # fmt: skip
OPT32 = (
    *_COMMON, ("BaseOfData", 24, 4, M), ("ImageBase", 28, 4, M),
    ("SizeOfStackReserve", 72, 4, M), ("SizeOfStackCommit", 76, 4, M),
    ("SizeOfHeapReserve", 80, 4, M), ("SizeOfHeapCommit", 84, 4, M),
    ("LoaderFlags", 88, 4, M), ("NumberOfRvaAndSizes", 92, 4, M),
)  # fmt: skip
OPT64 = (
    *_COMMON, ("ImageBase", 24, 8, M),
    ("SizeOfStackReserve", 72, 8, M), ("SizeOfStackCommit", 80, 8, M),
    ("SizeOfHeapReserve", 88, 8, M), ("SizeOfHeapCommit", 96, 8, M),
    ("LoaderFlags", 104, 4, M), ("NumberOfRvaAndSizes", 108, 4, M),
)  # fmt: skip
DIRECTORIES = ("EXPORT", "IMPORT", "RESOURCE", "EXCEPTION", "SECURITY", "BASERELOC", "DEBUG",
               "ARCHITECTURE", "GLOBALPTR", "TLS", "LOAD_CONFIG", "BOUND_IMPORT", "IAT",
               "DELAY_IMPORT", "CLR_RUNTIME_HEADER", "RESERVED")  # fmt: skip
DEBUG_ENTRY = (
    ("Characteristics", 0, 4, M), ("TimeDateStamp", 4, 4, TS), ("MajorVersion", 8, 2, M),
    ("MinorVersion", 10, 2, M), ("Type", 12, 4, M), ("SizeOfData", 16, 4, M),
    ("AddressOfRawData", 20, 4, M), ("PointerToRawData", 24, 4, M),
)  # fmt: skip
DEBUG_TYPES = {1: "COFF", 2: "CODEVIEW", 4: "MISC", 12: "VC_FEATURE", 13: "POGO", 14: "ILTCG",
               16: "REPRO", 20: "EX_DLLCHARACTERISTICS"}  # fmt: skip
TIMESTAMPED = {0: "pe.export.TimeDateStamp", 2: "pe.resource.TimeDateStamp",
               10: "pe.load_config.TimeDateStamp"}  # fmt: skip
SCN_CNT_CODE, SCN_MEM_EXECUTE = 0x20, 0x20000000
MAX_SECTIONS = 4096
MAX_DEBUG = 64


class _Sections:
    """Raw section table rows: (name, va, vsize, rawptr, rawsize, characteristics)."""

    def __init__(self, rows: list[tuple[str, int, int, int, int, int]], size_of_headers: int):
        self.rows = rows
        self.size_of_headers = size_of_headers

    def rva_to_offset(self, rva: int) -> int | None:
        for _, va, vsize, rawptr, rawsize, _ in self.rows:
            if va <= rva < va + max(vsize, rawsize) and rva - va < rawsize:
                return rawptr + rva - va
        return rva if rva < self.size_of_headers else None

    def owner(self, offset: int, length: int) -> str | None:
        """The name of the section whose file bytes hold [offset, offset+length), or None."""
        for name, _, _, rawptr, rawsize, _ in self.rows:
            if rawptr and rawptr <= offset and offset + length <= rawptr + rawsize:
                return f"pe.section[{name}]"
        return None


def build(data: Any, binary: Any) -> RegionBuilder:  # noqa: PLR0915 - follows the file in order
    """Map `data` (the file's bytes) using the parsed LIEF PE `binary`.

    Raises:
        ValueError: the headers are too short to be PE.
    """
    out = RegionBuilder("pe", len(data))
    rd = Reader(data)
    lfanew = rd.uint(0x3C, 4)
    if lfanew is None or rd.uint(lfanew, 4) != 0x4550:
        raise ValueError("claims to be PE but has no PE signature at e_lfanew")
    out.structure(0, 64, "pe.dos_header", M)
    out.add(0, 2, "pe.dos_header.e_magic", M)
    out.add(0x3C, 4, "pe.dos_header.e_lfanew", M)
    out.structure(64, lfanew - 64, "pe.dos_stub", M)
    _rich(out, data, lfanew)
    out.structure(lfanew, 4, "pe.signature", M)
    coff = lfanew + 4
    out.structure(coff, 20, "pe.coff", M)
    out.fields(coff, COFF[:2], "pe.coff")
    out.grant(coff + 4, 4, "pe.coff.TimeDateStamp", TS, "pe.coff")
    out.fields(coff, COFF[3:], "pe.coff")
    nsect, symptr, nsyms, optsize = (
        rd.uint(coff + o, n) or 0 for o, n in ((2, 2), (8, 4), (12, 4), (16, 2))
    )
    opt = coff + 20
    magic = rd.uint(opt, 2)
    table, dirs_at = (OPT64, 112) if magic == 0x20B else (OPT32, 96)
    out.structure(opt, optsize, "pe.optional_header", M)
    out.fields(opt, tuple(f for f in table if f[0] != "CheckSum"), "pe.optional_header")
    out.grant(opt + 64, 4, "pe.optional_header.CheckSum", Kind.CHECKSUM, "pe.optional_header")
    ndirs = min(rd.uint(opt + dirs_at - 4, 4) or 0, 16)
    size_of_headers = rd.uint(opt + 60, 4) or 0
    sect_at = opt + optsize
    arch = MACHINES.get(rd.uint(coff, 2) or 0, "")
    base = rd.uint(opt + 24, 8) if magic == 0x20B else rd.uint(opt + 28, 4)
    rows = _section_table(out, rd, sect_at, min(nsect, MAX_SECTIONS), symptr, nsyms)
    for _, va, _, rawptr, rawsize, chars in rows:
        if rawptr and rawsize and chars & (SCN_CNT_CODE | SCN_MEM_EXECUTE):
            out.code_section(rawptr, rawsize, arch, (base or 0) + va)
    if len(binary.sections) != len(rows):
        out.note(f"header says {nsect} sections, LIEF parsed {len(binary.sections)}")
    secs = _Sections(rows, size_of_headers)
    end_headers = sect_at + 40 * len(rows)
    out.structure(sect_at, 40 * len(rows), "pe.section_table", M)
    out.structure(end_headers, size_of_headers - end_headers, "pe.headers.padding", Kind.PADDING)
    out.not_executable(0, max(size_of_headers, end_headers))
    directories: list[tuple[int, int, str]] = []
    content_end = max([size_of_headers, *(p + s for _, _, _, p, s, _ in rows if p)])
    for i in range(ndirs):
        name = DIRECTORIES[i]
        entry = opt + dirs_at + 8 * i
        is_cert = name == "SECURITY"
        out.add(entry, 8, f"pe.data_directory[{name}]", Kind.SIGNATURE if is_cert else M)
        rva, size = rd.uint(entry, 4) or 0, rd.uint(entry + 4, 4) or 0
        if not rva or not size:
            continue
        if is_cert:  # the "RVA" of the certificate table is a file offset
            _certificate(out, data, rva, size, content_end)
            continue
        off = secs.rva_to_offset(rva)
        if off is None:
            out.note(f"data directory {name} points outside every section (RVA 0x{rva:x})")
            continue
        out.add(off, size, f"pe.directory[{name}]", M)
        directories.append((off, off + size, f"pe.directory[{name}]"))
        if i in TIMESTAMPED:
            out.grant(off + 4, 4, TIMESTAMPED[i], TS, secs.owner(off, size))
    for off, end, name in directories:
        if name == "pe.directory[DEBUG]":
            _debug(out, rd, off, end - off, secs, directories)
    content_end = _coff_symbols(out, rd, symptr, nsyms, content_end)
    cert = next((r for r in out.regions if r[2] == "pe.certificate_table"), None)
    overlay_end = cert[0] if cert else len(data)
    if overlay_end > content_end:
        pad = next((r for r in out.regions if r[2] == "pe.certificate_padding"), None)
        out.structure(
            content_end, (pad[0] if pad else overlay_end) - content_end, "pe.overlay", Kind.OVERLAY
        )
    exception = (opt + dirs_at + 8 * 3) if ndirs > 3 else None
    pdata = (rd.uint(exception, 4) or 0, rd.uint(exception + 4, 4) or 0) if exception else (0, 0)
    _symbols(out, rd, binary, rows, pdata)
    return out


MACHINES = {0x8664: "x86-64", 0x14C: "x86", 0xAA64: "arm64", 0x1C0: "arm", 0x1C4: "thumb"}


def _rich(out: RegionBuilder, data: Any, lfanew: int) -> None:
    stub = bytes(data[0x80 : min(lfanew, 0x1000)])
    at = stub.find(b"Rich")
    if at < 4 or at + 8 > len(stub):
        return
    key = int.from_bytes(stub[at + 4 : at + 8], "little")
    dans = 0x536E6144 ^ key
    for pos in range(at - 4, -1, -4):
        if int.from_bytes(stub[pos : pos + 4], "little") == dans:
            out.grant(0x80 + pos, at + 8 - pos, "pe.rich_header", M, "pe.dos_stub")
            return


def _section_table(  # noqa: PLR0917 - private helper sharing the walk state of build
    out: RegionBuilder, rd: Reader, at: int, count: int, symptr: int, nsyms: int
) -> list[tuple[str, int, int, int, int, int]]:
    rows = []
    strtab = symptr + 18 * nsyms
    for i in range(count):
        row = rd.unpack("8sIIIIIIHHI", at + 40 * i)
        if row is None:
            out.note(f"section table truncated after {i} of {count} entries")
            break
        raw, vsize, va, rawsize, rawptr, *_, chars = row
        name = bytes(raw).rstrip(b"\0").decode("utf-8", "replace") or f"#{i}"
        if name.startswith("/") and name[1:].isdigit() and symptr:
            name = rd.cstring(strtab + int(name[1:]), 256) or name
        rows.append((name, va, vsize, rawptr, rawsize, chars))
        out.add(at + 40 * i, 40, f"pe.section_header[{name}]", M)
        if not rawptr or not rawsize:
            continue
        if chars & (SCN_CNT_CODE | SCN_MEM_EXECUTE):  # the flags, whatever the name says
            out.executable(rawptr, rawsize, section=True)
            out.structure(rawptr, rawsize, f"pe.section[{name}]", Kind.CODE)
        elif name.startswith((".debug", ".zdebug")):
            out.grant(rawptr, rawsize, f"pe.section[{name}]", Kind.DEBUG_INFO, SELF)
        else:
            out.structure(rawptr, rawsize, f"pe.section[{name}]", Kind.DATA)
        if 0 < vsize < rawsize:
            out.add(rawptr + vsize, rawsize - vsize, f"pe.section[{name}].padding", Kind.PADDING)
    return rows


def _debug(  # noqa: PLR0917 - private helper sharing the walk state of build
    out: RegionBuilder,
    rd: Reader,
    off: int,
    size: int,
    secs: _Sections,
    directories: list[tuple[int, int, str]],
) -> None:
    """Label debug-directory entries and their data.

    An entry's data is granted to a rule only when it lies inside one section (executable
    bytes are refused in `RegionBuilder.result`) and overlaps neither a data directory nor the
    data of another entry; otherwise it is an `overlapping-structure` finding.
    """
    taken = list(directories)
    owner = secs.owner(off, size)
    for i in range(min(size // 28, MAX_DEBUG)):
        entry = off + 28 * i
        dtype = rd.uint(entry + 12, 4)
        if dtype is None:
            return
        label = f"pe.debug[{i}:{DEBUG_TYPES.get(dtype, dtype)}]"
        out.add(entry, 28, label, M)
        out.fields(entry, DEBUG_ENTRY[:1], label)
        out.grant(entry + 4, 4, f"{label}.TimeDateStamp", TS, owner)
        out.fields(entry, DEBUG_ENTRY[2:], label)
        dsize, ptr = rd.uint(entry + 16, 4) or 0, rd.uint(entry + 24, 4) or 0
        if not ptr or not dsize:
            continue
        clash = next((n for s, e, n in taken if s < ptr + dsize and ptr < e), None)
        taken.append((ptr, ptr + dsize, f"the data of {label}"))
        home = secs.owner(ptr, dsize)
        if clash is not None or home is None:
            where = f"overlaps {clash}" if clash else "lies in no single section"
            out.finding(f"the data of {label} (0x{ptr:x}-0x{ptr + dsize:x}) {where}; not granted")
            out.add(ptr, dsize, f"{label}.data", M)
        elif dtype == 2 and rd.uint(ptr, 4) == 0x53445352 and dsize >= 24:  # "RSDS": PDB 7.0
            out.add(ptr, dsize, "pe.debug.codeview", M)
            out.add(ptr, 4, "pe.debug.codeview.signature", M)
            out.grant(ptr + 4, 16, "pe.debug.codeview.guid", Kind.PDB_GUID, home)
            out.grant(ptr + 20, 4, "pe.debug.codeview.age", Kind.PDB_GUID, home)
            out.grant(ptr + 24, dsize - 24, "pe.debug.codeview.path", Kind.DEBUG_PATH, home)
        elif dtype == 16:
            out.grant(ptr, dsize, "pe.debug.repro", Kind.BUILD_ID, home)
        elif dtype == 2:
            out.add(ptr, dsize, f"{label}.data", M)
        else:
            out.grant(ptr, dsize, f"{label}.payload", Kind.DEBUG_INFO, home)


def _certificate(out: RegionBuilder, data: Any, off: int, size: int, content_end: int) -> None:
    out.structure(off, size, "pe.certificate_table", Kind.SIGNATURE)
    if content_end < off <= content_end + 7 and not bytes(data[content_end:off]).strip(b"\0"):
        out.structure(content_end, off - content_end, "pe.certificate_padding", Kind.SIGNATURE)


def _coff_symbols(out: RegionBuilder, rd: Reader, symptr: int, nsyms: int, end: int) -> int:
    if not symptr:
        return end
    out.structure(symptr, 18 * nsyms, "pe.coff.symbol_table", Kind.SYMBOLS)
    strtab = symptr + 18 * nsyms
    strsize = rd.uint(strtab, 4)
    if strsize is not None and strsize >= 4:
        out.structure(strtab, strsize, "pe.coff.string_table", Kind.SYMBOLS)
        return max(end, strtab + strsize)
    return max(end, strtab)


def _symbols(
    out: RegionBuilder,
    rd: Reader,
    binary: Any,
    rows: list[tuple[str, int, int, int, int, int]],
    pdata: tuple[int, int],
) -> None:
    """Name functions by COFF symbols and exports, each bounded by its `.pdata` entry.

    A symbol no RUNTIME_FUNCTION entry starts at gets no extent (it names only its first
    byte): a name is never stretched over bytes that may belong to something else.
    """
    secs = _Sections(rows, 0)
    extent: dict[int, int] = {}
    off = secs.rva_to_offset(pdata[0]) if pdata[0] else None
    for i in range(min(pdata[1] // 12, 1 << 20) if off is not None else 0):
        row = rd.unpack("III", (off or 0) + 12 * i)
        if row is None:
            break
        begin, end, _ = row
        if end > begin:
            extent[begin] = end - begin
    for sym in binary.symbols:
        idx = sym.section_idx
        if 0 < idx <= len(rows) and rows[idx - 1][3] and not sym.name.startswith("."):
            rva = rows[idx - 1][1] + sym.value
            out.symbol(rows[idx - 1][3] + sym.value, extent.get(rva, 0), sym.name)
    if binary.has_exports:
        for entry in binary.get_export().entries:
            at = secs.rva_to_offset(entry.address)
            if at is not None and entry.name:
                out.symbol(at, extent.get(entry.address, 0), entry.name)
