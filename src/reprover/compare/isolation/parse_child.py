"""The parsing worker's body: recognize a format and build its region map with LIEF.

Owns: format detection by magic bytes, LIEF parser configuration (features the comparison does
not need are off: relocation parsing off defuses the PE relocation-wrap shape of LIEF issue
1362), and dispatch to `regions_elf`, `regions_pe`, `regions_macho`.
Also owns the fork server loop (`serve`, run as
`python -m reprover.compare.isolation.parse_child FD`) and
the child side of a request (set `RLIMIT_AS`/`RLIMIT_CPU`, parse or disassemble, reply in
JSON).
Does not own: deadlines, kills and reading replies (`worker`, in the parent).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import resource
import socket
import sys
import warnings
from pathlib import Path

import lief

from reprover.compare.regions import elf as regions_elf
from reprover.compare.regions import macho as regions_macho
from reprover.compare.regions import pe as regions_pe
from reprover.compare.regions.map import RegionBuilder, RegionMap

lief.logging.disable()
# LIEF's enums warn on stderr for values they do not name (a section type 0xffff): the raw
# value is what the region map uses, and the child's stderr is the user's terminal.
warnings.filterwarnings("ignore", message=r".* is not a valid ", category=RuntimeWarning)

MACHO_MAGICS = (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce")
FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")


def parse(path: str) -> RegionMap:
    """Return the region map of the file at `path`.

    Raises:
        ValueError: the file claims a format (by its magic) that LIEF cannot parse.
        OSError: the file cannot be read.
    """
    with Path(path).open("rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            return RegionBuilder("empty", 0).result()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _parse(path, view)


def _parse(path: str, data: mmap.mmap) -> RegionMap:
    magic = data[:4]
    if magic == b"\x7fELF":
        conf = lief.ELF.ParserConfig()
        conf.parse_relocations = False
        conf.parse_symbol_versions = False
        conf.parse_notes = False
        elf = lief.ELF.parse(path, conf)
        if elf is None:
            raise ValueError("claims to be ELF (magic 7f 45 4c 46) but LIEF cannot parse it")
        return regions_elf.build(data, elf).result()
    if magic[:2] == b"MZ":
        pconf = lief.PE.ParserConfig()
        pconf.parse_reloc = False
        pconf.parse_rsrc = False
        pconf.parse_signature = False
        pconf.parse_exceptions = False
        pconf.parse_arm64x_binary = False
        pconf.parse_imports = False
        pe = lief.PE.parse(path, pconf)
        if pe is None:
            raise ValueError("claims to be PE (starts with MZ) but LIEF cannot parse it")
        return regions_pe.build(data, pe).result()
    if magic in MACHO_MAGICS or magic in FAT_MAGICS:
        mconf = lief.MachO.ParserConfig()
        mconf.parse_dyld_bindings = False
        mconf.parse_dyld_rebases = False
        mconf.parse_dyld_exports = False
        fat = lief.MachO.parse(path, mconf)
        if fat is None or fat.size == 0:
            raise ValueError("claims to be Mach-O (by its magic) but LIEF cannot parse it")
        return regions_macho.build(data, fat).result()
    out = RegionBuilder("unknown", len(data))
    out.note("not a PE, ELF or Mach-O file: compared as bytes")
    return out.result()


def _child(request: dict[str, object], out_fd: int) -> int:
    """In the forked child: set limits, parse, write the JSON reply. Returns the exit status."""
    memory, cpu = int(str(request["memory"])), int(str(request["cpu"]))
    try:
        with Path("/proc/self/statm").open("rb") as statm:
            base = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        base = 512 << 20
    resource.setrlimit(resource.RLIMIT_AS, (base + memory, base + memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        if request.get("op") == "disassemble":
            from reprover.compare.isolation import disassemble  # noqa: PLC0415 - child only

            reply: dict[str, object] = disassemble.run(request)
        else:
            reply = parse(str(request["path"]))
    except MemoryError:
        reply = {"error": "parser exceeded its memory limit"}
    except Exception as exc:  # noqa: BLE001 - any parser failure is data for the report
        reply = {"error": f"parser failed: {type(exc).__name__}: {str(exc)[:200]}"}
    data = json.dumps(reply, separators=(",", ":")).encode()
    with os.fdopen(out_fd, "wb") as out:
        out.write(data)
    return 0


def serve(control_fd: int) -> None:
    """The fork server loop: one request (JSON + a pipe fd) at a time, until the parent leaves.

    For each request it answers `{"pid": N}`, forks a child that writes its reply to the pipe,
    waits for it, and answers `{"status": exit code or -signal}`.
    """
    with socket.socket(fileno=control_fd) as sock:
        _serve(sock)


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 1)
        except OSError:
            return
        if not msg or not fds:
            return
        request = json.loads(msg)
        if request.get("op") == "disassemble":
            # capstone is imported once, here, before the fork (no file content involved):
            # each child then skips its 0.2 s import; a failure is left to the child to report
            with contextlib.suppress(ImportError):
                from reprover.compare.isolation import disassemble  # noqa: F401, PLC0415
        pid = os.fork()
        if pid == 0:
            sock.close()
            code = 70
            try:
                code = _child(request, fds[0])
            finally:
                os._exit(code)
        os.close(fds[0])
        sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        sock.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
