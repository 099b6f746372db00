"""`reprover verify [MANIFEST]`: rebuild from a pinned commit and compare with the release."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from reprover import manifest
from reprover.cli.attest import add_attest_options, prepare_attestation, write_attestation
from reprover.cli.campaign import add_campaign_options, cores, run_campaign, wants_campaign
from reprover.cli.common import add_report_options, check_report_outputs, emit_report, err
from reprover.cli.evidence import add_log_options, log_attestation, prepare_log
from reprover.cli.progress import ProgressDisplay
from reprover.errors import Error, ExitCode, InputError
from reprover.fsutil import regular_file
from reprover.model import Manifest, Report
from reprover.policy import policy_digest
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
        help="the reprover.toml to verify, or a folder holding one (default: "
        "./reprover.toml); several make a campaign",
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


def manifest_path(given: list[Path]) -> Path:
    """The manifest to verify: the one given, `reprover.toml` inside a given folder, or
    `./reprover.toml`.

    Raises:
        InputError: a folder holds no reprover.toml, or the manifest is not a regular file.
    """
    path = given[0] if given else Path("reprover.toml")
    if path.is_dir():
        inside = path / "reprover.toml"
        if not inside.exists():
            raise InputError(
                f"folder {path} holds no reprover.toml", hint="name the manifest file itself"
            )
        path = inside
    regular_file(path, what="manifest")  # a FIFO or device would block the read
    return path


def _inputs(spec: Manifest, args: argparse.Namespace) -> list[Path]:
    """Every file the run reads, so that no output can be written over one of them."""
    paths = [spec.path, spec.release, *spec.policy.trusted_signers]
    paths += [p for p in (spec.source.allowed_signers, spec.source.gpg_keyring) if p]
    if spec.intoto is not None:
        paths += [spec.intoto.layout, *spec.intoto.layout_keys, spec.intoto.links]
    if getattr(args, "attest_key", None) is not None:
        paths.append(args.attest_key)
    return paths


def _stopped(spec: Manifest, options: Options, inputs: tuple[str, ...], exc: Exception) -> Report:
    """The report of a run that stopped before deciding: inconclusive, with the reason."""
    if isinstance(exc, Error):
        reason, details = exc.message, exc.details
    else:
        reason, details = f"internal error: {type(exc).__name__}: {exc}", None
    return Report(
        command="verify",
        artifacts=(),
        manifest_sha256=spec.sha256,
        policy=spec.policy,
        policy_sha256=policy_digest(spec.policy),
        strict=options.strict,
        inputs=inputs,
        inconclusive_reason=reason,
        log_tail=details,
    )


def run(args: argparse.Namespace) -> int:
    """Run the verification and emit its report; an inconclusive run writes its reports too.

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
    path = manifest_path(args.manifest)
    spec = manifest.load(path)
    check_report_outputs(args, _inputs(spec, args))
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
    inputs = (str(path),)
    try:
        with ProgressDisplay(sys.stderr, quiet=args.quiet) as display:
            report = verify(path, options, display.message, events=display.event)
    except Exception as exc:
        if isinstance(exc, Error) and exc.exit_code is not ExitCode.INCONCLUSIVE:
            raise  # bad input (2) or a failed check (1): no report, the error says why
        emit_report(_stopped(spec, options, inputs, exc), args)
        if attestation is not None:
            err("reprover: the verification was inconclusive; no attestation written")
        raise
    report = replace(report, inputs=inputs)
    code = emit_report(report, args)
    if attestation is not None:
        data = write_attestation(attestation, report, path, quiet=args.quiet)
        if data is not None and log_plan is not None:
            log_attestation(log_plan, attestation.output, data, quiet=args.quiet)
    return code
