"""`reprover verify M1.toml M2.toml ...`: a campaign, one task per manifest, on Dask.

Owns: the campaign options of `verify` (`--from`, `--jobs`, `--scheduler`, `--shard`,
`--reports-dir`, `--connect-timeout`), progress lines on stderr as tasks finish, writing each
manifest's reports, signing its attestation and appending it to the evidence log on this
machine (keys never leave it), and writing the campaign report.
Does not own: running the campaign (`reprover.campaign`) or one verification (`cli.verify`).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from reprover import campaign
from reprover.campaign import render as campaign_render
from reprover.campaign.model import CampaignReport, CampaignResult, parse_shard
from reprover.cli.attest import prepare_attestation, write_attestation
from reprover.cli.common import err, stamp
from reprover.cli.evidence import log_attestation, prepare_log
from reprover.errors import InputError
from reprover.fsutil import check_outputs, write_atomic
from reprover.model import Report
from reprover.render import render
from reprover.verify import Options

EXTENSIONS = {"json": "json", "text": "txt", "markdown": "md", "html": "html", "junit": "junit.xml"}


def add_campaign_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that turn `verify` into a campaign of many manifests."""
    group = parser.add_argument_group(
        "campaign (many manifests)",
        "with more than one manifest, --from, --scheduler, --shard or --reports-dir, each "
        "manifest is one task on a Dask cluster; the report is the campaign's summary",
    )
    group.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        metavar="FILE",
        help="read more manifest paths from FILE, one a line ('#' starts a comment)",
    )
    group.add_argument(
        "--jobs",
        type=_positive,
        metavar="N",
        help="cores to use: processes comparing one release's artifacts, or local Dask workers "
        "in a campaign (default: every core of this machine)",
    )
    group.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="send the tasks to this running Dask scheduler instead of a local cluster",
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up reaching --scheduler after this long (exit 3; default: 10)",
    )
    group.add_argument(
        "--stall-timeout",
        type=float,
        metavar="SECONDS",
        help="give up on the remaining tasks (exit 3) when none finished for this long "
        "(default: the longest [build] timeout plus 10 minutes)",
    )
    group.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="verify only every N-th manifest, starting at the K-th (for a CI matrix; join "
        "the shards' JSON reports with 'reprover report merge')",
    )
    group.add_argument(
        "--reports-dir",
        type=Path,
        metavar="DIR",
        help="write each manifest's own reports here: NAME.json, plus NAME.EXT for --format "
        "and each --report format",
    )


def wants_campaign(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for a campaign rather than one verification."""
    return bool(
        len(args.manifest) > 1 or args.from_file or args.scheduler or args.shard or args.reports_dir
    )


def cores(args: argparse.Namespace) -> int:
    """--jobs, or every core this process may run on."""
    if args.jobs:
        return int(args.jobs)
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def manifest_paths(args: argparse.Namespace) -> list[str]:
    """The campaign's manifests: the arguments, then --from's lines, each once.

    Raises:
        InputError: --from cannot be read, no manifest is named, or one is named twice.
    """
    paths = [str(p) for p in args.manifest]
    if args.from_file is not None:
        try:
            text = args.from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read --from {args.from_file}: {exc}") from exc
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        paths += [line for line in lines if line]
    if not paths:
        raise InputError("no manifest to verify", hint="name manifests or give --from FILE")
    seen: dict[str, str] = {}
    for path in paths:
        key = os.path.realpath(path)
        if key in seen:
            raise InputError(f"manifest {path} is named twice (also as {seen[key]})")
        seen[key] = path
    return paths


def run_campaign(args: argparse.Namespace) -> int:
    """Run the campaign and write every report; return the highest exit code.

    Raises:
        InputError: bad options (before anything runs).
        InconclusiveError: the scheduler cannot be reached, or a report cannot be written.
    """
    paths = manifest_paths(args)
    outputs = [(f"--report {fmt}=", path) for fmt, path in args.report]
    if args.output is not None:
        outputs.append(("-o", args.output))
    check_outputs(outputs, [Path(p) for p in paths])  # regular files, never over a manifest
    attest_dir = _attest_dir(args)
    plan = prepare_attestation(args) if attest_dir is not None else None
    log_plan = prepare_log(args, attesting=plan is not None)
    if args.reports_dir is not None:
        args.reports_dir.mkdir(parents=True, exist_ok=True)
    options = Options(
        strict=args.strict,
        allow_network=args.allow_network,
        build_path=None,
        keep_build=args.keep_build,
    )
    selected = len(campaign.select_shard(paths, args.shard))
    done: list[CampaignResult] = []
    names = campaign.report_names(paths)

    def on_result(result: CampaignResult, report: Report | None) -> None:
        done.append(result)
        if report is not None:
            _write_reports(args, names[result.index], report)
            if plan is not None and attest_dir is not None:
                target = attest_dir / f"{names[result.index]}.intoto.json"
                data = write_attestation(
                    replace(plan, output=target), report, Path(result.manifest), quiet=args.quiet
                )
                if data is not None and log_plan is not None:
                    log_attestation(log_plan, target, data, quiet=args.quiet)
        if not args.quiet:
            again = f", {result.attempts} attempts" if result.attempts > 1 else ""
            err(
                f"reprover: [{len(done)}/{selected}] {result.verdict} (exit {result.exit_code}) "
                f"{campaign_render.visible(result.manifest)} "
                f"[{campaign_render.visible(result.worker or '-')}, {result.seconds:.1f} s{again}]"
            )

    outcome = campaign.run(
        paths,
        options,
        scheduler=args.scheduler,
        jobs=cores(args),
        shard=args.shard,
        connect_timeout=args.connect_timeout,
        stall_timeout=args.stall_timeout,
        on_result=on_result,
    )
    report = outcome.report
    if args.timestamps:
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        report = replace(report, timestamp=now)
    _emit(args, report)
    return report.exit_code


def _write_reports(args: argparse.Namespace, name: str, report: Report) -> None:
    if args.reports_dir is None:
        return
    formats = dict.fromkeys(["json", args.format, *(fmt for fmt, _ in args.report)])
    report = stamp(report, args)
    for fmt in formats:
        write_atomic(args.reports_dir / f"{name}.{EXTENSIONS[fmt]}", render(report, fmt))


def _emit(args: argparse.Namespace, report: CampaignReport) -> None:
    extra = [(path, campaign_render.render(report, fmt)) for fmt, path in args.report]
    for path, data in extra:
        write_atomic(path, data)
    data = campaign_render.render(report, args.format)
    if args.output is not None:
        write_atomic(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if not args.quiet:
        for note in report.notes:
            err(f"reprover: note: {campaign_render.visible(note)}")
        err(f"reprover: campaign {report.verdict} (exit {report.exit_code})")


def _attest_dir(args: argparse.Namespace) -> Path | None:
    """In a campaign, --attest names a folder: one NAME.intoto.json per manifest.

    Raises:
        InputError: --attest is not an existing folder.
    """
    if args.attest is None:
        return None
    if not args.attest.is_dir():
        raise InputError(
            f"in a campaign --attest names a folder, and {args.attest} is not one",
            hint="create it; each manifest's attestation is written there as NAME.intoto.json",
        )
    return Path(args.attest)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return int(value)


def _shard(value: str) -> tuple[int, int]:
    try:
        return parse_shard(value)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
