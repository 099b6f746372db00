"""The fuzzer's independent oracle: which bytes of a file each policy rule may allow.

Owns: reading, by hand from the format specs and without reprover or LIEF, the byte ranges of
a PE, ELF or Mach-O file that the allow rules (README "Policy") name: time stamps, checksum,
CodeView/REPRO records, Rich header, build-id, LC_UUID, N_OSO entries, debug sections, and the
signature areas. When reprover passes a mutant whose bytes differ from the original, the
fuzzer asks this oracle whether every changed byte lies in such a range; if not, the pass is
unjustified. The oracle is deliberately narrower than the ledger: a pass it cannot justify is
flagged for a person to review, never silently accepted.
Also owns `judge`: the invariants every command outcome must keep, and `ledger_violations`:
the exact-ledger properties of a `diff --format json` report, checked against the two files'
bytes (same size: the listed bytes are exactly the differing bytes; always: no two listed runs
overlap, every run lies in the released file, a size change shows as an `only in` row).
Does not own: mutating files (`fuzz_support`) or running reprover (`fuzz_runner`).
"""

from __future__ import annotations

import itertools
import json

from fuzz_runner import Outcome
from fuzz_support import FAT_MAGICS, MACHO_THIN, pe_view, read_int

Range = tuple[int, int, str]  # start, end, rule


def allowed_ranges(data: bytes) -> list[Range]:
    """Every byte range of `data` that some allow rule covers (possibly overlapping)."""
    head = data[:4]
    if head[:2] == b"MZ":
        return _pe(data)
    if head == b"\x7fELF":
        return _elf(data)
    if head in MACHO_THIN:
        return _macho(data, 0, len(data))
    if head == FAT_MAGICS[0]:  # 32-bit fat header (what llvm-lipo writes)
        out: list[Range] = []
        for i in range(min(read_int(data, 4, 4, ">") or 0, 16)):
            off, size = read_int(data, 16 + 20 * i, 4, ">"), read_int(data, 20 + 20 * i, 4, ">")
            if off is not None and size is not None:
                out += _macho(data, off, min(off + size, len(data)))
        return out
    return []


def changed(a: bytes, b: bytes) -> list[tuple[int, int]]:
    """Differing runs [start, end) of two byte strings; a length change is a run at the end."""
    runs: list[tuple[int, int]] = []
    start = None
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            if start is None:
                start = i
        elif start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, min(len(a), len(b))))
    if len(a) != len(b):
        runs.append((min(len(a), len(b)), max(len(a), len(b))))
    return runs


def unexplained(original: bytes, mutant: bytes) -> list[tuple[int, int]]:
    """The changed runs of `mutant` that no allowed range of `original` covers."""
    ranges = allowed_ranges(original)
    left = []
    for start, end in changed(original, mutant):
        pos = start
        while pos < end:
            cover = max((r[1] for r in ranges if r[0] <= pos < r[1]), default=None)
            if cover is None:
                left.append((pos, end))
                break
            pos = cover
    return left


def _pe(data: bytes) -> list[Range]:  # noqa: PLR0912 - one branch per allowed structure
    view = pe_view(data)
    if view is None:
        return []
    out: list[Range] = [
        (view.lfanew + 8, view.lfanew + 12, "pe.timestamp"),
        (view.opt + 64, view.opt + 68, "pe.checksum"),
    ]
    rich = data.find(b"Rich", 0x40, view.lfanew)
    if rich > 0:
        out.append((0x80, rich + 8, "pe.rich"))
    dirs = view.directories
    if len(dirs) > 4:
        entry, off, size = dirs[4]
        out += [(entry, entry + 8, "signature"), (off, off + size, "signature")]
    for index, stamp in ((0, 4), (2, 4), (10, 4)):  # export, resource, load config
        if len(dirs) > index and dirs[index][1]:
            at = view.to_offset(dirs[index][1])
            if at is not None:
                out.append((at + stamp, at + stamp + 4, "pe.timestamp"))
    if len(dirs) > 6 and dirs[6][1]:
        debug = view.to_offset(dirs[6][1])
        for i in range(min(dirs[6][2] // 28, 16)) if debug is not None else ():
            entry = debug + 28 * i
            out.append((entry + 4, entry + 8, "pe.timestamp"))
            kind, size = read_int(data, entry + 12, 4), read_int(data, entry + 16, 4) or 0
            ptr = read_int(data, entry + 24, 4) or 0
            if kind == 2 and data[ptr : ptr + 4] == b"RSDS":
                out.append((ptr + 4, ptr + size, "pe.debug.codeview"))
            elif kind == 16:
                out.append((ptr, ptr + size, "pe.debug.repro"))
            elif ptr:
                out.append((ptr, ptr + size, "debug-info"))
    symtab, nsyms = read_int(data, view.lfanew + 12, 4), read_int(data, view.lfanew + 16, 4)
    strings = (symtab or 0) + 18 * (nsyms or 0)
    for hdr, _, _, ptr, raw in view.sections:
        name = data[hdr : hdr + 8].rstrip(b"\0")
        if name.startswith(b"/") and name[1:].isdigit() and symtab:
            at = strings + int(name[1:])
            name = data[at : data.find(b"\0", at)]
        if name.startswith((b".debug_", b".zdebug_")):
            out.append((ptr, ptr + raw, "debug-info"))
    return out


def _elf(data: bytes) -> list[Range]:
    if len(data) < 64 or data[4] != 2 or data[5] != 1:
        return []  # the fixtures are ELF64 little-endian; anything else is not justified
    shoff, shnum, shstrndx = read_int(data, 40, 8), read_int(data, 60, 2), read_int(data, 62, 2)
    if not shoff or not shnum or shstrndx is None:
        return []
    heads = []
    for i in range(shnum):
        h = shoff + 64 * i
        vals = [read_int(data, h + k, w) for k, w in ((0, 4), (4, 4), (24, 8), (32, 8))]
        if any(v is None for v in vals):
            return []
        heads.append(tuple(int(v or 0) for v in vals))
    if shstrndx >= len(heads):
        return []
    strtab = heads[shstrndx][2]
    out: list[Range] = []
    for name_at, kind, off, size in heads:
        at = strtab + name_at
        name = data[at : data.find(b"\0", at)]
        if kind == 8:  # SHT_NOBITS holds no file bytes
            continue
        if name.startswith((b".debug_", b".zdebug_")):
            out.append((off, off + size, "debug-info"))
        if name == b".note.gnu.build-id":
            namesz, descsz = read_int(data, off, 4) or 0, read_int(data, off + 4, 4) or 0
            desc = off + 12 + (namesz + 3) // 4 * 4
            out.append((desc, desc + descsz, "elf.build-id"))
    return out


def _macho(data: bytes, base: int, end: int) -> list[Range]:
    kind = MACHO_THIN.get(data[base : base + 4])
    if kind is None or kind != (True, "<"):
        return []  # the fixtures are 64-bit little-endian
    out: list[Range] = []
    ncmds = read_int(data, base + 16, 4) or 0
    cur = base + 32
    for _ in range(min(ncmds, 256)):
        cmd, size = read_int(data, cur, 4), read_int(data, cur + 4, 4)
        if cmd is None or not size:
            break
        if cmd == 0x1B:  # LC_UUID
            out.append((cur + 8, cur + 24, "macho.uuid"))
        elif cmd == 0x1D:  # LC_CODE_SIGNATURE
            off, length = read_int(data, cur + 8, 4) or 0, read_int(data, cur + 12, 4) or 0
            out.append((base + off, min(base + off + length, end), "signature"))
        elif cmd == 0x19 and data[cur + 8 : cur + 16] == b"__DWARF\0":
            for j in range(min(read_int(data, cur + 64, 4) or 0, 64)):
                sect = cur + 72 + 80 * j
                size_, off = read_int(data, sect + 40, 8) or 0, read_int(data, sect + 48, 4) or 0
                out.append((base + off, base + off + size_, "debug-info"))
        elif cmd == 0x2:  # LC_SYMTAB: N_OSO entries, value (mtime) and path
            symoff, nsyms = read_int(data, cur + 8, 4) or 0, read_int(data, cur + 12, 4) or 0
            stroff = read_int(data, cur + 16, 4) or 0
            for k in range(min(nsyms, 1 << 16)):
                entry = base + symoff + 16 * k
                if read_int(data, entry + 4, 1) == 0x66:
                    out.append((entry + 8, entry + 16, "macho.oso"))
                    at = base + stroff + (read_int(data, entry, 4) or 0)
                    out.append((at, data.find(b"\0", at), "macho.oso"))
        cur += size
    return out


def signature_over(unsigned: bytes, signed: bytes) -> str | None:
    """Why `signed` may be `unsigned` plus some other signature, read by hand; or None.

    True when, outside its own CheckSum and security directory entry, `signed` is `unsigned`
    zero-padded up to a certificate table that ends at end of file: another signature over
    the same bytes (whether that signature is valid is the proof's job, not the oracle's).
    """
    view = pe_view(signed)
    if view is None or len(view.directories) <= 4:
        return None
    entry, off, size = view.directories[4]
    if off < len(unsigned) or off + size != len(signed) or off - len(unsigned) >= 8:
        return None
    body = bytearray(signed[:off])
    for at, width in ((view.opt + 64, 4), (entry, 8)):
        body[at : at + width] = unsigned[at : at + width]
    if bytes(body) != unsigned + bytes(off - len(unsigned)):
        return None
    return (
        f"the unsigned file plus another certificate table ({size} bytes at 0x{off:x}, "
        "ending at end of file)"
    )


def replaced_by_signing(original: bytes, mutant: bytes) -> str | None:
    """Why signing would erase the mutant's changes to a rebuilt file, or None.

    When the rebuilt (unsigned) file is the one changed and the signed file is not, a pass
    is justified only if the signer's output cannot depend on the change: trailing zero bytes
    that the PE signer's 8-byte padding re-creates, or (Mach-O) bytes inside the rebuilt's
    own code signature, which the released signature replaces (its length unchanged: bytes
    after it must make the proof fail, see macho_signature, fixed after a fuzzer finding).
    """
    if original[:2] == b"MZ":

        def padded(data: bytes) -> bytes:
            return data + bytes(-len(data) % 8)

        if padded(original) == padded(mutant):
            return "only trailing zero bytes that the signer's padding re-creates"
        return None
    if MACHO_THIN.get(original[:4]) == (True, "<"):
        sig = next((r for r in _macho(original, 0, len(original)) if r[2] == "signature"), None)
        if (
            sig is not None
            and len(mutant) == len(original)
            and original[: sig[0]] == mutant[: sig[0]]
        ):
            return (
                f"only bytes inside its own code signature (0x{sig[0]:x}), which the released "
                "signature replaces"
            )
    return None


def judge(  # noqa: PLR0911, PLR0912, PLR0917 - one flat list of invariants reads best
    name: str,
    outcome: Outcome,
    same: bool,
    baseline: int | None,
    original: bytes,
    mutant: bytes,
    *,
    rebuilt_side: bool = False,
    unsigned: bytes | None = None,
) -> tuple[list[str], str | None]:
    """Check one command's outcome against the invariants.

    `unsigned` is the file the mutant (a signed fixture's mutant) is checked against.
    `rebuilt_side` says the mutant was given as the rebuilt file (diff NEW, sign-check
    UNSIGNED) rather than as the released one.

    Returns:
        (violations, review): what broke, and a note when a changed mutant passed and the
        oracle can justify every changed byte (legitimate, but worth a look).
    """  # fmt: skip
    bad = []
    if outcome.timed_out:
        bad.append(f"{name}: no result within {outcome.seconds:.1f} s (killed)")
    elif outcome.signal is not None:
        bad.append(f"{name}: killed by signal {outcome.signal}")
    if "Traceback" in outcome.stderr:
        bad.append(f"{name}: traceback on stderr")
    if "Warning:" in outcome.stderr:
        bad.append(f"{name}: stray warning on stderr: {_line(outcome.stderr, 'Warning:')}")
    if "internal error" in outcome.stderr:
        bad.append(f"{name}: internal error: {_line(outcome.stderr, 'internal error')}")
    code = outcome.code
    kinds = {_kind(mutant), _kind(original)}
    if code == 2 and name.startswith("sign-check") and (len(kinds) > 1 or "other" in kinds):
        return bad, None  # sign-check: a file that is not PE or Mach-O is bad input
    if code is not None and code not in (0, 1, 3):
        bad.append(f"{name}: exit {code} for a readable file: {_line(outcome.stderr, '')}")
    if code != 0:
        return bad, None
    if same:
        if baseline != 0:
            bad.append(f"{name}: exit 0 on the unchanged input whose baseline is {baseline}")
        return bad, None
    if name == "diff":
        bad.append(f"{name}: exit 0 although the bytes differ (strict diff)")
        return bad, None
    left = unexplained(original, mutant)
    if not left:
        return bad, f"{name}: passed a mutant changed only in allowed ranges"
    if unsigned is not None and not rebuilt_side:
        why = signature_over(unsigned, mutant)
        if why:
            return bad, f"{name}: passed a mutated signed file: {why}"
    if rebuilt_side and baseline == 0:
        why = replaced_by_signing(original, mutant)
        if why:
            return bad, f"{name}: passed a mutated rebuilt file: {why}"
    where = ", ".join(f"0x{a:x}-0x{b:x}" for a, b in left[:4])
    bad.append(f"{name}: exit 0 with changed bytes no allow rule covers: {where}")
    return bad, None


def _kind(data: bytes) -> str:
    """What sign-check takes a file for (its exit is 2 for anything but PE and Mach-O)."""
    if data[:2] == b"MZ":
        return "pe"
    return "macho" if data[:4] in MACHO_THIN or data[:4] in FAT_MAGICS else "other"


def ledger_violations(released: bytes, rebuilt: bytes, report: str) -> list[str]:
    """What the ledger of a `diff --format json` report gets wrong about these two files.

    A report too large for the runner's capture (not JSON) is not judged.
    """
    try:
        artifacts = json.loads(report)["artifacts"]
    except (ValueError, KeyError, TypeError):
        return []
    bad: list[str] = []
    for artifact in artifacts:
        rows = artifact.get("differences") or []
        listed = sorted((d["offset"], d["length"]) for d in rows if d["length"])
        for (o1, n1), (o2, _) in itertools.pairwise(listed):
            if o1 + n1 > o2:
                bad.append(f"ledger: runs at 0x{o1:x} and 0x{o2:x} overlap")
        if listed and listed[-1][0] + listed[-1][1] > len(released):
            bad.append("ledger: a run lies past the end of the released file")
        if not rows:
            continue
        bounded = any(str(n).startswith("ledger bounded:") for n in artifact.get("notes", []))
        if len(released) == len(rebuilt):
            covered = {i for o, n in listed for i in range(o, o + n)}
            differing = {i for i in range(len(released)) if released[i] != rebuilt[i]}
            if covered != differing and not (bounded and covered <= differing):
                extra = [hex(i) for i in sorted(covered - differing)[:4]]
                missing = [hex(i) for i in sorted(differing - covered)[:4]]
                bad.append(
                    "ledger: same-size pair, listed bytes are not the differing bytes "
                    f"(extra {extra}, missing {missing})"
                )
        elif not any("only in" in (d.get("detail") or "") for d in rows):
            bad.append("ledger: sizes differ but no row says what is only in one file")
    return bad


def _line(text: str, needle: str) -> str:
    return next((ln for ln in text.splitlines() if needle in ln), text[:200]).strip()[:300]
