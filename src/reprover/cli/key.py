"""`reprover key new NAME`: write an ed25519 key pair in the PEM formats in-toto reads."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Any

from reprover import keys
from reprover.cli.common import add_common_options, err, out
from reprover.errors import InputError


def register(sub: Any) -> None:
    """Add the `key` subcommand group."""
    parser = sub.add_parser("key", help="create signing keys for links, layouts and attestations")
    actions = parser.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="write NAME.pem (private, mode 0600) and NAME.pub.pem (public), ed25519",
        description=(
            "Write an ed25519 key pair: NAME.pem (PKCS#8 private key, mode 0600, encrypted when "
            "a passphrase is given) and NAME.pub.pem (public key). in-toto's own tools read both."
        ),
    )
    new.add_argument("name", help="file name stem for the key pair")
    new.add_argument(
        "-d",
        "--dir",
        type=Path,
        default=Path(),
        help="folder (default: current; created when missing)",
    )
    secret = new.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="encrypt the private key with the passphrase in environment variable VAR",
    )
    secret.add_argument(
        "--passphrase", action="store_true", help="ask for a passphrase on the terminal"
    )
    add_common_options(new)
    new.set_defaults(run=run_new)


def run_new(args: argparse.Namespace) -> int:
    """Create the key pair and print the public key's path and keyid.

    Raises:
        InputError: bad name, existing files, or an empty/mismatched passphrase.
    """
    passphrase: bytes | None = None
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            raise InputError(f"environment variable {args.passphrase_env} is empty or unset")
        passphrase = value.encode()
    elif args.passphrase:
        first = getpass.getpass("passphrase: ")
        if not first or first != getpass.getpass("again: "):
            raise InputError("the passphrases are empty or do not match")
        passphrase = first.encode()
    if args.dir.exists() and not args.dir.is_dir():
        raise InputError(f"{args.dir} is not a folder")
    args.dir.mkdir(parents=True, exist_ok=True)  # one rule: missing output folders are created
    private, public = keys.generate(args.name, args.dir, passphrase)
    keyid = keys.load_public_key(public).keyid
    out(f"{private}\n{public}")
    if not args.quiet:
        err(f"reprover: keyid {keyid}")
    return 0
