"""Helpers for the attestation tests: real keys, real reports, real envelopes."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from reprover import keys
from reprover.attest import dsse, statement
from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    BuildInfo,
    CheckResult,
    Difference,
    Digest,
    Kind,
    Policy,
    Recipe,
    Report,
    SourcePin,
)

COMMIT = "1" * 40
OTHER_COMMIT = "2" * 40
WHEN = datetime(2026, 2, 1, 12, 0, 0, tzinfo=timezone.utc)


def digest_of(path: Path) -> Digest:
    data = path.read_bytes()
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def report_for(
    artifact: Path,
    *,
    passed: bool = True,
    commit: str = COMMIT,
    manifest_sha256: str | None = None,
) -> Report:
    """A report as `reprover verify` makes it, for one released file (identical or not)."""
    released = digest_of(artifact)
    if passed:
        result = ArtifactResult(artifact.name, ArtifactVerdict.IDENTICAL, released, released)
    else:
        rebuilt = Digest("f" * 64, released.size)
        diff = Difference(0x1100, 1, region="elf.section[.text]", kind=Kind.CODE)
        result = ArtifactResult(
            artifact.name, ArtifactVerdict.DIFFERENT, released, rebuilt, differences=(diff,)
        )
    return Report(
        command="verify",
        artifacts=(result,),
        checks=(CheckResult("source-signature", True, "commit signed by ada"),),
        source=SourcePin("https://git.example/engine.git", commit, "3" * 40, 1769947200, "ada"),
        build=BuildInfo(
            command=("make",),
            build_path="/tmp/reprover-build",
            env={"SOURCE_DATE_EPOCH": "1769947200"},
            toolchain={"cc": "gcc 12.2.0"},
            network_isolated=True,
            isolation="unshare",
        ),
        manifest_sha256=manifest_sha256 or hashlib.sha256(commit.encode()).hexdigest(),
        policy=Policy(),
        policy_sha256="4" * 64,
    )


def statement_bytes(report: Report, *, commit: str = COMMIT) -> bytes:
    inputs = statement.StatementInputs(
        subjects=statement.released_subjects(report),
        recipe=Recipe(command=("make",)),
        repo="https://git.example/engine.git",
        commit=commit,
        manifest_name="reprover.toml",
    )
    return statement.statement_bytes(statement.build_statement(report, inputs, time_verified=WHEN))


def new_key(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return keys.generate(name, folder)


def sign_file(out: Path, payload: bytes, *private: Path) -> Path:
    out.write_bytes(dsse.sign_envelope(payload, [keys.load_signer(p) for p in private]))
    return out
