"""`reprover verify-attestation`: check signed verification results offline, k of n.

Owns: the options of `verify-attestation` (trusted keys and identities, artifacts and the
subject name each must have, the accepted verifiers, the commit and manifest digest pins, the
threshold) and rendering its outcome (text, or JSON with
`"schema": "reprover/attestation-check/v1"`): for each accepted attestation the subject matched,
the verifier, the commit and the manifest digest it attests.
Does not own: checking attestations (see `reprover.attest.check`) or writing them (see
`reprover.cli.attest`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from reprover import keys
from reprover.attest import check, sigstore_verify, statement
from reprover.cli.common import add_common_options, err
from reprover.cli.evidence import add_log_check_options, check_logged
from reprover.digest import hash_files
from reprover.errors import ExitCode, InputError, VerificationError
from reprover.fsutil import check_outputs, write_atomic
from reprover.render.safe import json_safe, visible

CHECK_SCHEMA = "reprover/attestation-check/v1"


def register(sub: Any) -> None:
    """Add the `verify-attestation` subcommand."""
    parser = sub.add_parser(
        "verify-attestation",
        help="check signed verification results offline, requiring k of n trusted signers",
        description=(
            "Check attestations written by 'reprover verify --attest' (DSSE envelopes or "
            "sigstore bundles): each signature by a trusted key or identity, the payload and "
            "predicate types, a verifier.id you accept (default: reprover's own), reprover's "
            "rebuild extension, a subject with each artifact's name and sha256, that the result "
            "is PASSED and, when given, the commit and manifest digest pins (pin one: without "
            "a pin, last year's binary with last year's attestation passes). Every FILE must "
            "pass; then at least K distinct trusted signers must have signed. Works offline."
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
        help="a released file the attestations must cover (repeatable); it must be a subject "
        "of the same name (its file name, or --subject)",
    )
    parser.add_argument(
        "--subject",
        action="append",
        default=[],
        metavar="NAME",
        help="the subject name of each --artifact, in order (default: the file's name); say so "
        "when a file was renamed, e.g. --subject bin/scan",
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
        "--manifest-digest",
        dest="policy_digest",
        metavar="SHA256",
        help="require this manifest digest (the sha256 of the verified reprover.toml, which pins "
        "repository, commit, recipe and policy): refuses rollback and replay",
    )
    parser.add_argument(
        "--commit",
        metavar="SHA",
        help="require this source commit (full SHA): refuses rollback and replay",
    )
    parser.add_argument(
        "--verifier-id",
        action="append",
        default=[],
        metavar="ID",
        help="accept attestations by this verifier.id (repeatable; default: reprover's own, "
        f"{statement.VERIFIER_ID})",
    )
    parser.add_argument(
        "--allow-no-rebuild",
        action="store_true",
        help="accept attestations without reprover's rebuild extension (summaries of other "
        "checks, not rebuilds)",
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
    if args.output is not None:
        inputs = [*args.files, *args.artifact, *args.key]
        check_outputs([("-o", args.output)], [*inputs, *filter(None, [args.trusted_root])])
    if args.policy_digest is not None:
        digest = args.policy_digest.lower().removeprefix("sha256:")
        if not statement.SHA256_HEX.fullmatch(digest):
            raise InputError(f"--policy-digest {args.policy_digest!r} is not a sha256 hex digest")
    if args.threshold < 1 or args.threshold > trust.size:
        check.require_threshold([], args.threshold, trust)  # raises the precise InputError
    expect = _expect(args)
    names = _subject_names(args)
    digests = hash_files(args.artifact)
    artifacts = {name: digests[path].sha256 for name, path in names.items()}
    results, accepted = _check_files(args, trust, names, artifacts, expect)
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
        "artifacts": [
            {"path": str(path), "subject": name, "sha256": artifacts[name]}
            for name, path in names.items()
        ],
        "attestations": results,
        "failures": failures,
        "threshold_failure": threshold_failure,
    }
    _emit(outcome, args)
    if failures and not args.quiet:
        for reason in failures:
            err(f"reprover: {reason}")
    return int(ExitCode.FAIL) if failures else int(ExitCode.OK)


def _expect(args: argparse.Namespace) -> check.Expect:
    commit = args.commit.lower() if args.commit else None
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise InputError(f"--commit {args.commit!r} is not a full commit SHA (40 or 64 hex)")
    return check.Expect(
        verifier_ids=tuple(args.verifier_id) or (statement.VERIFIER_ID,),
        require_rebuild=not args.allow_no_rebuild,
        policy_digest=args.policy_digest,
        commit=commit,
    )


def _subject_names(args: argparse.Namespace) -> dict[str, Path]:
    """Each artifact under the subject name it must have: --subject, else its file name."""
    if args.subject and len(args.subject) != len(args.artifact):
        raise InputError("give one --subject per --artifact, in the same order, or none")
    names: dict[str, Path] = {}
    for index, path in enumerate(args.artifact):
        if not path.is_file():
            raise InputError(f"artifact {path} is not a readable file")
        name = args.subject[index] if args.subject else path.name
        if name in names:
            raise InputError(f"two artifacts have the subject name {name!r}; use --subject")
        names[name] = path
    return names


def _check_files(
    args: argparse.Namespace,
    trust: check.Trust,
    names: dict[str, Path],
    artifacts: dict[str, str],
    expect: check.Expect,
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
                expect=expect,
            )
            logged = check_logged(args, path, data)
        except VerificationError as exc:
            results.append({"file": str(path), "passed": False, "reason": exc.message})
            continue
        accepted.append(item)
        results.append(
            {
                "file": str(path),
                "passed": True,
                "signers": list(item.signers),
                "verifier": item.verifier,
                "commit": item.commit,
                "manifest_sha256": item.manifest_sha256,
                "log": logged,
                "subjects": [
                    {"subject": m.subject, "sha256": m.sha256, "artifact": str(names[m.artifact])}
                    for m in item.matches
                ],
            }
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


def _text(outcome: dict[str, Any]) -> str:
    """The outcome for a person: every input string made visible, each path said once."""
    v = visible
    lines = [f"verdict: {outcome['verdict'].upper()}"]
    for artifact in outcome["artifacts"]:
        lines.append(f"artifact: {v(artifact['path'])} sha256 {artifact['sha256']}")
    for item in outcome["attestations"]:
        name = v(item["file"])
        if not item["passed"]:
            lines.append(f"FAIL {name}: {v(item['reason']).removeprefix(f'{name}: ')}")
            continue
        lines.append(f"ok   {name}: signed by {', '.join(v(s) for s in item['signers'])}")
        lines.append(f"     verifier {v(item['verifier'])}")
        for match in item["subjects"]:
            lines.append(
                f"     subject {v(match['subject'])} sha256 {match['sha256']} "
                f"matches {v(match['artifact'])}"
            )
        lines.append(
            f"     commit {v(item['commit'] or '(not attested)')}, "
            f"manifest sha256 {v(item['manifest_sha256'] or '(not attested)')}"
        )
        if item.get("log"):
            log = item["log"]
            cosigned = f", cosigned by {', '.join(v(w) for w in log['witnesses'])}"
            lines.append(
                f"     logged as entry {log['index']} of {v(log['origin'])} at size "
                f"{log['size']}{cosigned if log['witnesses'] else ''}"
            )
    failed = sum(1 for item in outcome["attestations"] if not item["passed"])
    if failed:
        lines.append(
            f"signers: not counted: {failed} of {len(outcome['attestations'])} "
            f"attestation(s) failed ({outcome['threshold']} required, "
            f"{outcome['trusted_signers']} trusted)"
        )
    else:
        lines.append(
            f"signers: {len(outcome['distinct_signers'])} distinct trusted, "
            f"{outcome['threshold']} required, {outcome['trusted_signers']} trusted"
        )
    if outcome["threshold_failure"]:
        lines.append(f"FAIL threshold: {v(outcome['threshold_failure'])}")
    return "\n".join(lines) + "\n"


def _emit(outcome: dict[str, Any], args: argparse.Namespace) -> None:
    if args.format == "json":
        data = (json.dumps(json_safe(outcome), sort_keys=True, indent=2) + "\n").encode()
    else:
        data = visible(_text(outcome), keep_newlines=True).encode()
    if args.output is not None:
        write_atomic(args.output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
