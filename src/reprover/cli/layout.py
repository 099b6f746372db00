"""`reprover layout new|check|verify`: author, lint and verify in-toto layouts."""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from in_toto.models.layout import Layout

from reprover import intoto, keys
from reprover.cli.common import add_common_options, err, out
from reprover.errors import ExitCode, InputError
from reprover.fsutil import check_outputs, write_atomic
from reprover.intoto.lint import ERROR
from reprover.intoto.metadata import parse
from reprover.model import InTotoSpec

TEMPLATES = ("transparency-center", "single-team")


def register(sub: Any) -> None:
    """Add the `layout` subcommand group."""
    parser = sub.add_parser("layout", help="create, lint and verify in-toto layouts")
    actions = parser.add_subparsers(dest="layout_command", metavar="ACTION", required=True)

    new = actions.add_parser(
        "new",
        help="turn a TOML layout specification into a signed in-toto layout",
        description=(
            "Read SPEC.toml (start from a template: 'reprover layout init'; the format: "
            "'reprover layout init --guide'), load each functionary's public key, set the "
            "expiry in UTC, sign the layout with the owner's private key and lint it. Nothing "
            "is written when a lint finding is an error (exit 1). DSSE envelope by default, "
            "legacy Metablock with --legacy."
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
            "threshold counting. With --key, also check the layout's signature; without it "
            "the signature is not checked, and the summary says so."
        ),
    )
    check.add_argument("layout", type=Path, help="the layout file")
    check.add_argument("--key", type=Path, action="append", default=[], help="owner public key")
    add_common_options(check)
    check.set_defaults(run=run_check)

    init = actions.add_parser(
        "init",
        help="write a layout specification template (transparency-center or single-team)",
        description=(
            "Write one of the layout specification templates shipped with reprover, to edit "
            "and then sign with 'reprover layout new'. --guide prints the specification "
            "format and both supply chains explained."
        ),
    )
    init.add_argument("template", nargs="?", choices=TEMPLATES, help="which template to write")
    init.add_argument(
        "-o", "--output", type=Path, help="file to write (default: TEMPLATE.toml here)"
    )
    init.add_argument("--guide", action="store_true", help="print the format guide (Markdown)")
    add_common_options(init)
    init.set_defaults(run=run_init)

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
    inputs = [args.spec, args.key, *([args.keys_dir] if args.keys_dir else [])]
    check_outputs([("-o", args.output)], inputs)
    passphrase = _passphrase(args.passphrase_env)
    signer = keys.load_signer(args.key, passphrase)
    spec = intoto.load_spec(args.spec, args.keys_dir)
    check_outputs([("-o", args.output)], list(spec.functionaries.values()))
    data = intoto.signed_layout(spec, signer, legacy=args.legacy, expires_days=args.expires_days)
    loaded = parse(data, args.output)
    findings = intoto.lint_layout(loaded, now=datetime.now(timezone.utc))
    for finding in findings:
        err(f"reprover: {finding}")
    errors = sum(f.severity == ERROR for f in findings)
    if errors:
        err(
            f"reprover: {args.output} not written: the specification has {errors} lint "
            "error(s); fix them in the spec and run layout new again"
        )
        return int(ExitCode.FAIL)
    write_atomic(args.output, data)
    if not args.quiet:
        fmt = "Metablock" if args.legacy else "DSSE"
        err(f"reprover: wrote {args.output} ({fmt}, expires {loaded.raw_payload['expires']})")
    return 0


def run_init(args: argparse.Namespace) -> int:
    """Write a packaged template, or print the guide.

    Raises:
        InputError: no template named, or the output exists.
    """
    if args.guide:
        out(_packaged("README.md").rstrip("\n"))
        return 0
    if args.template is None:
        raise InputError(
            "name a template: " + " or ".join(TEMPLATES), hint="or --guide for the format"
        )
    target = args.output or Path(f"{args.template}.toml")
    if target.exists() or target.is_symlink():
        raise InputError(f"{target} already exists", hint="choose another path with -o")
    check_outputs([("-o", target)])
    write_atomic(target, _packaged(f"{args.template}.toml").encode())
    out(str(target))
    if not args.quiet:
        err(f"reprover: edit {target}, then sign it:")
        err(f"  reprover layout new {target} -o root.layout --key OWNER.pem")
    return 0


def _packaged(name: str) -> str:
    return (resources.files("reprover") / "layouts" / name).read_text(encoding="utf-8")


def run_check(args: argparse.Namespace) -> int:
    """Lint a layout: findings on stdout, exit 1 when one is an error.

    Raises:
        InputError: the layout or a key is malformed or unreadable.
    """
    try:
        loaded = intoto.load(args.layout, "layout")
    except InputError as exc:
        if args.layout.suffix == ".toml":
            raise InputError(
                exc.message,
                hint=f"{args.layout} looks like a layout specification: sign it first with "
                f"'reprover layout new {args.layout} -o root.layout --key OWNER.pem'",
            ) from exc
        raise
    if not isinstance(loaded.payload, Layout):
        raise InputError(f"{args.layout} holds a link, not a layout")
    owner_keys = [intoto.load_public_key(p) for p in args.key]
    findings = intoto.lint_layout(loaded, owner_keys, now=datetime.now(timezone.utc))
    for finding in findings:
        out(str(finding))
    errors = sum(f.severity == ERROR for f in findings)
    if not args.quiet:
        fmt = "DSSE" if loaded.dsse else "Metablock"
        signature = (
            f"signature checked against {len(owner_keys)} owner key(s)"
            if owner_keys
            else "signature NOT checked (give --key OWNER.pub.pem)"
        )
        err(
            f"reprover: {args.layout} ({fmt}): {errors} error(s), "
            f"{len(findings) - errors} warning(s); {signature}"
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
    out(f"in-toto: pass: {summary}")
    return 0


def _passphrase(variable: str | None) -> bytes | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise InputError(f"environment variable {variable} is empty or unset")
    return value.encode()
