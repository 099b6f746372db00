"""`reprover demo`: the embedded end-to-end scenario, no arguments, no network."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reprover.cli.common import add_common_options, err
from reprover.render import render


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    parser = sub.add_parser(
        "demo",
        help="run an end-to-end scenario: a vendor release verified, then a tampered one caught",
        description=(
            "Create a workspace with a small antivirus scanner engine in a git repository, build "
            "its official release as the vendor would, sign the Windows engine (when mingw-w64 "
            "and osslsigncode are installed), record the supply chain as signed in-toto links, "
            "verify it all with reprover (pass), then verify a copy with one changed code byte "
            "and a chain with a link edited after signing (both fail). Exit 0 when every step "
            "behaved as expected. The workspace stays for you to re-run `reprover verify` in."
        ),
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path("reprover-demo"),
        help="folder to create (default: ./reprover-demo; a previous demo there is replaced)",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print each step with its report.

    Raises:
        Error: when the scenario cannot run (missing tools, vendor build failure).
    """
    from reprover import demo  # noqa: PLC0415 - the demo's imports would slow every command

    progress = (lambda _msg: None) if args.quiet else (lambda msg: err(f"reprover: {msg}"))
    result = demo.run(args.workspace, progress)
    out = sys.stdout
    for number, step in enumerate(result.steps, 1):
        mark = "ok" if step.ok else "UNEXPECTED"
        out.write(f"\n== step {number}: {step.title}\n   expected: {step.expected}  [{mark}]\n")
        for note in step.notes:
            out.write(f"   note: {note}\n")
        if step.report is not None:
            text = render(step.report, "text").decode()
            out.write("".join(f"   {line}\n" if line else "\n" for line in text.splitlines()))
    where = result.workspace
    out.write(
        f"\nworkspace: {where}\n"
        f"  cd {where} && reprover verify                               # faithful: exit 0\n"
        f"  cd {where} && reprover verify reprover-tampered.toml        # tampered code: exit 1\n"
        f"  cd {where} && reprover verify reprover-tampered-links.toml  # tampered link: exit 1\n"
        f"  cd {where} && reprover verify --format html -o report.html  # the auditor report\n"
        f"  cd {where} && reprover log check pass.intoto.json.proof.json pass.intoto.json "
        "--vkey evidence-log/log.vkey  # logged\n"
        f"  cd {where} && reprover log audit evidence-log --vkey evidence-log/log.vkey\n"
    )
    out.write("demo: every step behaved as expected\n" if result.ok else "demo: FAILED\n")
    out.flush()
    return 0 if result.ok else 1
