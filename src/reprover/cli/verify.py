"""`reprover verify [MANIFEST]`: rebuild from a pinned commit and compare with the release."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reprover.cli.attest import add_attest_options, prepare_attestation, write_attestation
from reprover.cli.campaign import add_campaign_options, cores, run_campaign, wants_campaign
from reprover.cli.common import add_report_options, emit_report
from reprover.cli.log import add_log_options, log_attestation, prepare_log
from reprover.cli.progress import ProgressDisplay
from reprover.errors import InputError
from reprover.verify import Options, verify


def register(sub: Any) -> None:
    """Add the `verify` subcommand."""
    parser = sub.add_parser(
        "verify",
        help="rebuild a release from its pinned source and compare it byte for byte",
        description=(
            "Clone the manifest's repository at its full commit, rebuild it hermetically, and "
            "compare every rebuilt artifact with the released one. Exit 0 only when every "
            "artifact is identical (or allowed by the policy) and every check passed."
        ),
    )
    parser.add_argument(
        "manifest",
        nargs="*",
        type=Path,
        help="the reprover.toml to verify (default: ./reprover.toml); several make a campaign",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="accept only byte-identical artifacts; an unexpected rebuilt file fails",
    )
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="build with network when isolation is unavailable (recorded in the report)",
    )
    parser.add_argument(
        "--allow-weak-isolation",
        action="store_true",
        help="build even where the strong sandbox (bubblewrap with namespaces) cannot run; "
        "the build can then see this machine, and the report and summary line say so",
    )
    parser.add_argument(
        "--build-path",
        type=Path,
        help="absolute path to build in (default: the manifest's [build] path, else "
        "/tmp/reprover-build); others must use the same path to repeat the build",
    )
    parser.add_argument(
        "--keep-build", action="store_true", help="keep the checkout and outputs after the run"
    )
    add_report_options(parser)
    add_attest_options(parser)
    add_log_options(parser)
    add_campaign_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the verification and emit its report.

    Raises:
        Error: any reprover error; the caller maps it to an exit code.
    """
    if wants_campaign(args):
        if args.build_path is not None:
            raise InputError(
                "--build-path applies to one manifest; in a campaign each manifest's "
                "[build] path is used"
            )
        return run_campaign(args)
    manifest = args.manifest[0] if args.manifest else Path("reprover.toml")
    options = Options(
        strict=args.strict,
        allow_network=args.allow_network,
        build_path=args.build_path.absolute() if args.build_path else None,
        keep_build=args.keep_build,
        jobs=cores(args),
        allow_weak_isolation=args.allow_weak_isolation,
    )
    attestation = prepare_attestation(args)
    log_plan = prepare_log(args, attesting=attestation is not None)
    with ProgressDisplay(sys.stderr, quiet=args.quiet) as display:
        report = verify(manifest, options, display.message, events=display.event)
    code = emit_report(report, args)
    if attestation is not None:
        data = write_attestation(attestation, report, manifest, quiet=args.quiet)
        if data is not None and log_plan is not None:
            log_attestation(log_plan, attestation.output, data, quiet=args.quiet)
    return code
