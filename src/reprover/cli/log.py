"""`reprover log ...`: the append-only evidence log.

Owns: parsing the log commands' options, loading their keys, passphrases and verifier keys,
and printing indexes, verifier keys and outcomes.
Does not own: the log itself (see `reprover.tlog`), or appending and checking attestations
from `verify` and `verify-attestation` (see `reprover.cli.evidence`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprover import keys
from reprover.cli.common import add_common_options, err, out
from reprover.errors import InputError
from reprover.fsutil import write_atomic
from reprover.tlog import audit, log, note, proof, witness
from reprover.tlog.store import Store
from reprover.tlog.tiles import entry_for

MAX_INPUT = 1 << 30


def register(sub: Any) -> None:
    """Add the `log` subcommand group."""
    parser = sub.add_parser(
        "log",
        help="an append-only evidence log (C2SP tlog-tiles) outsiders can audit",
        description=(
            "Keep verification results in an append-only Merkle log on disk, in the C2SP "
            "tlog-tiles layout with a signed checkpoint, so that nobody can drop or change a "
            "result unnoticed."
        ),
        epilog="exit codes: 0 verified, 1 a check said no, 2 bad input, 3 inconclusive",
    )
    actions = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="create an empty log and print its verifier key")
    init.add_argument("logdir", type=Path, metavar="LOGDIR")
    init.add_argument("--origin", required=True, help="the log's name, e.g. example.com/log")
    _key_options(init, "--key", "the log's private key (ed25519, from 'reprover key new')")
    init.set_defaults(run=run_init)

    add = actions.add_parser("append", help="append each FILE as one entry; print its index")
    add.add_argument("logdir", type=Path, metavar="LOGDIR")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _key_options(add, "--key", "the log's private key")
    add.set_defaults(run=run_append)

    prv = actions.add_parser("prove", help="write the inclusion proof of a logged FILE")
    prv.add_argument("logdir", type=Path, metavar="LOGDIR")
    prv.add_argument("file", type=Path, metavar="FILE")
    prv.add_argument("-o", "--output", type=Path, required=True, metavar="PROOF")
    prv.add_argument(
        "--format",
        choices=("json", "c2sp"),
        help="json (reprover/tlog-proof/v1) or c2sp (tlog-proof@v1 text); default: c2sp when "
        "PROOF ends in .tlog-proof, else json",
    )
    prv.add_argument("--vkey", metavar="VKEY", help="also require the checkpoint's signature")
    add_common_options(prv)
    prv.set_defaults(run=run_prove)

    chk = actions.add_parser("check", help="check offline that FILE is in the log")
    chk.add_argument("proof", type=Path, metavar="PROOF")
    chk.add_argument("file", type=Path, metavar="FILE")
    chk.add_argument("--vkey", required=True, metavar="VKEY", help="the log's verifier key")
    witness_options(chk)
    add_common_options(chk)
    chk.set_defaults(run=run_check)

    aud = actions.add_parser(
        "audit", help="recompute every tile and the root; prove the log only grew"
    )
    aud.add_argument("logdir", type=Path, metavar="LOGDIR")
    aud.add_argument("--vkey", required=True, metavar="VKEY", help="the log's verifier key")
    aud.add_argument(
        "--since",
        type=Path,
        metavar="OLD",
        help="an older checkpoint you kept, or an older copy of the log folder (which also "
        "names the first changed entry)",
    )
    add_common_options(aud)
    aud.set_defaults(run=run_audit)

    wit = actions.add_parser(
        "witness", help="cosign the checkpoint after proving it extends an older one"
    )
    wit.add_argument("logdir", type=Path, metavar="LOGDIR")
    wit.add_argument("--vkey", required=True, metavar="VKEY", help="the log's verifier key")
    wit.add_argument("--name", required=True, help="the witness's name, e.g. auditor.example/w1")
    wit.add_argument(
        "--since", required=True, type=Path, metavar="OLD", help="the checkpoint it saw last"
    )
    wit.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="save the cosigned checkpoint here"
    )
    _key_options(wit, "--key", "the witness's private key (ed25519)")
    wit.set_defaults(run=run_witness)

    vk = actions.add_parser("vkey", help="print the verifier key of a log or witness key")
    vk.add_argument("--name", required=True, help="the log's origin or the witness's name")
    vk.add_argument(
        "--witness", action="store_true", help="a witness's cosignature key (type 0x04)"
    )
    _key_options(vk, "--key", "the private key")
    vk.set_defaults(run=run_vkey)


def _key_options(parser: argparse.ArgumentParser, flag: str, text: str) -> None:
    parser.add_argument(flag, dest="key", type=Path, required=True, metavar="KEY.pem", help=text)
    parser.add_argument(
        "--passphrase-env", metavar="VAR", help="read the key's passphrase from variable VAR"
    )
    add_common_options(parser)


def witness_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--witness-vkey",
        action="append",
        default=[],
        metavar="VKEY",
        help="a trusted witness's verifier key (repeatable)",
    )
    parser.add_argument(
        "--witnesses",
        type=int,
        default=None,
        metavar="K",
        help="distinct trusted witnesses that must have cosigned (default: 1 when "
        "--witness-vkey is given)",
    )


def load_key(path: Path, passphrase_env: str | None) -> Ed25519PrivateKey:
    """Load an ed25519 private key, with its passphrase from the environment if named.

    Raises:
        InputError: the key or passphrase is unusable.
    """
    passphrase = None
    if passphrase_env:
        value = os.environ.get(passphrase_env)
        if not value:
            raise InputError(f"environment variable {passphrase_env} is empty or unset")
        passphrase = value.encode()
    return keys.load_ed25519(path, passphrase)


def load_vkey(value: str, alg: int = note.ED25519) -> note.Verifier:
    """A verifier key given as the string itself or as a file holding it.

    Args:
        value: the vkey string, or the path of a file holding it.
        alg: the key type it must be (0x01 a log's key, 0x04 a witness's).

    Raises:
        InputError: neither a readable file nor a well-formed verifier key of that type.
    """
    path = Path(value)
    if path.is_file():
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read verifier key {path}: {exc}") from exc
    verifier = note.parse_vkey(value)
    if verifier.alg != alg:
        kind = "a witness's cosignature (0x04)" if alg == note.COSIGNATURE_V1 else "a log's (0x01)"
        raise InputError(f"verifier key {verifier.vkey} is not {kind} key")
    return verifier


def witness_policy(args: argparse.Namespace) -> tuple[list[note.Verifier], int]:
    """The trusted witnesses and how many must have cosigned.

    Raises:
        InputError: K is out of range, or a witness key is not a cosignature key.
    """
    witnesses = [load_vkey(v, note.COSIGNATURE_V1) for v in args.witness_vkey]
    distinct = len(note.distinct_keys(witnesses))
    k = args.witnesses if args.witnesses is not None else min(1, distinct)
    if k < 0 or k > distinct:
        raise InputError(f"--witnesses {k} is not between 0 and the {distinct} distinct witnesses")
    return witnesses, k


def read_input(path: Path, what: str) -> bytes:
    """Read a file a user named.

    Raises:
        InputError: it is not a readable regular file or is larger than 1 GiB.
    """
    try:
        if not path.is_file() or path.stat().st_size > MAX_INPUT:
            raise InputError(f"{what} {path} is not a regular file of at most 1 GiB")
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def run_init(args: argparse.Namespace) -> int:
    """Create the log; print its verifier key."""
    verifier = log.create(args.logdir, args.origin, load_key(args.key, args.passphrase_env))
    out(verifier.vkey)
    if not args.quiet:
        err(f"reprover: empty log created in {args.logdir} (verifier key in log.vkey)")
    return 0


def run_append(args: argparse.Namespace) -> int:
    """Append the files; print `INDEX FILE` per line."""
    key = load_key(args.key, args.passphrase_env)
    contents = [read_input(path, "file") for path in args.files]
    done = log.append(args.logdir, contents, key)
    for index, path in zip(done.indexes, args.files, strict=True):
        out(f"{index} {path}")
    if not args.quiet:
        err(f"reprover: log size {done.checkpoint.size}")
    return 0


def outside(output: Path, logdir: Path, *inputs: Path) -> None:
    """Refuse an output inside the log folder or over an input.

    Raises:
        InputError: it is.
    """
    target = output.resolve()
    root = logdir.resolve()
    if target == root or root in target.parents or any(target == p.resolve() for p in inputs):
        raise InputError(
            f"refusing to write {output}: it is inside the log folder or one of the inputs",
            hint="write the proof somewhere else",
        )


def run_prove(args: argparse.Namespace) -> int:
    """Write the proof of FILE's entry."""
    outside(args.output, args.logdir, args.file)
    key = load_vkey(args.vkey) if args.vkey else None
    content = read_input(args.file, "file")
    with Store(args.logdir) as store:
        made = proof.prove(store, entry_for(content), key)
    c2sp = args.format == "c2sp" or (args.format is None and args.output.suffix == ".tlog-proof")
    write_atomic(args.output, made.to_c2sp() if c2sp else made.to_json())
    if not args.quiet:
        err(f"reprover: entry {made.index} proven; proof written to {args.output}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Check a proof offline."""
    key = load_vkey(args.vkey)
    witnesses, k = witness_policy(args)
    parsed = proof.parse(read_input(args.proof, "proof"))
    opened = proof.check(parsed, read_input(args.file, "file"), key, witnesses, k)
    out(
        f"ok: {args.file} is entry {parsed.index} of {opened.origin} at size {opened.size}"
        + (f", cosigned by {', '.join(opened.witnesses)}" if opened.witnesses else "")
    )
    return 0


def run_audit(args: argparse.Namespace) -> int:
    """Audit the whole log."""
    key = load_vkey(args.vkey)
    with Store(args.logdir) as store, store.locked(exclusive=False):
        if args.since is None:
            result = audit.audit(store, key)
        elif args.since.is_dir():
            with Store(args.since) as old:
                result = audit.audit(store, key, old)
        else:
            result = audit.audit(store, key, read_input(args.since, "checkpoint"))
    size = result.checkpoint.size
    line = f"ok: {result.checkpoint.origin}: {size} entries, every tile and the root recomputed"
    if result.since is not None:
        line += f"; consistent with the checkpoint of size {result.since}"
    out(line)
    return 0


def run_witness(args: argparse.Namespace) -> int:
    """Cosign the log's checkpoint after a consistency proof."""
    if args.output is not None:
        outside(args.output, args.logdir)
    key = load_key(args.key, args.passphrase_env)
    log_key = load_vkey(args.vkey)
    old = read_input(args.since, "checkpoint")
    with Store(args.logdir) as store:
        cosigned = witness.cosign(
            store, log_key, old, name=args.name, key=key, timestamp=int(time.time())
        )
    if args.output is not None:
        write_atomic(args.output, cosigned.signed)
    sys.stdout.buffer.write(cosigned.signed)
    if not args.quiet:
        mine = note.verifier_for(args.name, key, note.COSIGNATURE_V1)
        err(f"reprover: cosigned size {cosigned.size} as {mine.vkey}")
    return 0


def run_vkey(args: argparse.Namespace) -> int:
    """Print a verifier key."""
    note.check_name(args.name)
    alg = note.COSIGNATURE_V1 if args.witness else note.ED25519
    out(note.verifier_for(args.name, load_key(args.key, args.passphrase_env), alg).vkey)
    return 0
