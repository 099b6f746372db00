"""The evidence log in `reprover verify --log` and `reprover verify-attestation --log-vkey`.

Owns: the options that append a finished verification's attestation to a log (checked
before the verification starts) and write its inclusion proof next to it, and the options
that require an attestation's proof, and k witnesses, when checking it.
Does not own: the log (see `reprover.tlog`) or the `reprover log` commands (`cli.log`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprover.cli.common import err
from reprover.cli.log import (
    load_key,
    load_vkey,
    outside,
    read_input,
    witness_options,
    witness_policy,
)
from reprover.errors import InputError, VerificationError
from reprover.fsutil import write_atomic
from reprover.tlog import checkpoint, log, note, proof
from reprover.tlog.store import Store
from reprover.tlog.tiles import entry_for


@dataclass(frozen=True)
class LogPlan:
    """Where `reprover verify` appends its attestation, checked before the verification."""

    logdir: Path
    key: Ed25519PrivateKey


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Add `--log LOGDIR`, `--log-key LOG.pem` and `--log-passphrase-env` to `verify`."""
    group = parser.add_argument_group(
        "evidence log",
        "append the signed attestation (PASSED or FAILED) to an append-only log and write "
        "its inclusion proof next to it as OUT.intoto.json.proof.json",
    )
    group.add_argument("--log", type=Path, metavar="LOGDIR", help="the log (see 'reprover log')")
    group.add_argument("--log-key", type=Path, metavar="LOG.pem", help="the log's private key")
    group.add_argument("--log-passphrase-env", metavar="VAR", help="the --log-key passphrase")


def prepare_log(args: argparse.Namespace, attesting: bool) -> LogPlan | None:
    """Check the log options before verifying: the key must sign the log's checkpoint.

    Raises:
        InputError: options missing or inconsistent, or the key is unusable.
        VerificationError: the log is not signed by this key.
    """
    if args.log is None:
        if args.log_key is not None:
            raise InputError("--log-key needs --log LOGDIR")
        return None
    if args.log_key is None or not attesting:
        raise InputError("--log needs --log-key LOG.pem and an attestation (--attest ...)")
    outside(proof_path(args.attest), args.log)
    outside(args.attest, args.log)
    key = load_key(args.log_key, args.log_passphrase_env)
    with Store(args.log) as store:
        signed = store.read(log.CHECKPOINT)
        origin = checkpoint.peek_origin(signed)
        try:
            log.read_checkpoint(store, note.verifier_for(origin, key))
        except VerificationError as exc:
            raise VerificationError(
                f"--log-key is not the key of the log in {args.log}: {exc.message}",
                hint="pass the key the log was created with ('reprover log init')",
            ) from exc
    return LogPlan(args.log, key)


def proof_path(attestation: Path) -> Path:
    """Where the inclusion proof of an attestation is kept: next to it."""
    return attestation.with_name(attestation.name + ".proof.json")


def log_attestation(plan: LogPlan, attestation: Path, data: bytes, *, quiet: bool) -> None:
    """Append the attestation's bytes and write its proof next to it.

    Raises:
        VerificationError: the log is damaged or not signed by the key.
        InconclusiveError: a write failed.
    """
    done = log.append(plan.logdir, [data], plan.key)
    with Store(plan.logdir) as store:
        made = proof.prove(store, entry_for(data))
    write_atomic(proof_path(attestation), made.to_json())
    if not quiet:
        where = proof_path(attestation)
        err(f"reprover: attestation logged as entry {done.indexes[0]}; proof {where}")


def add_log_check_options(parser: argparse.ArgumentParser) -> None:
    """Add `--log-vkey`, `--witness-vkey` and `--witnesses` to `verify-attestation`."""
    parser.add_argument(
        "--log-vkey",
        metavar="VKEY",
        help="require each attestation's FILE.proof.json to prove it is in this log",
    )
    witness_options(parser)


def check_logged(args: argparse.Namespace, attestation: Path, data: bytes) -> dict[str, Any] | None:
    """With --log-vkey, require the attestation's proof to check; say where it is logged.

    Returns:
        None without --log-vkey; else the entry's `index`, the log's `origin`, the `size` of
        the tree it was proven in and the `witnesses` that cosigned that tree.

    Raises:
        InputError: the options or proof file are malformed.
        VerificationError: no proof, or it does not check.
    """
    if args.log_vkey is None:
        if args.witness_vkey or args.witnesses is not None:
            raise InputError("--witness-vkey and --witnesses go with --log-vkey")
        return None
    witnesses, k = witness_policy(args)
    path = proof_path(attestation)
    if not path.is_file():
        raise VerificationError(f"{attestation} has no log proof {path}: it may not be logged")
    made = proof.parse(read_input(path, "proof"))
    opened = proof.check(made, data, load_vkey(args.log_vkey), witnesses, k)
    return {
        "index": made.index,
        "origin": opened.origin,
        "size": opened.size,
        "witnesses": list(opened.witnesses),
    }
