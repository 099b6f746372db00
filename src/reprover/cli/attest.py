"""`reprover verify-attestation` and the `--attest*` options of `reprover verify`.

Owns: parsing the attestation options, reading keys, passphrases and the ambient OIDC identity
from the environment, writing the signed attestation after a verification, and rendering the
result of checking attestations (text, or JSON with `"schema": "reprover/attestation-check/v1"`).
Does not own: building, signing or checking attestations (see `reprover.attest`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

from reprover import keys, manifest
from reprover.attest import check, dsse, sigstore_sign, sigstore_verify, statement
from reprover.cli.common import add_common_options, err
from reprover.cli.log import add_log_check_options, check_logged
from reprover.digest import hash_files
from reprover.errors import ExitCode, InconclusiveError, InputError, VerificationError
from reprover.fsutil import write_atomic
from reprover.model import Digest, Manifest, Report, Verdict
from reprover.verify import released_artifacts

CHECK_SCHEMA = "reprover/attestation-check/v1"


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
    if not output.parent.is_dir() and str(output.parent):
        raise InputError(f"folder {output.parent} for --attest does not exist")
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
    subjects = statement.released_subjects(report)
    if not subjects:
        subjects = _hash_release(spec)
    inputs = statement.inputs_from_manifest(spec, report, subjects)
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


def _hash_release(spec: Manifest) -> dict[str, Digest]:
    released = released_artifacts(spec)
    digests = hash_files(released.values())
    return {name: digests[path] for name, path in released.items()}


# --- reprover verify-attestation --------------------------------------------------------------


def register(sub: Any) -> None:
    """Add the `verify-attestation` subcommand."""
    parser = sub.add_parser(
        "verify-attestation",
        help="check signed verification results offline, requiring k of n trusted signers",
        description=(
            "Check attestations written by 'reprover verify --attest' (DSSE envelopes or "
            "sigstore bundles): each signature by a trusted key or identity, the payload and "
            "predicate types, that a subject's sha256 equals each artifact's, that the result "
            "is PASSED and, when given, the policy digest. Every FILE must pass; then at least "
            "K distinct trusted signers must have signed. Works offline."
        ),
        epilog="exit codes: 0 verified, 1 a check said no, 2 bad input, 3 inconclusive",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="attestation files")
    parser.add_argument(
        "--artifact",
        action="append",
        type=Path,
        required=True,
        metavar="PATH",
        help="a released file the attestations must cover (repeatable)",
    )
    parser.add_argument(
        "--key",
        action="append",
        type=Path,
        default=[],
        metavar="PUB.pem",
        help="a trusted public key (repeatable); DSSE envelopes must be signed by one",
    )
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="ID",
        help="a trusted sigstore signer identity (certificate SAN; repeatable)",
    )
    parser.add_argument(
        "--issuer",
        action="append",
        default=[],
        metavar="URL",
        help="the OIDC issuer of each --identity (one for all, or one per --identity)",
    )
    parser.add_argument(
        "--trusted-root",
        type=Path,
        metavar="FILE",
        help="sigstore trusted_root.json to pin (default: the one shipped with sigstore)",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=1,
        metavar="K",
        help="distinct trusted signers required (default: 1)",
    )
    parser.add_argument(
        "--policy-digest",
        metavar="SHA256",
        help="require this policy digest (the sha256 of the verified reprover.toml, which pins "
        "repository, commit, recipe and policy)",
    )
    add_log_check_options(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write output here")
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check every attestation, then the threshold; render the outcome.

    Raises:
        InputError: bad options, unreadable files or keys, malformed attestations.
        InconclusiveError: the output cannot be written.
    """
    trust = _trust(args)
    if args.policy_digest is not None:
        digest = args.policy_digest.lower().removeprefix("sha256:")
        if not statement.SHA256_HEX.fullmatch(digest):
            raise InputError(f"--policy-digest {args.policy_digest!r} is not a sha256 hex digest")
    if args.threshold < 1 or args.threshold > trust.size:
        check.require_threshold([], args.threshold, trust)  # raises the precise InputError
    for path in args.artifact:
        if not path.is_file():
            raise InputError(f"artifact {path} is not a readable file")
    digests = hash_files(args.artifact)
    artifacts = {str(path): digests[path].sha256 for path in args.artifact}
    results, accepted = _check_files(args, trust, artifacts)
    failures = [f"{r['file']}: {r['reason']}" for r in results if not r["passed"]]
    signers: tuple[str, ...] = ()
    threshold_failure = None
    if not failures:
        try:
            signers = check.require_threshold(accepted, args.threshold, trust)
        except VerificationError as exc:
            threshold_failure = exc.message
            failures.append(exc.message)
    outcome = {
        "schema": CHECK_SCHEMA,
        "verdict": "fail" if failures else "pass",
        "threshold": args.threshold,
        "trusted_signers": trust.size,
        "distinct_signers": list(signers),
        "artifacts": [{"path": p, "sha256": s} for p, s in artifacts.items()],
        "attestations": results,
        "failures": failures,
        "threshold_failure": threshold_failure,
    }
    _emit(outcome, args)
    if failures:
        if not args.quiet:
            for reason in failures:
                err(f"reprover: {reason}")
        return int(ExitCode.FAIL)
    return int(ExitCode.OK)


def _check_files(
    args: argparse.Namespace, trust: check.Trust, artifacts: dict[str, str]
) -> tuple[list[dict[str, Any]], list[check.Accepted]]:
    results: list[dict[str, Any]] = []
    accepted: list[check.Accepted] = []
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read attestation {path}: {exc.strerror or exc}") from exc
        try:
            item = check.check_attestation(
                data,
                source=str(path),
                trust=trust,
                artifacts=artifacts,
                policy_digest=args.policy_digest,
            )
            check_logged(args, path, data)
        except VerificationError as exc:
            results.append({"file": str(path), "passed": False, "reason": exc.message})
            continue
        accepted.append(item)
        signers = list(item.signers)
        results.append(
            {"file": str(path), "passed": True, "signers": signers, "commit": item.commit}
        )
    return results, accepted


def _trust(args: argparse.Namespace) -> check.Trust:
    if not args.key and not args.identity:
        raise InputError("trust someone: give --key PUB.pem or --identity ID --issuer URL")
    identities: list[sigstore_verify.Identity] = []
    if args.identity:
        issuers = args.issuer
        if len(issuers) == 1:
            issuers = issuers * len(args.identity)
        if len(issuers) != len(args.identity):
            raise InputError("give one --issuer for all identities, or one per --identity")
        identities = [
            sigstore_verify.Identity(i, s) for i, s in zip(args.identity, issuers, strict=True)
        ]
    elif args.issuer or args.trusted_root:
        raise InputError("--issuer and --trusted-root go with --identity")
    root = sigstore_verify.load_trusted_root(args.trusted_root) if identities else None
    public = tuple(keys.load_public_key(path) for path in args.key)
    return check.Trust(keys=public, identities=tuple(dict.fromkeys(identities)), trusted_root=root)


def _emit(outcome: dict[str, Any], args: argparse.Namespace) -> None:
    if args.format == "json":
        data = (json.dumps(outcome, sort_keys=True, indent=2) + "\n").encode()
    else:
        lines = [f"verdict: {outcome['verdict']}"]
        for artifact in outcome["artifacts"]:
            lines.append(f"artifact: {artifact['path']} sha256 {artifact['sha256']}")
        for item in outcome["attestations"]:
            if item["passed"]:
                lines.append(f"ok   {item['file']}: signed by {', '.join(item['signers'])}")
            else:
                lines.append(f"FAIL {item['file']}: {item['reason']}")
        lines.append(
            f"signers: {len(outcome['distinct_signers'])} distinct trusted, "
            f"{outcome['threshold']} required, {outcome['trusted_signers']} trusted"
        )
        if outcome["threshold_failure"]:
            lines.append(f"FAIL threshold: {outcome['threshold_failure']}")
        data = ("\n".join(lines) + "\n").encode()
    if args.output is not None:
        write_atomic(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
