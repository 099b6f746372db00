"""The domain model: frozen, typed values shared by every module.

Owns: the vocabulary (verdicts, difference kinds), the values that flow through the pipeline
(`SourcePin`, `Recipe`, `Manifest`, `Digest`, `Difference`, `ArtifactResult`, `CheckResult`,
`Report`) and the rules that combine artifact and check results into one verdict.
Does not own: any I/O. Nothing here reads files, runs programs or prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

REPORT_SCHEMA = "reprover/report/v1"


class Verdict(str, Enum):
    """The verdict of a whole run."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class ArtifactVerdict(str, Enum):
    """The verdict for one artifact (see README, "Artifact verdicts")."""

    IDENTICAL = "identical"
    SIGNATURE_ONLY = "signature-only"
    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    MISSING = "missing"
    UNEXPECTED = "unexpected"
    UNLISTED = "unlisted"
    INCONCLUSIVE = "inconclusive"  # could not be decided (a limit hit inside an archive)


class Kind(str, Enum):
    """What a differing byte range holds."""

    TIMESTAMP = "timestamp"
    CHECKSUM = "checksum"
    BUILD_ID = "build-id"
    DEBUG_PATH = "debug-path"
    PDB_GUID = "pdb-guid"
    SIGNATURE = "signature"
    CODE = "code"
    DATA = "data"
    DEBUG_INFO = "debug-info"
    SYMBOLS = "symbols"
    METADATA = "metadata"
    OVERLAY = "overlay"
    PADDING = "padding"
    UNPARSED = "unparsed"
    HIDDEN = "hidden"  # bytes of an archive no member or header accounts for: never allowed


class Cause(str, Enum):
    """Whether a difference is a root cause or follows from other differences."""

    ROOT = "root"
    CONSEQUENCE = "consequence"


@dataclass(frozen=True)
class Digest:
    """The SHA-256 and size of a byte string, as read."""

    sha256: str
    size: int


@dataclass(frozen=True)
class SourcePin:
    """The exact source a rebuild used.

    `signer` describes the verified commit signature, or is None when none was required.
    """

    repo: str
    commit: str
    tree: str
    committer_time: int
    signer: str | None = None


@dataclass(frozen=True)
class Recipe:
    """How to rebuild: the `[build]` table of a manifest."""

    command: tuple[str, ...] | str
    env: Mapping[str, str] = field(default_factory=dict)
    output: str = "out"
    timeout: int = 1800
    network: bool = False
    path: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """Where the source comes from: the `[source]` table of a manifest."""

    repo: str
    commit: str
    allowed_signers: Path | None = None
    gpg_keyring: Path | None = None


@dataclass(frozen=True)
class InTotoSpec:
    """The `[in-toto]` table: a layout, the keys that sign it, and a folder of links.

    `release_step` names the step whose products are the released files (None: `sign`,
    else `build`); `inspection_tools` is a folder of the verifier's own files that the
    layout's inspections run (copied next to the released files).
    """

    layout: Path
    layout_keys: tuple[Path, ...]
    links: Path
    release_step: str | None = None
    inspection_tools: Path | None = None


@dataclass(frozen=True)
class Policy:
    """Which differences an artifact may show and still pass (`[policy] allow`)."""

    allow: tuple[str, ...] = ()
    trusted_signers: tuple[Path, ...] = ()
    macho_identifier: str | None = None
    macho_flags: int | None = None
    entitlements: str | None = None  # a path in the source checkout (`[signature] entitlements`)
    entitlements_data: bytes | None = None  # its bytes, read from the pinned commit


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated `reprover.toml`. Paths are absolute.

    `release_ignore` holds the `[release] ignore` glob patterns: released files that are not
    verified (listed in the report with their digests).
    """

    path: Path
    sha256: str
    source: SourceSpec
    recipe: Recipe
    release: Path
    artifacts: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    intoto: InTotoSpec | None = None
    release_ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Disassembly:
    """The instructions overlapping a `code` difference, in each file (`0x1139: mov edx,
    0x7e6`), or why none are shown (`note`)."""

    released: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Difference:
    """One differing byte range, labelled.

    `offset` and `length` are in the released file (or the old file for `diff`).
    `region` is the most specific structure holding the range; `context` the enclosing ones,
    outermost first. `rule` names the policy rule that allowed it, when one did.
    """

    offset: int
    length: int
    region: str = "file"
    kind: Kind = Kind.DATA
    allowed: bool = False
    cause: Cause = Cause.ROOT
    context: tuple[str, ...] = ()
    symbol: str | None = None
    rule: str | None = None
    detail: str | None = None
    disassembly: Disassembly | None = None


@dataclass(frozen=True)
class ArtifactResult:
    """The outcome for one artifact path. `notes` say how it was compared (fallbacks too)."""

    path: str
    verdict: ArtifactVerdict
    released: Digest | None
    rebuilt: Digest | None
    differences: tuple[Difference, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """A trust check that ran (commit signature, in-toto layout, code signature, ...)."""

    name: str
    passed: bool
    detail: str
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildInfo:
    """How the rebuild ran, so that others can repeat it.

    `weak_isolation` is True when the user accepted a build that could see this machine.
    """

    command: tuple[str, ...] | str
    build_path: str
    env: Mapping[str, str]
    toolchain: Mapping[str, str]
    network_isolated: bool
    isolation: str
    log_path: str | None = None
    weak_isolation: bool = False


@dataclass(frozen=True)
class Report:
    """Everything a run found. Renderers turn it into bytes; it holds no wall clock.

    `snapshot` maps each trust input read before the build (`role: path`) to its SHA-256.
    `inputs` are the command-line arguments that name this run's inputs, as given (the
    manifest for `verify`, OLD and NEW for `diff`), so that a report can say how to repeat it.
    `inconclusive_reason` and `log_tail` say why a run stopped before it could decide.
    """

    command: str
    artifacts: tuple[ArtifactResult, ...]
    checks: tuple[CheckResult, ...] = ()
    source: SourcePin | None = None
    build: BuildInfo | None = None
    manifest_sha256: str | None = None
    policy: Policy | None = None
    policy_sha256: str | None = None
    strict: bool = False
    timestamp: str | None = None
    snapshot: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    inconclusive_reason: str | None = None
    log_tail: str | None = None

    @property
    def verdict(self) -> Verdict:
        """Pass only when every check passed and every artifact is acceptable.

        A run that stopped before deciding (`inconclusive_reason`) is inconclusive unless a
        check that did run already failed.
        """
        verdict = overall_verdict(self.artifacts, self.checks, strict=self.strict)
        if self.inconclusive_reason is not None and verdict is not Verdict.FAIL:
            return Verdict.INCONCLUSIVE
        return verdict


ACCEPTED = frozenset(
    {ArtifactVerdict.IDENTICAL, ArtifactVerdict.SIGNATURE_ONLY, ArtifactVerdict.EQUIVALENT}
)


def artifact_passes(result: ArtifactResult, *, strict: bool) -> bool:
    """Whether one artifact result is acceptable.

    `strict` accepts only `identical` and treats `unexpected` as a failure.
    """
    if strict:
        return result.verdict is ArtifactVerdict.IDENTICAL
    return result.verdict in ACCEPTED or result.verdict is ArtifactVerdict.UNEXPECTED


def overall_verdict(
    artifacts: tuple[ArtifactResult, ...], checks: tuple[CheckResult, ...], *, strict: bool
) -> Verdict:
    """Combine artifact and check results.

    A failed check fails the run; no artifacts at all is never a pass. An `inconclusive`
    artifact makes the run inconclusive unless another artifact or check failed.
    """
    if not all(c.passed for c in checks):
        return Verdict.FAIL
    if not artifacts or all(a.verdict is ArtifactVerdict.UNEXPECTED for a in artifacts):
        return Verdict.INCONCLUSIVE
    undecided = [a for a in artifacts if a.verdict is ArtifactVerdict.INCONCLUSIVE]
    if all(artifact_passes(a, strict=strict) for a in artifacts if a not in undecided):
        return Verdict.INCONCLUSIVE if undecided else Verdict.PASS
    return Verdict.FAIL
