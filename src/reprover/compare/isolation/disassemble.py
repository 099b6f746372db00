"""The disassembling child's body: decode small windows of code with capstone.

Owns: turning one job (an instruction set, a window of each file, where the changed bytes lie)
into the instructions that overlap the changed bytes, before and after, as text
(`0x1139: mov edx, 0x7e6`). Runs only inside the limited child of `parse_child`; the parent
plans the windows (`reprover.compare.code`) and reads the JSON reply.

Why capstone and not LIEF: the PyPI build of LIEF 1.0 has no disassembler
(`Binary.disassemble` raises "Assembler/disassembler not available for this build"). capstone
decodes only the bytes it is handed (no file-format parsing), in "skipdata" mode, so bytes
that are not instructions become `.byte` lines and the sweep goes on.
Does not own: which differences are disassembled, bounds on their number, rendering.
"""

from __future__ import annotations

import os
from typing import Any

import capstone

MAX_WINDOW = 8192
MAX_SHOWN = 8
MODES = {
    "x86-64": (capstone.CS_ARCH_X86, capstone.CS_MODE_64),
    "x86": (capstone.CS_ARCH_X86, capstone.CS_MODE_32),
    "arm64": (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM),
    "arm": (capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM),
    "thumb": (capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB),
}


def run(request: dict[str, Any]) -> dict[str, object]:
    """Decode every job of `request` (files `released`, `rebuilt`; `jobs`, see `side`).

    Raises:
        OSError: a file cannot be read.
        KeyError, ValueError, TypeError: a malformed request.
    """
    out = []
    with (
        open(str(request["released"]), "rb") as fa,  # noqa: PTH123 - two fds for pread
        open(str(request["rebuilt"]), "rb") as fb,  # noqa: PTH123
    ):
        for job in request["jobs"]:
            arch = str(job["arch"])
            a = side(fa.fileno(), arch, job["a"])
            b = side(fb.fileno(), arch, job["b"])
            out.append([a, b])
    return {"results": out}


def side(fd: int, arch: str, where: list[int]) -> list[str]:
    """The instructions overlapping the changed bytes of one file.

    `where` is [sweep start, window end, changed start, changed end, address of sweep start],
    file offsets except the address. At most `MAX_SHOWN` lines; one more line says how many
    were left out.
    """
    start, end, lo, hi, address = (int(x) for x in where)
    end = min(end, start + MAX_WINDOW)
    data = os.pread(fd, max(end - start, 0), start)
    md = capstone.Cs(*MODES[arch])
    md.skipdata = True
    lines: list[str] = []
    extra = 0
    for insn_at, size, mnemonic, operands in md.disasm_lite(data, address):
        first = start + insn_at - address
        if first >= hi:
            break
        if first + size <= lo:
            continue
        if len(lines) >= MAX_SHOWN:
            extra += 1
            continue
        text = f"{mnemonic} {operands}".strip()
        lines.append(f"0x{insn_at:x}: {text}")
    if extra:
        lines.append(f"... {extra} more instructions")
    return lines
