"""Options and output shared by every subcommand: formats, output files, verbosity."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from reprover.errors import ExitCode
from reprover.fsutil import write_atomic
from reprover.model import Report, Verdict
from reprover.render import RENDERERS, render

VERDICT_EXIT = {
    Verdict.PASS: ExitCode.OK,
    Verdict.FAIL: ExitCode.FAIL,
    Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}


def err(message: str) -> None:
    """Print one message to stderr (logs and summaries never go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add --verbose and --quiet."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks and detailed progress"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or summary on stderr"
    )


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
        "--timestamps",
        action="store_true",
        help="include the wall-clock time in the report (off by default: reports are reproducible)",
    )
    add_common_options(parser)


def stamp(report: Report, args: argparse.Namespace) -> Report:
    """Add the wall-clock time to `report` when --timestamps was given."""
    if not getattr(args, "timestamps", False):
        return report
    from dataclasses import replace  # noqa: PLC0415 - only needed here

    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return replace(report, timestamp=now)


def emit_report(report: Report, args: argparse.Namespace) -> int:
    """Render and write the report (stdout or -o FILE), print a summary, return the exit code.

    Raises:
        InconclusiveError: the output file cannot be written.
    """
    report = stamp(report, args)
    data = render(report, args.format)
    if args.output is not None:
        write_atomic(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if not args.quiet and (args.output is not None or args.format != "text"):
        err(f"reprover: {report.verdict.value}")
    return int(VERDICT_EXIT[report.verdict])
