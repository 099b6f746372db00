"""`reprover verify-attestation` and the `--attest*` options of `reprover verify`.

Owns: parsing the attestation options of `reprover verify`, reading keys, passphrases and the
ambient OIDC identity from the environment, and writing the signed attestation after a
verification.
Does not own: building, signing or checking attestations (see `reprover.attest`), nor
`verify-attestation` (see `reprover.cli.verify_attestation`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

from reprover import keys, manifest
from reprover.attest import dsse, sigstore_sign, statement
from reprover.cli.common import err
from reprover.errors import InconclusiveError, InputError
from reprover.fsutil import write_atomic
from reprover.model import Report, Verdict

# --- reprover verify --attest ... -----------------------------------------------------------


@dataclass(frozen=True)
class AttestPlan:
    """What `reprover verify` was asked to attest, checked before the (long) verification."""

    output: Path
    signer: Signer | None = None
    sigstore_context: Any = None


def add_attest_options(parser: argparse.ArgumentParser) -> None:
    """Add `--attest`, `--attest-key`, `--attest-passphrase-env`, `--attest-sigstore`."""
    group = parser.add_argument_group(
        "attestation",
        "sign the verification result (PASSED or FAILED) as an in-toto Statement with a SLSA "
        "Verification Summary predicate; others check it with 'reprover verify-attestation'",
    )
    group.add_argument(
        "--attest",
        type=Path,
        metavar="OUT.intoto.json",
        help="write the signed attestation here, after the report, whatever the verdict",
    )
    how = group.add_mutually_exclusive_group()
    how.add_argument(
        "--attest-key",
        type=Path,
        metavar="KEY.pem",
        help="sign a DSSE envelope with this private key (from 'reprover key new'); offline",
    )
    how.add_argument(
        "--attest-sigstore",
        action="store_true",
        help="sign keylessly with sigstore using the ambient OIDC identity (GitHub Actions "
        "with 'id-token: write'); writes a sigstore bundle",
    )
    group.add_argument(
        "--attest-passphrase-env",
        metavar="VAR",
        help="read the --attest-key passphrase from environment variable VAR",
    )
    group.add_argument(
        "--attest-trust-config",
        type=Path,
        metavar="FILE",
        help="with --attest-sigstore: a sigstore client trust config for a private instance "
        "(default: the public-good instance)",
    )


def prepare_attestation(args: argparse.Namespace) -> AttestPlan | None:
    """Check the attestation options and load the key before verifying (fail fast).

    Raises:
        InputError: an option is missing or inconsistent, the key or passphrase is unusable, or
            no ambient OIDC identity exists for --attest-sigstore.
    """
    output = getattr(args, "attest", None)
    key_path = getattr(args, "attest_key", None)
    use_sigstore = bool(getattr(args, "attest_sigstore", False))
    if output is None:
        if key_path or use_sigstore or getattr(args, "attest_passphrase_env", None):
            raise InputError("--attest-key/--attest-sigstore need --attest OUT.intoto.json")
        return None
    if not key_path and not use_sigstore:
        raise InputError("--attest needs a way to sign: --attest-key KEY.pem or --attest-sigstore")
    if key_path:
        passphrase = None
        if args.attest_passphrase_env:
            value = os.environ.get(args.attest_passphrase_env)
            if not value:
                raise InputError(
                    f"environment variable {args.attest_passphrase_env} is empty or unset"
                )
            passphrase = value.encode()
        return AttestPlan(output, signer=keys.load_signer(key_path, passphrase))
    ambient_token()  # fail before the build when there is no identity to sign with
    return AttestPlan(
        output, sigstore_context=sigstore_sign.signing_context(args.attest_trust_config)
    )


def write_attestation(
    plan: AttestPlan, report: Report, manifest_path: Path, *, quiet: bool = False
) -> bytes | None:
    """Build, sign and atomically write the attestation of a finished verification.

    Returns:
        The bytes written, or None when the run was inconclusive (nothing is attested).

    Raises:
        InputError: the manifest can no longer be read.
        InconclusiveError: the manifest changed during the run, or signing failed.
    """
    if report.verdict is Verdict.INCONCLUSIVE:
        err("reprover: the verification was inconclusive; no attestation written")
        return None
    spec = manifest.load(manifest_path)
    if report.manifest_sha256 and spec.sha256 != report.manifest_sha256:
        raise InconclusiveError(
            f"{manifest_path} changed during the verification; no attestation written"
        )
    subjects = statement.released_subjects(report)  # the snapshot's digests, never a re-read
    if not subjects:
        raise InconclusiveError("the report names no released artifact; no attestation written")
    inputs = statement.inputs_from_manifest(spec, report, subjects)
    seen = set(report.snapshot.values())
    if report.snapshot and any(d["digest"]["sha256"] not in seen for d in inputs.inputs):
        raise InconclusiveError(
            "an in-toto layout or link changed during the verification; no attestation written"
        )
    payload = statement.statement_bytes(statement.build_statement(report, inputs))
    if plan.signer is not None:
        data = dsse.sign_envelope(payload, [plan.signer])
    else:
        data = sigstore_sign.sign_bundle(payload, ambient_token(), plan.sigstore_context)
    write_atomic(plan.output, data)
    if not quiet:
        result = "PASSED" if report.verdict is Verdict.PASS else "FAILED"
        err(f"reprover: attestation ({result}) written to {plan.output}")
    return data


def ambient_token() -> str:
    """The ambient OIDC identity token (GitHub Actions, GitLab, GCP, Buildkite, CircleCI).

    Raises:
        InputError: there is none, or the CI environment refused to issue one.
    """
    from sigstore.oidc import IdentityError, detect_credential  # noqa: PLC0415 - slow import

    try:
        token = detect_credential()
    except IdentityError as exc:
        raise InputError(f"cannot get an ambient OIDC identity: {exc}") from exc
    if not token:
        raise InputError(
            "no ambient OIDC identity for --attest-sigstore",
            hint="run in GitHub Actions with 'permissions: id-token: write', or use "
            "--attest-key KEY.pem",
        )
    return token
