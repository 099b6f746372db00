"""Mutation engine for the fuzzer (scripts/fuzz.py, tests/test_fuzz.py).

Owns: finding the header fields of PE, ELF, Mach-O (thin and fat) files that parsers trust
(offsets, sizes, counts), reading them by hand with every offset bounds-checked, and the
mutators: random bit flips, interesting bytes, structure-aware writes of extreme values into
those fields, truncation, extension, chunk moves, splices of two files, and DER length/tag
writes inside a PE certificate table.
Does not own: running reprover on the mutants or judging the outcome (scripts/fuzz.py).

Everything is deterministic for a given `random.Random`; nothing here imports reprover, so the
mutants are made without trusting the code under test.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """One integer field of a file header: where it is and how wide (bytes, `<` or `>`)."""

    offset: int
    width: int
    name: str
    endian: str = "<"


_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def read_int(data: bytes | bytearray, off: int, width: int, endian: str = "<") -> int | None:
    """The unsigned integer at `off`, or None when it lies outside `data`."""
    if off < 0 or off + width > len(data):
        return None
    return int(struct.unpack_from(endian + _FMT[width], data, off)[0])


class _Fields:
    """Collects fields that lie inside the file (a field past EOF cannot be written)."""

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data
        self.out: list[Field] = []

    def add(self, off: int, width: int, name: str, endian: str = "<") -> int | None:
        value = read_int(self.data, off, width, endian)
        if value is not None:
            self.out.append(Field(off, width, name, endian))
        return value


def elf_fields(data: bytes | bytearray) -> list[Field]:
    """ELF header, program header, section header, note and symbol fields (32/64, LE/BE)."""
    f = _Fields(data)
    if len(data) < 16:
        return f.out
    wide = data[4] == 2
    e = ">" if data[5] == 2 else "<"
    a = 8 if wide else 4
    h = (24, 24 + a, 24 + 2 * a, 24 + 3 * a)  # e_entry, e_phoff, e_shoff, e_flags
    f.add(16, 2, "e_type", e)
    f.add(h[0], a, "e_entry", e)
    phoff = f.add(h[1], a, "e_phoff", e)
    shoff = f.add(h[2], a, "e_shoff", e)
    names = ("e_ehsize", "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx")
    vals = [f.add(h[3] + 4 + 2 * i, 2, n, e) for i, n in enumerate(names)]
    phnum, shnum = vals[2] or 0, vals[4] or 0
    ph = (0, 8, 32, 40, 56) if wide else (0, 4, 16, 20, 32)  # type, offset, filesz, memsz, size
    for i in range(min(phnum, 64)):
        base = (phoff or 0) + i * ph[4]
        f.add(base + ph[0], 4, f"phdr[{i}].p_type", e)
        f.add(base + ph[1], a, f"phdr[{i}].p_offset", e)
        f.add(base + ph[2], a, f"phdr[{i}].p_filesz", e)
        f.add(base + ph[3], a, f"phdr[{i}].p_memsz", e)
    sh = (24, 32, 40, 56, 64) if wide else (16, 20, 24, 36, 40)  # offset, size, link, entsize
    for i in range(min(shnum, 256)):
        base = (shoff or 0) + i * sh[4]
        f.add(base, 4, f"shdr[{i}].sh_name", e)
        kind = f.add(base + 4, 4, f"shdr[{i}].sh_type", e)
        off = f.add(base + sh[0], a, f"shdr[{i}].sh_offset", e)
        size = f.add(base + sh[1], a, f"shdr[{i}].sh_size", e)
        f.add(base + sh[2], 4, f"shdr[{i}].sh_link", e)
        f.add(base + sh[3], a, f"shdr[{i}].sh_entsize", e)
        if kind == 7 and off is not None:  # SHT_NOTE: namesz, descsz of the first note
            f.add(off, 4, f"shdr[{i}].note.namesz", e)
            f.add(off + 4, 4, f"shdr[{i}].note.descsz", e)
        if kind in (2, 11) and off is not None and size:  # SYMTAB, DYNSYM: a few symbols
            step = 24 if wide else 16
            for j in range(1, min(size // step, 4)):
                f.add(off + j * step, 4, f"shdr[{i}].sym[{j}].st_name", e)
                f.add(off + j * step + (6 if wide else 14), 2, f"shdr[{i}].sym[{j}].st_shndx", e)
                f.add(off + j * step + (16 if wide else 8), a, f"shdr[{i}].sym[{j}].st_size", e)
    return f.out


PE_DIRECTORIES = ("EXPORT", "IMPORT", "RESOURCE", "EXCEPTION", "SECURITY", "BASERELOC", "DEBUG",
                  "ARCHITECTURE", "GLOBALPTR", "TLS", "LOAD_CONFIG", "BOUND_IMPORT", "IAT",
                  "DELAY_IMPORT", "CLR", "RESERVED")  # fmt: skip


@dataclass(frozen=True)
class PeView:
    """Offsets of a PE file's main structures (read by hand, bounds-checked by the caller)."""

    lfanew: int
    opt: int
    plus: bool
    sections: tuple[tuple[int, int, int, int, int], ...]  # header, va, vsize, raw ptr, raw size
    directories: tuple[tuple[int, int, int], ...]  # entry offset, rva, size

    def to_offset(self, rva: int) -> int | None:
        """File offset of `rva`, or None when no section holds it."""
        for _, va, vsize, ptr, raw in self.sections:
            if va <= rva < va + max(vsize, raw):
                return ptr + rva - va
        return None


def pe_view(data: bytes | bytearray) -> PeView | None:
    """The PE structures of `data`, or None when it is not a readable PE file."""
    lfanew = read_int(data, 0x3C, 4)
    if data[:2] != b"MZ" or lfanew is None or data[lfanew : lfanew + 4] != b"PE\0\0":
        return None
    nsect, optsize = read_int(data, lfanew + 6, 2), read_int(data, lfanew + 20, 2)
    opt = lfanew + 24
    magic = read_int(data, opt, 2)
    if nsect is None or optsize is None or magic not in (0x10B, 0x20B):
        return None
    plus = magic == 0x20B
    count = read_int(data, opt + (108 if plus else 92), 4) or 0
    first = opt + (112 if plus else 96)
    dirs = []
    for i in range(min(count, 16)):
        rva, size = read_int(data, first + 8 * i, 4), read_int(data, first + 8 * i + 4, 4)
        if rva is None or size is None:
            break
        dirs.append((first + 8 * i, rva, size))
    secs = []
    for i in range(min(nsect, 96)):
        hdr = opt + optsize + 40 * i
        vals = [read_int(data, hdr + k, 4) for k in (12, 8, 20, 16)]
        if any(v is None for v in vals):
            break
        va, vsize, ptr, raw = (int(v or 0) for v in vals)
        secs.append((hdr, va, vsize, ptr, raw))
    return PeView(lfanew, opt, plus, tuple(secs), tuple(dirs))


def pe_fields(data: bytes | bytearray) -> list[Field]:
    """DOS, COFF, optional header, data directory, section, certificate and debug fields."""
    f = _Fields(data)
    f.add(0x3C, 4, "e_lfanew")
    view = pe_view(data)
    if view is None:
        return f.out
    coff = view.lfanew + 4
    for off, width, name in (
        (2, 2, "NumberOfSections"),
        (4, 4, "TimeDateStamp"),
        (8, 4, "PointerToSymbolTable"),
        (12, 4, "NumberOfSymbols"),
        (16, 2, "SizeOfOptionalHeader"),
        (18, 2, "Characteristics"),
    ):
        f.add(coff + off, width, f"coff.{name}")  # fmt: skip
    o, p = view.opt, view.plus
    for off, width, name in (
        (0, 2, "Magic"),
        (16, 4, "AddressOfEntryPoint"),
        (32, 4, "SectionAlignment"),
        (36, 4, "FileAlignment"),
        (56, 4, "SizeOfImage"),
        (60, 4, "SizeOfHeaders"),
        (64, 4, "CheckSum"),
        (108 if p else 92, 4, "NumberOfRvaAndSizes"),
    ):
        f.add(o + off, width, f"optional.{name}")  # fmt: skip
    for i, (entry, _, _) in enumerate(view.directories):
        f.add(entry, 4, f"dir[{PE_DIRECTORIES[i]}].rva")
        f.add(entry + 4, 4, f"dir[{PE_DIRECTORIES[i]}].size")
    for i, (hdr, *_rest) in enumerate(view.sections):
        for off, width, name in (
            (8, 4, "VirtualSize"),
            (12, 4, "VirtualAddress"),
            (16, 4, "SizeOfRawData"),
            (20, 4, "PointerToRawData"),
            (24, 4, "PointerToRelocations"),
            (32, 2, "NumberOfRelocations"),
            (36, 4, "Characteristics"),
        ):
            f.add(hdr + off, width, f"section[{i}].{name}")  # fmt: skip
    symtab, nsyms = read_int(data, coff + 8, 4), read_int(data, coff + 12, 4)
    if symtab and nsyms is not None:
        f.add(symtab + 18 * nsyms, 4, "coff.string_table.size")
    if len(view.directories) > 4 and view.directories[4][1]:
        cert = view.directories[4][1]  # a file offset, not an RVA
        f.add(cert, 4, "cert.dwLength")
        f.add(cert + 4, 2, "cert.wRevision")
        f.add(cert + 6, 2, "cert.wCertificateType")
    if len(view.directories) > 6 and view.directories[6][1]:
        debug = view.to_offset(view.directories[6][1])
        for i in range(min(view.directories[6][2] // 28, 8)) if debug is not None else ():
            for off, name in (
                (4, "TimeDateStamp"),
                (12, "Type"),
                (16, "SizeOfData"),
                (20, "AddressOfRawData"),
                (24, "PointerToRawData"),
            ):
                f.add(debug + 28 * i + off, 4, f"debug[{i}].{name}")  # fmt: skip
    return f.out


MACHO_THIN = {b"\xcf\xfa\xed\xfe": (True, "<"), b"\xce\xfa\xed\xfe": (False, "<"),
              b"\xfe\xed\xfa\xcf": (True, ">"), b"\xfe\xed\xfa\xce": (False, ">")}  # fmt: skip
FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")
LINKEDIT_DATA = {
    0x1D: "LC_CODE_SIGNATURE", 0x1E: "LC_SEGMENT_SPLIT_INFO", 0x26: "LC_FUNCTION_STARTS",
    0x29: "LC_DATA_IN_CODE", 0x80000033: "LC_DYLD_EXPORTS_TRIE",
    0x80000034: "LC_DYLD_CHAINED_FIXUPS",
}  # fmt: skip


def macho_fields(  # noqa: PLR0912 - one branch per load command kind
    data: bytes | bytearray, base: int = 0, tag: str = "macho"
) -> list[Field]:
    """Mach-O header, load command, segment, section, symtab and code-signature fields."""
    f = _Fields(data)
    kind = MACHO_THIN.get(bytes(data[base : base + 4]))
    if kind is None:
        return f.out
    wide, e = kind
    ncmds = f.add(base + 16, 4, f"{tag}.ncmds", e) or 0
    f.add(base + 20, 4, f"{tag}.sizeofcmds", e)
    cur = base + (32 if wide else 28)
    for i in range(min(ncmds, 128)):
        cmd = f.add(cur, 4, f"{tag}.lc[{i}].cmd", e)
        size = f.add(cur + 4, 4, f"{tag}.lc[{i}].cmdsize", e)
        if cmd is None or not size:
            break
        name = f"{tag}.lc[{i}]"
        if cmd in (0x19, 0x1):  # LC_SEGMENT_64, LC_SEGMENT
            a = 8 if cmd == 0x19 else 4
            f.add(cur + 24 + 2 * a, a, f"{name}.fileoff", e)
            f.add(cur + 24 + 3 * a, a, f"{name}.filesize", e)
            nsects = f.add(cur + 32 + 4 * a, 4, f"{name}.nsects", e) or 0
            step, first = (80, 72) if a == 8 else (68, 56)
            for j in range(min(nsects, 32)):
                sect = cur + first + step * j
                f.add(sect + 32 + a, a, f"{name}.sect[{j}].size", e)
                f.add(sect + 32 + 2 * a, 4, f"{name}.sect[{j}].offset", e)
                f.add(sect + 40 + 2 * a, 4, f"{name}.sect[{j}].reloff", e)
                f.add(sect + 44 + 2 * a, 4, f"{name}.sect[{j}].nreloc", e)
        elif cmd == 0x2:  # LC_SYMTAB
            for k, n in enumerate(("symoff", "nsyms", "stroff", "strsize")):
                f.add(cur + 8 + 4 * k, 4, f"{name}.{n}", e)
        elif cmd == 0xB:  # LC_DYSYMTAB
            for k in range(18):
                f.add(cur + 8 + 4 * k, 4, f"{name}.dysymtab[{k}]", e)
        elif cmd in LINKEDIT_DATA:
            off = f.add(cur + 8, 4, f"{name}.dataoff", e)
            f.add(cur + 12, 4, f"{name}.datasize", e)
            if cmd == 0x1D and off is not None:
                _codesig_fields(f, base + off, f"{tag}.code_signature")
        elif cmd in (0x22, 0x80000022):  # LC_DYLD_INFO(_ONLY)
            for k in range(10):
                f.add(cur + 8 + 4 * k, 4, f"{name}.dyld_info[{k}]", e)
        elif cmd == 0x80000028:  # LC_MAIN
            f.add(cur + 8, 8, f"{name}.entryoff", e)
        cur += size
    return f.out


def _codesig_fields(f: _Fields, sb: int, name: str) -> None:
    """SuperBlob (big-endian) index and each blob's header; CodeDirectory fields."""
    f.add(sb + 4, 4, f"{name}.length", ">")
    count = f.add(sb + 8, 4, f"{name}.count", ">") or 0
    for i in range(min(count, 16)):
        f.add(sb + 12 + 8 * i, 4, f"{name}.index[{i}].type", ">")
        off = f.add(sb + 16 + 8 * i, 4, f"{name}.index[{i}].offset", ">")
        if off is None:
            continue
        blob = sb + off
        magic = f.add(blob, 4, f"{name}.blob[{i}].magic", ">")
        f.add(blob + 4, 4, f"{name}.blob[{i}].length", ">")
        if magic == 0xFADE0C02:  # CodeDirectory
            for k, n in (
                (8, "version"),
                (16, "hashOffset"),
                (20, "identOffset"),
                (24, "nSpecialSlots"),
                (28, "nCodeSlots"),
                (32, "codeLimit"),
            ):
                f.add(blob + k, 4, f"{name}.cd.{n}", ">")  # fmt: skip
            for k, n in ((36, "hashSize"), (37, "hashType"), (39, "pageSize")):
                f.add(blob + k, 1, f"{name}.cd.{n}", ">")


def fat_fields(data: bytes | bytearray) -> list[Field]:
    """Fat header and arch entries, then each slice's own Mach-O fields."""
    f = _Fields(data)
    wide = bytes(data[:4]) == FAT_MAGICS[1]
    narch = f.add(4, 4, "fat.nfat_arch", ">") or 0
    step = 32 if wide else 20
    a = 8 if wide else 4
    out = f.out
    for i in range(min(narch, 16)):
        entry = 8 + step * i
        f.add(entry, 4, f"fat.arch[{i}].cputype", ">")
        off = f.add(entry + 8, a, f"fat.arch[{i}].offset", ">")
        f.add(entry + 8 + a, a, f"fat.arch[{i}].size", ">")
        f.add(entry + 8 + 2 * a, 4, f"fat.arch[{i}].align", ">")
        if off is not None and off < len(data):
            out = out + macho_fields(data, off, f"macho[{i}]")
    return out


def fields(data: bytes | bytearray) -> list[Field]:
    """The structure fields of `data` by its magic (empty for an unknown format)."""
    head = bytes(data[:4])
    if head == b"\x7fELF":
        return elf_fields(data)
    if head[:2] == b"MZ":
        return pe_fields(data)
    if head in MACHO_THIN:
        return macho_fields(data)
    if head in FAT_MAGICS:
        return fat_fields(data)
    return []


def extreme(width: int, old: int, size: int, rng: random.Random) -> int:
    """An interesting value for a field: 0, all ones, sign edges, EOF edges, off by one."""
    top = (1 << (8 * width)) - 1
    choices = [0, 1, top, top >> 1, (top >> 1) + 1, size, size + 1, size - 1, size * 2,
               size - rng.randrange(1, 65), old + 1, old - 1, old * 2, old + size,
               0x7FFFFFFF, 0x80000000, 0xFFFF, 0x100, rng.randrange(top + 1)]  # fmt: skip
    return rng.choice(choices) & top


def der_nodes(
    data: bytes | bytearray, start: int, end: int, depth: int = 0
) -> list[tuple[int, int]]:
    """(tag offset, header length) of every DER node in data[start:end], depth-first, bounded."""
    nodes: list[tuple[int, int]] = []
    pos = start
    while pos + 2 <= end and depth < 12 and len(nodes) < 4096:
        tag, first = data[pos], data[pos + 1]
        hlen, length = 2, first
        if first & 0x80:
            k = first & 0x7F
            if k == 0 or k > 4 or pos + 2 + k > end:
                break
            length = int.from_bytes(data[pos + 2 : pos + 2 + k], "big")
            hlen = 2 + k
        if pos + hlen + length > end:
            break
        nodes.append((pos, hlen))
        if tag & 0x20:  # constructed: descend
            nodes += der_nodes(data, pos + hlen, pos + hlen + length, depth + 1)
        pos += hlen + length
    return nodes


def der_write(data: bytearray, rng: random.Random) -> str | None:
    """Rewrite one DER tag or length inside the PE certificate table; None if there is none."""
    view = pe_view(data)
    if view is None or len(view.directories) <= 4 or not view.directories[4][1]:
        return None
    _, off, size = view.directories[4]
    nodes = der_nodes(data, off + 8, min(off + size, len(data)))
    if not nodes:
        return None
    pos, hlen = rng.choice(nodes)
    roll = rng.random()
    if roll < 0.25:
        data[pos] = rng.choice([0x30, 0x31, 0x02, 0x04, 0x05, 0x06, 0xA0, 0xA3, 0x80, 0xFF])
        return f"der tag @0x{pos:x} = 0x{data[pos]:02x}"
    k = hlen - 2
    if k == 0:
        data[pos + 1] = rng.choice([0x00, 0x7F, 0x80, 0x81, 0x84, 0xFF, data[pos + 1] ^ 1])
    else:
        top = (1 << (8 * k)) - 1
        old = int.from_bytes(data[pos + 2 : pos + 2 + k], "big")
        value = rng.choice([0, top, old + 1, old - 1, old * 2, len(data)]) & top
        data[pos + 2 : pos + 2 + k] = value.to_bytes(k, "big")
    return f"der length @0x{pos:x}"


def _field_write(data: bytearray, rng: random.Random, others: Sequence[bytes]) -> str:
    found = fields(data)
    if not found:
        return _flip(data, rng, others)
    notes = []
    for field in rng.sample(found, min(len(found), rng.choice([1, 1, 1, 2, 3]))):
        old = read_int(data, field.offset, field.width, field.endian) or 0
        value = extreme(field.width, old, len(data), rng)
        struct.pack_into(field.endian + _FMT[field.width], data, field.offset, value)
        notes.append(f"{field.name}=0x{value:x}")
    return "field " + ",".join(notes)


def _flip(data: bytearray, rng: random.Random, _others: Sequence[bytes]) -> str:
    if not data:
        return "flip (empty)"
    # half the time near the headers, where parsers branch most
    span = len(data) if rng.random() < 0.5 else min(len(data), 4096)
    hits = [rng.randrange(span) for _ in range(rng.randint(1, 16))]
    for pos in hits:
        data[pos] ^= 1 << rng.randrange(8)
    return f"flip {len(hits)} bits"


def _bytes(data: bytearray, rng: random.Random, _others: Sequence[bytes]) -> str:
    if not data:
        return "bytes (empty)"
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01, 0x41])
    return "interesting bytes"


def _truncate(data: bytearray, rng: random.Random, _others: Sequence[bytes]) -> str:
    cuts = [0, 1, 2, 4, 63, 64, 0x40, 0x100, 0x200, 0x400, len(data) - 1, len(data) - 8]
    found = fields(data)
    cuts += [f.offset + rng.randrange(f.width) for f in rng.sample(found, min(2, len(found)))]
    new = rng.choice(cuts) if rng.random() < 0.5 else rng.randrange(max(len(data), 1))
    del data[max(0, min(new, len(data))) :]
    return f"truncate to {len(data)}"


def _extend(data: bytearray, rng: random.Random, _others: Sequence[bytes]) -> str:
    n = rng.choice([1, 7, 8, 512, 4096, rng.randrange(1, 20000)])
    tail = bytes(n) if rng.random() < 0.5 else rng.randbytes(n)
    data += tail
    return f"append {n} bytes"


def _chunk(data: bytearray, rng: random.Random, _others: Sequence[bytes]) -> str:
    if len(data) < 4:
        return _extend(data, rng, _others)
    a, n = rng.randrange(len(data)), rng.randint(1, min(4096, len(data)))
    chunk = bytes(data[a : a + n])
    b = rng.randrange(len(data))
    roll = rng.random()
    if roll < 0.33:
        del data[a : a + n]
        return f"delete {n} @0x{a:x}"
    if roll < 0.66:
        data[b:b] = chunk
        return f"insert copy of {n} @0x{b:x}"
    data[b : b + len(chunk)] = chunk
    return f"overwrite {n} @0x{b:x}"


def _splice(data: bytearray, rng: random.Random, others: Sequence[bytes]) -> str:
    if not others:
        return _chunk(data, rng, others)
    other = rng.choice(others)
    cut = rng.randrange(len(data) + 1)
    at = cut if rng.random() < 0.5 else rng.randrange(len(other) + 1)
    data[cut:] = other[at:]
    return f"splice @0x{cut:x} from other @0x{at:x}"


def _der(data: bytearray, rng: random.Random, others: Sequence[bytes]) -> str:
    return der_write(data, rng) or _field_write(data, rng, others)


Mutator = Callable[[bytearray, random.Random, Sequence[bytes]], str]
MUTATORS: dict[str, tuple[Mutator, int]] = {
    "field": (_field_write, 40), "flip": (_flip, 14), "bytes": (_bytes, 8),
    "truncate": (_truncate, 10), "extend": (_extend, 4), "chunk": (_chunk, 6),
    "splice": (_splice, 8), "der": (_der, 10),
}  # fmt: skip


def mutate(
    data: bytes, rng: random.Random, others: Sequence[bytes] = (), *, rounds: int | None = None
) -> tuple[bytes, list[str]]:
    """Apply 1-3 weighted mutators to `data`; return the mutant and what each did."""
    out = bytearray(data)
    names = list(MUTATORS)
    weights = [MUTATORS[n][1] for n in names]
    steps = []
    for _ in range(rounds or rng.choice([1, 1, 1, 2, 3])):
        name = rng.choices(names, weights)[0]
        steps.append(f"{name}: {MUTATORS[name][0](out, rng, others)}")
    return bytes(out), steps
