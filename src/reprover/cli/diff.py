"""`reprover diff OLD NEW`: compare two files or two folders and explain every difference."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reprover import policy as policies
from reprover.cli.common import add_report_options, emit_report
from reprover.compare import compare_files
from reprover.digest import hash_files
from reprover.errors import InputError
from reprover.model import ArtifactResult, ArtifactVerdict, Policy, Report


def register(sub: Any) -> None:
    """Add the `diff` subcommand."""
    parser = sub.add_parser(
        "diff",
        help="compare two files or folders byte for byte and label every difference",
        description=(
            "Compare OLD with NEW. Folders are compared file by file by relative path: a file "
            "only in OLD is 'missing', only in NEW 'unexpected'. Exit 0 only when identical."
        ),
    )
    parser.add_argument("old", type=Path, help="the old (released) file or folder")
    parser.add_argument("new", type=Path, help="the new (rebuilt) file or folder")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="RULE",
        help="policy rule whose differences are allowed (repeatable; see README 'Policy')",
    )
    add_report_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compare and emit the report.

    Raises:
        InputError: a path is missing, or one is a file and the other a folder.
    """
    old, new = args.old, args.new
    for path in (old, new):
        if not path.exists():
            raise InputError(f"{path} does not exist")
    if old.is_dir() != new.is_dir():
        raise InputError(f"cannot compare {old} with {new}: one is a folder, the other is not")
    policy = Policy(allow=policies.validate_rules(args.allow))
    if old.is_dir():
        olds, news = _files(old), _files(new)
    else:
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
            results.append(
                compare_files(
                    name, olds[name], news[name], policy, digests=pair, judge=policies.judge
                )
            )
    report = Report(
        command="diff",
        artifacts=tuple(results),
        policy=policy,
        policy_sha256=policies.policy_digest(policy),
        strict=not args.allow,
    )
    return emit_report(report, args)


def _files(folder: Path) -> dict[str, Path]:
    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }
