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


def main(argv: Sequence[str] | None = None) -> int:
    """Run reprover with `argv` (default: `sys.argv[1:]`) and return the exit code."""
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
