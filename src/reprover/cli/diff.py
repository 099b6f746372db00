"""`reprover diff OLD NEW`: compare two files or two folders and explain every difference."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path
from typing import Any

from reprover import policy as policies
from reprover.cli.common import (
    add_report_options,
    add_trusted_option,
    check_report_outputs,
    emit_report,
    trusted_pins,
)
from reprover.compare import compare_artifact
from reprover.compare.ledger import DEFAULT_MAX_RUNS
from reprover.digest import hash_files
from reprover.errors import InputError
from reprover.fsutil import input_path, list_folder, refuse_member_separator
from reprover.model import ArtifactResult, ArtifactVerdict, CheckResult, Policy, Report


def register(sub: Any) -> None:
    """Add the `diff` subcommand."""
    parser = sub.add_parser(
        "diff",
        help="compare two files or folders byte for byte and label every difference",
        description=(
            "Compare OLD with NEW. Folders are compared file by file by relative path: a file "
            "only in OLD is 'missing', only in NEW 'unexpected', and either fails the run. "
            "Symlinks are followed only inside their folder; one pointing outside, dangling or "
            "looping, and any FIFO, device or socket, is bad input (exit 2). Exit 0 only when "
            "identical (or allowed by --allow)."
        ),
    )
    parser.add_argument("old", type=Path, help="the old (released) file or folder")
    parser.add_argument("new", type=Path, help="the new (rebuilt) file or folder")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="RULE",
        help="policy rule whose differences are allowed (repeatable): "
        + ", ".join(sorted(policies.RULES)),
    )
    add_trusted_option(parser)
    parser.add_argument(
        "--max-runs",
        type=_positive,
        default=DEFAULT_MAX_RUNS,
        metavar="N",
        help="list at most N differing runs per region and count the rest (default "
        f"{DEFAULT_MAX_RUNS})",
    )
    add_report_options(parser)
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    """Compare and emit the report.

    Raises:
        InputError: a path is missing, one is a file and the other a folder, or a file name
            holds `!` (the separator of archive members in reports).
    """
    old, new = args.old, args.new
    kinds = [
        stat.S_ISDIR(input_path(path, what=label).st_mode)
        for path, label in ((old, "OLD"), (new, "NEW"))
    ]
    if kinds[0] != kinds[1]:
        raise InputError(f"cannot compare {old} with {new}: one is a folder, the other is not")
    trusted = trusted_pins(args)
    policy = Policy(
        allow=policies.validate_rules(args.allow, where="--allow"), trusted_signers=trusted
    )
    check_report_outputs(args, [old, new, *trusted])
    if kinds[0]:
        olds, news = list_folder(old, what="OLD file"), list_folder(new, what="NEW file")
        for name in olds.keys() | news.keys():
            refuse_member_separator(name, what="file")
    else:
        refuse_member_separator(old.name, what="file")
        olds, news = {old.name: old}, {old.name: new}
    digests = hash_files([*olds.values(), *news.values()])
    results = []
    for name in sorted(olds.keys() | news.keys()):
        if name not in news:
            results.append(ArtifactResult(name, ArtifactVerdict.MISSING, digests[olds[name]], None))
        elif name not in olds:
            results.append(
                ArtifactResult(name, ArtifactVerdict.UNEXPECTED, None, digests[news[name]])
            )
        else:
            pair = (digests[olds[name]], digests[news[name]])
            results.extend(
                compare_artifact(
                    name,
                    olds[name],
                    news[name],
                    policy,
                    digests=pair,
                    judge=policies.judge,
                    max_runs=args.max_runs,
                )
            )
    report = Report(
        command="diff",
        artifacts=tuple(results),
        checks=_same_files([r for r in results if r.path in olds.keys() | news.keys()])
        if old.is_dir()
        else (),
        policy=policy,
        policy_sha256=policies.policy_digest(policy),
        strict=not args.allow,
        inputs=(str(old), str(new), *(x for pin in trusted for x in ("--trusted", str(pin)))),
    )
    return emit_report(report, args)


def _same_files(results: list[ArtifactResult]) -> tuple[CheckResult, ...]:
    """Both folders hold the same file names; a file on one side only fails the diff.

    Without this, `--allow` (which relaxes `strict`) would let a file only in NEW pass.
    """
    odd = [
        f"{r.path}: {r.verdict.value}"
        for r in results
        if r.verdict in (ArtifactVerdict.MISSING, ArtifactVerdict.UNEXPECTED)
    ]
    detail = "both folders hold the same files" if not odd else "the folders hold different files"
    return (CheckResult("same-files", not odd, detail, tuple(odd)),)
