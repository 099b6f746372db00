"""Options and output shared by every subcommand: formats, output files, verbosity."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from reprover.errors import ExitCode
from reprover.fsutil import check_outputs, regular_file, write_atomic
from reprover.model import Report, Verdict
from reprover.render import RENDERERS, render
from reprover.render.safe import visible

VERDICT_EXIT = {
    Verdict.PASS: ExitCode.OK,
    Verdict.FAIL: ExitCode.FAIL,
    Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}


def err(message: str) -> None:
    """Print one message to stderr (logs and summaries never go to stdout).

    Messages quote paths, names and findings from hostile inputs: every character that could
    drive the terminal or reorder text is shown as a visible escape (`reprover.render.safe`).
    """
    print(visible(message, keep_newlines=True), file=sys.stderr, flush=True)


def out(message: str) -> None:
    """Print one line of a command's result to stdout, made visible like `err`."""
    sys.stdout.buffer.write((visible(message, keep_newlines=True) + "\n").encode())
    sys.stdout.flush()


class _VisibleFormatter(logging.Formatter):
    """Library messages quote hostile inputs too (in-toto quotes link commands): escape them."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), keep_newlines=True)


# Each library's loudest level worth showing by default. in-toto warns on every step whose
# link records a command the layout does not expect: reprover's own link checks say what
# matters, so those lines only show with --verbose.
_LIBRARY_LEVELS = {
    "sigstore": logging.WARNING,
    "tuf": logging.WARNING,
    "in_toto": logging.ERROR,
    "securesystemslib": logging.ERROR,
}


def quiet_libraries(*, quiet: bool, verbose: bool) -> None:
    """Route the loggers of the libraries we call (sigstore, in-toto, TUF) through stderr.

    Their messages show as `reprover: <logger>: ...` lines, escaped like every other stderr
    line; `--quiet` silences them, `--verbose` adds their informational messages.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_VisibleFormatter("reprover: %(name)s: %(message)s"))
    for name, default in _LIBRARY_LEVELS.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.CRITICAL + 1 if quiet else logging.INFO if verbose else default)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add --verbose and --quiet."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks and detailed progress"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or summary on stderr"
    )


def add_trusted_option(parser: argparse.ArgumentParser) -> None:
    """Add --trusted, the pinned signers of `diff` and `sign-check` (one wording for both)."""
    parser.add_argument(
        "--trusted",
        action="append",
        type=Path,
        default=[],
        metavar="CERT.pem|KEY.asc",
        help="pinned CA or signer certificate (Authenticode, Mach-O CMS, JAR: every signer must "
        "chain to one) or OpenPGP public key (RPM: every signature must be made by one); "
        "repeatable",
    )


def trusted_pins(args: argparse.Namespace) -> tuple[Path, ...]:
    """The --trusted files, each checked to be a regular file before anything reads it.

    Raises:
        InputError: a pin is missing or not a regular file (a FIFO would block the read).
    """
    pins = tuple(args.trusted)
    for pin in pins:
        regular_file(pin, what="--trusted file")
    return pins


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Add --format, -o/--output, --timestamps and the common options."""
    parser.add_argument(
        "--format",
        choices=sorted(RENDERERS),
        default="text",
        help="report format (default: text)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the report to FILE atomically instead of stdout",
    )
    parser.add_argument(
        "--report",
        action="append",
        default=[],
        type=report_spec,
        metavar="FORMAT=PATH",
        help="also write the report in FORMAT to PATH, atomically (repeatable; formats: "
        f"{', '.join(sorted(RENDERERS))})",
    )
    parser.add_argument(
        "--timestamps",
        action="store_true",
        help="include the wall-clock time in the report (off by default: reports are reproducible)",
    )
    add_common_options(parser)


def report_spec(value: str) -> tuple[str, Path]:
    """Parse one `--report FORMAT=PATH` value.

    Raises:
        argparse.ArgumentTypeError: no `=`, an unknown format or an empty path (exit 2).
    """
    fmt, sep, path = value.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected FORMAT=PATH, got {value!r}")
    if fmt not in RENDERERS:
        raise argparse.ArgumentTypeError(
            f"unknown report format {fmt!r}; choose one of: {', '.join(sorted(RENDERERS))}"
        )
    return fmt, Path(path)


def stamp(report: Report, args: argparse.Namespace) -> Report:
    """Add the wall-clock time to `report` when --timestamps was given."""
    if not getattr(args, "timestamps", False):
        return report
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return replace(report, timestamp=now)


def report_outputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """Every file this run was asked to write: -o, each --report, --attest (what, path)."""
    outputs = [(f"--report {fmt}=", path) for fmt, path in getattr(args, "report", [])]
    if getattr(args, "output", None) is not None:
        outputs.append(("-o", args.output))
    if getattr(args, "attest", None) is not None:
        outputs.append(("--attest", args.attest))
    return outputs


def check_report_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Before any work: every output is a regular file (new or replaced), none is an input.

    Raises:
        InputError: an output is a device, folder, FIFO or socket, the same file as an input,
            or two outputs name the same file.
    """
    check_outputs(report_outputs(args), inputs)


def emit_report(report: Report, args: argparse.Namespace) -> int:
    """Write the report (stdout or -o FILE, and each --report FORMAT=PATH); return the exit code.

    Prints the one-line verdict on stderr unless --quiet or the report itself went to stderr.
    Call `check_report_outputs` first, before the run reads its inputs.

    Raises:
        InputError: an output is not a regular file (`reprover.fsutil.check_output`).
        InconclusiveError: an output file cannot be written.
    """
    report = stamp(report, args)
    data = render(report, args.format)
    extra = [(path, render(report, fmt)) for fmt, path in getattr(args, "report", [])]
    check_outputs(report_outputs(args))
    for path, extra_data in extra:
        write_atomic(path, extra_data)
    if args.output is not None:
        write_atomic(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    weak = report.build is not None and report.build.weak_isolation
    if weak and not args.quiet:
        err(
            "reprover: WEAK isolation accepted (--allow-weak-isolation): the build could see "
            "this machine"
        )
    if not args.quiet and (args.output is not None or args.format != "text" or extra):
        err(f"reprover: {report.verdict.value}" + (" (WEAK isolation)" if weak else ""))
    return int(VERDICT_EXIT[report.verdict])
