"""Command-line front end: the only layer that parses arguments, prints, reads the
environment or exits.

Owns: the `reprover` command, its subcommands (one module each in this package) and the single
catch-all that turns an unexpected exception into exit 3.
Does not own: any verification logic; every subcommand calls the library and renders a `Report`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from reprover import __version__
from reprover.cli import (
    demo,
    diff,
    key,
    layout,
    log,
    rebuild,
    report,
    signcheck,
    verify,
    verify_attestation,
)
from reprover.cli.common import err, quiet_libraries
from reprover.errors import Error, ExitCode

COMMAND_MODULES = (
    verify,
    diff,
    demo,
    key,
    signcheck,
    verify_attestation,
    layout,
    rebuild,
    log,
    report,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
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
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run reprover with `argv` (default: `sys.argv[1:]`) and return the exit code."""
    parser = build_parser()
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
