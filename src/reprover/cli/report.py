"""`reprover report merge REPORT...`: join the JSON campaign reports of a CI matrix's shards.

Owns: reading the shard reports (`verify --shard K/N --format json`), refusing a missing or
doubled shard, and writing the merged campaign report in any format; its exit code is the
highest of the campaign's manifests, as if the campaign had run in one piece.
Does not own: the campaign report's shape or the merge rules (`reprover.campaign.model`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reprover.campaign import render as campaign_render
from reprover.campaign.model import from_json, merge
from reprover.cli.common import add_report_options, err
from reprover.errors import InputError
from reprover.fsutil import check_outputs, write_atomic

MAX_REPORT_BYTES = 64 << 20


def register(sub: Any) -> None:
    """Add the `report` command and its `merge` subcommand."""
    parser = sub.add_parser("report", help="work with reports: merge campaign shards")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    merge_parser = actions.add_parser(
        "merge",
        help="join the JSON campaign reports of 'verify --shard K/N' into one",
        description=(
            "Join the JSON campaign reports of every shard 1/N..N/N of one campaign into one "
            "campaign report. A missing or repeated shard is refused (exit 2). The exit code "
            "is the highest of all manifests' codes."
        ),
        epilog="exit codes: 0 verified, 1 a check said no, 2 bad input, 3 inconclusive",
    )
    merge_parser.add_argument(
        "reports", nargs="+", type=Path, metavar="REPORT", help="JSON campaign reports"
    )
    add_report_options(merge_parser)
    merge_parser.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    """Merge the shard reports and write the result.

    Raises:
        InputError: a report is unreadable, not a campaign report, or a shard is missing.
        InconclusiveError: an output cannot be written.
    """
    shards = []
    for path in args.reports:
        try:
            with path.open("rb") as stream:
                data = stream.read(MAX_REPORT_BYTES + 1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(data) > MAX_REPORT_BYTES:
            raise InputError(f"{path} is larger than {MAX_REPORT_BYTES >> 20} MiB")
        shards.append(from_json(data, origin=str(path)))
    merged = merge(shards, origins=[str(p) for p in args.reports])
    outputs = [(f"--report {fmt}=", path) for fmt, path in args.report]
    if args.output is not None:
        outputs.append(("-o", args.output))
    check_outputs(outputs, list(args.reports))  # regular files only, never over a shard
    for fmt, path in args.report:
        write_atomic(path, campaign_render.render(merged, fmt))
    data = campaign_render.render(merged, args.format)
    if args.output is not None:
        write_atomic(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if not args.quiet:
        err(f"reprover: merged campaign {merged.verdict} (exit {merged.exit_code})")
    return merged.exit_code
