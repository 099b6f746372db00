"""The in-toto Statement v1 a verification run signs, as plain dicts and canonical bytes.

Owns: building the Statement (subjects = released artifacts with their sha256; predicate = SLSA
Verification Summary v1), reprover's rebuild details as an extension field of that predicate
(the field name is the URI `REBUILD_PREDICATE`, as the VSA parsing rules allow), the canonical
JSON bytes that get signed, and validating a Statement read back (`parse_statement`).
Does not own: signing (see `reprover.attest.dsse` and `reprover.attest.sigstore_sign`) or
deciding whether an attestation is trusted (see `reprover.attest.check`).

The rebuild extension (`https://reprover.dev/rebuild/v1`) holds:

- `verdict` (`pass` | `fail`), `strict`;
- `source`: `repo` (a URL, or a path relative to the manifest's folder: never a machine-local
  absolute path), `commit`, `tree`, `committerTime`, `signer` (`tree` and the rest are null
  when the source could not be pinned);
- `recipe`: `sha256` of the canonical JSON of the manifest's `[build]` table (`command`, `env`,
  `network`, `output`, `path`, `timeout`) and `buildPath` actually used;
- `toolchain` (name -> version), `isolation`, `networkIsolated`;
- `manifestSha256`, `policySha256`, `allow` (the policy's allowed regions);
- `artifacts[]`: `path`, `verdict`, `released` and `rebuilt` (`sha256`, `size` or null),
  `differences` (count) and `ledgerSha256`, the sha256 of the canonical JSON of the
  differences list (fields as in the JSON report);
- `checks[]`: `name`, `passed`, `detail`.

Canonical JSON here means: keys sorted, separators `,` and `:`, UTF-8, no trailing newline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reprover import __version__
from reprover.errors import InconclusiveError, InputError, VerificationError
from reprover.model import Difference, Digest, Manifest, Recipe, Report, Verdict

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_PREDICATE = "https://slsa.dev/verification_summary/v1"
REBUILD_PREDICATE = "https://reprover.dev/rebuild/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
VERIFIER_ID = "https://reprover.dev/verifier/v1"
# A custom SlsaResult (the VSA spec allows values that do not start with "SLSA_"): the release
# was rebuilt independently from its pinned source and matched byte for byte or by policy.
REPRODUCED_LEVEL = "REPROVER_REPRODUCED"
PASSED, FAILED = "PASSED", "FAILED"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of `value` (sorted keys, compact, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_json(value: Any) -> str:
    """The sha256 of `canonical_json(value)`, hex."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def recipe_digest(recipe: Recipe) -> str:
    """The sha256 of the canonical JSON of a manifest's `[build]` table."""
    command = recipe.command if isinstance(recipe.command, str) else list(recipe.command)
    return sha256_json(
        {
            "command": command,
            "env": dict(recipe.env),
            "network": recipe.network,
            "output": recipe.output,
            "path": recipe.path,
            "timeout": recipe.timeout,
        }
    )


def ledger_digest(differences: Sequence[Difference]) -> str:
    """The sha256 of the canonical JSON of a differences list (the artifact's ledger)."""
    return sha256_json(
        [
            {
                "offset": d.offset,
                "length": d.length,
                "region": d.region,
                "kind": d.kind.value,
                "allowed": d.allowed,
                "cause": d.cause.value,
                "context": list(d.context),
                "symbol": d.symbol,
                "rule": d.rule,
                "detail": d.detail,
            }
            for d in differences
        ]
    )


def released_subjects(report: Report) -> dict[str, Digest]:
    """The released artifacts of a report with their digests (rebuilt-only files excluded)."""
    return {a.path: a.released for a in report.artifacts if a.released is not None}


def input_attestations(manifest: Manifest) -> list[dict[str, Any]]:
    """ResourceDescriptors (uri, digest) of the in-toto layout and links the manifest names.

    Raises:
        InputError: a layout or link file cannot be read.
    """
    if manifest.intoto is None:
        return []
    base = manifest.path.parent
    files = [manifest.intoto.layout]
    links = manifest.intoto.links
    if links.is_dir():
        files.extend(sorted(p for p in links.iterdir() if p.is_file() and p.suffix == ".link"))
    elif links.is_file():
        files.append(links)
    return [
        {"uri": _file_uri(path, base), "digest": {"sha256": _sha256_file(path)}} for path in files
    ]


@dataclass(frozen=True)
class StatementInputs:
    """What a Statement says beyond the report: taken from the manifest, or given.

    `repo` is written as given: a URL, or a path relative to the manifest's folder, never a
    machine-local absolute path. `release_name` names the release when it has several
    artifacts (the release folder's name).
    """

    subjects: Mapping[str, Digest]
    recipe: Recipe
    repo: str
    commit: str
    manifest_name: str
    inputs: Sequence[Mapping[str, Any]] = ()
    release_name: str = "release"


def inputs_from_manifest(
    manifest: Manifest, report: Report, subjects: Mapping[str, Digest] | None = None
) -> StatementInputs:
    """Collect the Statement inputs from a loaded manifest and the report of its run.

    `subjects` defaults to the released artifacts in the report; pass them when the run stopped
    before hashing (for example, the commit signature failed).

    Raises:
        InputError: a layout or link file cannot be read.
    """
    return StatementInputs(
        subjects=dict(subjects if subjects is not None else released_subjects(report)),
        recipe=manifest.recipe,
        repo=portable_repo(manifest.source.repo, manifest.path.parent),
        commit=manifest.source.commit,
        manifest_name=manifest.path.name,
        inputs=input_attestations(manifest),
        release_name=manifest.release.name,
    )


def portable_repo(repo: str, base: Path) -> str:
    """A repository as a statement may name it: a URL as is, a local path relative to `base`.

    A signed statement must not carry a machine-local absolute path: it means nothing to
    others and tells them about the verifier's machine.
    """
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    return Path(os.path.relpath(Path(repo).absolute(), base.absolute())).as_posix()


def build_statement(
    report: Report, inputs: StatementInputs, *, time_verified: datetime | None = None
) -> dict[str, Any]:
    """The in-toto Statement v1 (VSA v1 predicate + rebuild extension) for a finished run.

    A failed run is attested like a passed one, with `verificationResult` FAILED.

    Raises:
        InconclusiveError: the run was inconclusive (nothing to attest) or has no released
            artifact to name as a subject.
    """
    verdict = report.verdict
    if verdict is Verdict.INCONCLUSIVE:
        raise InconclusiveError("the verification was inconclusive; no attestation is made")
    if not inputs.subjects:
        raise InconclusiveError("no released artifact to attest")
    result = PASSED if verdict is Verdict.PASS else FAILED
    when = (time_verified or datetime.now(timezone.utc)).astimezone(timezone.utc)
    policy: dict[str, Any] = {
        "uri": inputs.manifest_name,
        "digest": {"sha256": report.manifest_sha256 or ""},
    }
    if report.policy_sha256:
        policy["annotations"] = {"reprover.policySha256": report.policy_sha256}
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {"reprover": __version__}},
        "timeVerified": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "resourceUri": resource_uri(inputs),
        "policy": policy,
        "inputAttestations": [dict(i) for i in inputs.inputs],
        "verificationResult": result,
        "verifiedLevels": [REPRODUCED_LEVEL] if result == PASSED else [FAILED],
        "dependencyLevels": {},
        "slsaVersion": "1.0",
        REBUILD_PREDICATE: _rebuild(report, inputs),
    }
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": digest.sha256}}
            for name, digest in sorted(inputs.subjects.items())
        ],
        "predicateType": VSA_PREDICATE,
        "predicate": predicate,
    }
    parse_statement(canonical_json(statement))  # our own output must pass our own validation
    return statement


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The exact bytes to sign and embed: the canonical JSON of the Statement."""
    return canonical_json(statement)


def parse_statement(payload: bytes) -> dict[str, Any]:
    """Parse and validate a Statement v1 with a VSA v1 predicate (result not yet judged).

    Duplicate JSON keys are refused: two parsers must never read two different statements.

    Raises:
        VerificationError: the payload is not JSON, not a Statement v1, not a VSA v1, or a
            required field is missing or of the wrong type.
    """
    try:
        data = json.loads(payload.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"the signed payload is not a JSON statement: {exc}") from exc
    if not isinstance(data, dict):
        raise VerificationError("the signed payload is not a JSON object")
    if data.get("_type") != STATEMENT_TYPE:
        raise VerificationError(
            f"statement _type is {data.get('_type')!r}, expected {STATEMENT_TYPE!r}"
        )
    subjects = data.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerificationError("statement has no subject")
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digest, dict) or not all(isinstance(v, str) for v in digest.values()):
            raise VerificationError(f"statement subject {subject!r} has no digest set")
        if "name" in subject and not isinstance(subject["name"], str):
            raise VerificationError(f"statement subject name {subject['name']!r} is not a string")
    if data.get("predicateType") != VSA_PREDICATE:
        raise VerificationError(
            f"predicateType is {data.get('predicateType')!r}, expected {VSA_PREDICATE!r}"
        )
    predicate = data.get("predicate")
    if not isinstance(predicate, dict):
        raise VerificationError("statement has no predicate object")
    _validate_vsa(predicate)
    return data


def _validate_vsa(predicate: Mapping[str, Any]) -> None:
    verifier = predicate.get("verifier")
    if not isinstance(verifier, dict) or not isinstance(verifier.get("id"), str):
        raise VerificationError("VSA verifier.id is missing")
    for key in ("timeVerified", "resourceUri"):
        if not isinstance(predicate.get(key), str):
            raise VerificationError(f"VSA {key} is missing or not a string")
    policy = predicate.get("policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("uri"), str):
        raise VerificationError("VSA policy.uri is missing")
    if "digest" in policy and not isinstance(policy["digest"], dict):
        raise VerificationError("VSA policy.digest is not a digest set")
    if predicate.get("verificationResult") not in (PASSED, FAILED):
        raise VerificationError(
            f"VSA verificationResult is {predicate.get('verificationResult')!r}, "
            "expected PASSED or FAILED"
        )
    levels = predicate.get("verifiedLevels")
    if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
        raise VerificationError("VSA verifiedLevels is not an array of strings")
    inputs = predicate.get("inputAttestations", [])
    if not isinstance(inputs, list) or not all(
        isinstance(i, dict) and isinstance(i.get("digest"), dict) for i in inputs
    ):
        raise VerificationError("VSA inputAttestations entries need a digest")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _rebuild(report: Report, inputs: StatementInputs) -> dict[str, Any]:
    pin = report.source
    build = report.build
    return {
        "verdict": report.verdict.value,
        "strict": report.strict,
        "source": {
            "repo": inputs.repo,
            "commit": pin.commit if pin else inputs.commit,
            "tree": pin.tree if pin else None,
            "committerTime": pin.committer_time if pin else None,
            "signer": pin.signer if pin else None,
        },
        "recipe": {
            "sha256": recipe_digest(inputs.recipe),
            "buildPath": build.build_path if build else None,
        },
        "toolchain": dict(build.toolchain) if build else {},
        "isolation": build.isolation if build else None,
        "networkIsolated": build.network_isolated if build else None,
        "manifestSha256": report.manifest_sha256,
        "policySha256": report.policy_sha256,
        "allow": list(report.policy.allow) if report.policy else [],
        "artifacts": [
            {
                "path": a.path,
                "verdict": a.verdict.value,
                "released": _digest(a.released),
                "rebuilt": _digest(a.rebuilt),
                "differences": len(a.differences),
                "ledgerSha256": ledger_digest(a.differences),
            }
            for a in report.artifacts
        ],
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in report.checks],
    }


def _digest(digest: Digest | None) -> dict[str, Any] | None:
    return None if digest is None else {"sha256": digest.sha256, "size": digest.size}


def resource_uri(inputs: StatementInputs) -> str:
    """The VSA `resourceUri`: the artifact verified (a relative URI reference, its name).

    With one subject, its name; with several, the release folder's name and a slash (the
    subjects list each file).
    """
    names = sorted(inputs.subjects)
    name = names[0] if len(names) == 1 else f"{inputs.release_name}/"
    return quote(name, safe="/@:+-._~")


def _file_uri(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                sha.update(block)
    except OSError as exc:
        raise InputError(f"cannot read in-toto input {path}: {exc.strerror or exc}") from exc
    return sha.hexdigest()
