"""Command-line front end: the only layer that parses arguments, prints, reads the
environment or exits.

Owns: the `reprover` command, its subcommands (one module each in this package) and the single
catch-all that turns an unexpected exception into exit 3.
Does not own: any verification logic; every subcommand calls the library and renders a `Report`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from reprover import __version__
from reprover.cli.common import err, quiet_libraries
from reprover.errors import Error, ExitCode

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)

# Each subcommand's module, by the command it adds (in `--help` order). A run imports only its
# own command's module: the others import in-toto, sigstore, dask and cryptography, a third of
# a second of start-up that `diff` of two small files would otherwise pay every time.
COMMANDS = {
    "verify": "verify",
    "diff": "diff",
    "demo": "demo",
    "key": "key",
    "sign-check": "signcheck",
    "verify-attestation": "verify_attestation",
    "layout": "layout",
    "rebuild": "rebuild",
    "log": "log",
    "report": "report",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: for `argv` whose first word is a command, that command's alone
    (the same parser for that command, without importing the others); else every command."""
    parser = argparse.ArgumentParser(
        prog="reprover",
        description=(
            "Prove that released binaries are exactly what their source builds: rebuild from a "
            "pinned commit, compare byte for byte, explain every difference, and verify who did "
            "each supply-chain step."
        ),
        epilog="exit codes: 0 verified, 1 a check said no, 2 bad input, 3 inconclusive",
    )
    parser.add_argument("--version", action="version", version=f"reprover {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = [argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(f"reprover.cli.{COMMANDS[name]}").register(sub)
    return parser


def tune_allocator() -> None:
    """On glibc, keep freed blocks of up to 8 MiB in the heap for reuse (and up to 64 MiB of
    free heap unreturned) rather than mapping each new 1 MiB block afresh: archives and files
    are streamed in 1 MiB blocks, and faulting their pages in again cost a .deb pair's
    comparison 65,000 page faults and 0.2-0.3 s of system time. Elsewhere, nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415 - only here, once per process

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has it as a no-op)
        return
    mallopt(M_MMAP_THRESHOLD, 8 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)


def main(argv: Sequence[str] | None = None) -> int:
    """Run reprover with `argv` (default: `sys.argv[1:]`) and return the exit code."""
    tune_allocator()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else int(ExitCode.BAD_INPUT)
    verbose = bool(getattr(args, "verbose", False))
    quiet_libraries(quiet=bool(getattr(args, "quiet", False)), verbose=verbose)
    try:
        return int(args.run(args))
    except Error as exc:
        err(f"reprover: {exc.diagnostics()}")
        if verbose:
            traceback.print_exc(file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err("reprover: interrupted; nothing was written")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the single catch-all, by design
        err(f"reprover: internal error: {type(exc).__name__}: {exc}")
        if verbose:
            traceback.print_exc(file=sys.stderr)
        else:
            err("hint: run again with --verbose for the traceback, and report it")
        return int(ExitCode.INCONCLUSIVE)
