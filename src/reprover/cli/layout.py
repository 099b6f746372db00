"""`reprover layout new|check|verify`: author, lint and verify in-toto layouts."""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from in_toto.models.layout import Layout

from reprover import intoto, keys
from reprover.cli.common import add_common_options, err
from reprover.errors import ExitCode, InputError
from reprover.fsutil import write_atomic
from reprover.intoto.lint import ERROR
from reprover.intoto.metadata import parse
from reprover.model import InTotoSpec


def register(sub: Any) -> None:
    """Add the `layout` subcommand group."""
    parser = sub.add_parser("layout", help="create, lint and verify in-toto layouts")
    actions = parser.add_subparsers(dest="layout_command", metavar="ACTION", required=True)

    new = actions.add_parser(
        "new",
        help="turn a TOML layout specification into a signed in-toto layout",
        description=(
            "Read SPEC.toml (see layouts/README.md), load each functionary's public key, set "
            "the expiry in UTC, and sign the layout with the owner's private key. DSSE "
            "envelope by default, legacy Metablock with --legacy. The result is linted."
        ),
    )
    new.add_argument("spec", type=Path, help="the layout specification (TOML)")
    new.add_argument("-o", "--output", type=Path, required=True, help="layout file to write")
    new.add_argument("--key", type=Path, required=True, help="the owner's private key (PEM)")
    new.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in VAR")
    new.add_argument(
        "--keys-dir", type=Path, help="resolve [functionaries] key paths here (default: spec's)"
    )
    new.add_argument("--legacy", action="store_true", help="write a legacy Metablock")
    new.add_argument(
        "--expires-days", type=int, help="days until the layout expires (default: the spec's)"
    )
    add_common_options(new)
    new.set_defaults(run=run_new)

    check = actions.add_parser(
        "check",
        help="lint a layout (exit 1 on an error finding, 2 when malformed)",
        description=(
            "Report steps without functionaries, thresholds above the number of keys, rules "
            "naming unknown steps, rule lists that allow everything or lack a final "
            "DISALLOW *, expiry missing, past or years away, and key entries that break "
            "threshold counting. With --key, also check the layout's signature."
        ),
    )
    check.add_argument("layout", type=Path, help="the layout file")
    check.add_argument("--key", type=Path, action="append", default=[], help="owner public key")
    add_common_options(check)
    check.set_defaults(run=run_check)

    verify = actions.add_parser(
        "verify",
        help="verify released files against a layout and its links (no rebuild)",
        description=(
            "Run the hardened in-toto verification `reprover verify` runs for a manifest's "
            "[in-toto] table: the layout signed by every --key, every link checked (all links "
            "of a step must agree), in-toto's rules, and each released file a product of the "
            "release step (--release-step; default sign, else build)."
        ),
    )
    verify.add_argument("layout", type=Path, help="the layout file")
    verify.add_argument(
        "--key", type=Path, action="append", required=True, help="owner public key (repeatable)"
    )
    verify.add_argument("--links", type=Path, required=True, help="folder of link files")
    verify.add_argument(
        "--release-step",
        metavar="NAME",
        help="the step whose products are the released files (default: sign, else build)",
    )
    verify.add_argument(
        "--inspection-tools",
        type=Path,
        metavar="DIR",
        help="a folder of your own files the layout's inspections run (copied, with the "
        "released files, into the throw-away folder where they run)",
    )
    verify.add_argument("released", type=Path, nargs="+", help="released files (by file name)")
    add_common_options(verify)
    verify.set_defaults(run=run_verify)


def run_new(args: argparse.Namespace) -> int:
    """Write the signed layout and print its lint findings.

    Raises:
        InputError: bad spec, keys or arguments.
    """
    passphrase = _passphrase(args.passphrase_env)
    signer = keys.load_signer(args.key, passphrase)
    spec = intoto.load_spec(args.spec, args.keys_dir)
    data = intoto.signed_layout(spec, signer, legacy=args.legacy, expires_days=args.expires_days)
    loaded = parse(data, args.output)
    findings = intoto.lint_layout(loaded, now=datetime.now(timezone.utc))
    write_atomic(args.output, data)
    for finding in findings:
        err(f"reprover: {finding}")
    if not args.quiet:
        fmt = "Metablock" if args.legacy else "DSSE"
        err(f"reprover: wrote {args.output} ({fmt}, expires {loaded.raw_payload['expires']})")
    return 1 if any(f.severity == ERROR for f in findings) else 0


def run_check(args: argparse.Namespace) -> int:
    """Lint a layout: findings on stdout, exit 1 when one is an error.

    Raises:
        InputError: the layout or a key is malformed or unreadable.
    """
    loaded = intoto.load(args.layout, "layout")
    if not isinstance(loaded.payload, Layout):
        raise InputError(f"{args.layout} holds a link, not a layout")
    owner_keys = [intoto.load_public_key(p) for p in args.key]
    findings = intoto.lint_layout(loaded, owner_keys, now=datetime.now(timezone.utc))
    for finding in findings:
        print(finding)
    errors = sum(f.severity == ERROR for f in findings)
    if not args.quiet:
        fmt = "DSSE" if loaded.dsse else "Metablock"
        err(
            f"reprover: {args.layout} ({fmt}): {errors} error(s), "
            f"{len(findings) - errors} warning(s)"
        )
    return int(ExitCode.FAIL) if errors else 0


def run_verify(args: argparse.Namespace) -> int:
    """Verify the chain for the released files; print the summary.

    Raises:
        InputError, VerificationError: as `reprover.intoto.verify_chain`.
    """
    released = {}
    for path in args.released:
        if not path.is_file():
            raise InputError(f"released file {path} does not exist")
        if path.name in released:
            raise InputError(f"two released files are named {path.name}")
        released[path.name] = path
    spec = InTotoSpec(
        layout=args.layout,
        layout_keys=tuple(args.key),
        links=args.links,
        release_step=args.release_step,
        inspection_tools=args.inspection_tools,
    )
    summary = intoto.verify_chain(spec, released)
    print(f"in-toto: pass: {summary}")
    return 0


def _passphrase(variable: str | None) -> bytes | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise InputError(f"environment variable {variable} is empty or unset")
    return value.encode()
