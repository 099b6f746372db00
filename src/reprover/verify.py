"""The verification pipeline: the one orchestrator.

`verify()` runs these steps, in this order, and its body reads like them:

1. load and validate the manifest;
2. list and hash the released artifacts (bad input fails here, before any work; a release
   that changes while the build runs fails the `release-integrity` check);
3. pin the source: clone, check out the exact commit, verify its signature if required;
4. rebuild it hermetically at the fixed build path;
5. hash every released and rebuilt artifact, in parallel;
6. compare each pair and label every differing byte; apply the policy;
7. verify the in-toto supply chain when the manifest has an `[in-toto]` table;
8. collect the trust checks (commit signature, in-toto, ...) into the report.

It is the one place that turns a failed trust check into a finding in the report; errors that
make a verdict impossible propagate to the caller (the CLI maps them to exit codes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reprover import build, intoto, manifest, policy, source
from reprover.compare.pool import Pair, compare_pairs
from reprover.digest import hash_files
from reprover.errors import InputError, VerificationError
from reprover.fsutil import contained
from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    BuildInfo,
    CheckResult,
    InTotoSpec,
    Manifest,
    Report,
    SourcePin,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProgressEvent:
    """A structured progress update, for a live display (see `reprover.cli.progress`).

    A `message` starts a `stage` ("clone", "build", "hash", "compare", "in-toto"), with a
    `total` when its size is known (bytes for "hash", artifacts for "compare"); updates within
    the stage carry no message, `advance` (units done since the last update) and/or `detail`
    (for "build": the last line of its log). Events may arrive from several threads.
    """

    stage: str
    message: str = ""
    total: int | None = None
    advance: int = 0
    detail: str | None = None


Events = Callable[[ProgressEvent], None]


def _step(progress: Progress, events: Events | None, stage: str, message: str) -> None:
    progress(message)
    if events is not None:
        events(ProgressEvent(stage, message))


@dataclass(frozen=True)
class Options:
    """How to run a verification, beyond what the manifest says."""

    strict: bool = False
    allow_network: bool = False
    build_path: Path | None = None
    keep_build: bool = False
    jobs: int = 1


@dataclass(frozen=True)
class Rebuild:
    """A finished rebuild: the pinned source, how it ran, and where its outputs are."""

    pin: SourcePin
    info: BuildInfo
    checkout: Path
    output: Path


def verify(
    manifest_path: Path,
    options: Options,
    progress: Progress = lambda _: None,
    *,
    events: Events | None = None,
) -> Report:
    """Verify the release a manifest describes; see the module docstring for the steps.

    `progress` receives one message per step; `events`, when given, also receives structured
    updates within steps (bytes hashed, artifacts compared, the build's last log line).

    Raises:
        InputError: the manifest or the release is malformed or unreadable.
        BuildError: the source cannot be built as the recipe says.
        ToolMissingError: git or an isolation tool is missing.
    """
    spec = manifest.load(manifest_path)
    policy.validate_rules(spec.policy.allow)
    released = released_artifacts(spec)
    before = hash_files(released.values())
    checks: list[CheckResult] = []
    with rebuilt_source(spec, options, progress, checks, events=events) as rebuild:
        if rebuild is None:
            return _report(spec, options=options, artifacts=(), checks=checks, pin=None, info=None)
        _step(progress, events, "compare", f"comparing {len(released)} artifact(s)")
        results = compare_release(spec, released, rebuild.output, events=events, jobs=options.jobs)
    changed = [r.path for r in results if r.released and r.released != before[released[r.path]]]
    if changed:
        checks.append(release_changed_check(changed))
    if spec.intoto is not None:
        _step(progress, events, "in-toto", "verifying the in-toto supply chain")
        checks.append(intoto_check(spec.intoto, released))
    return _report(
        spec, options=options, artifacts=results, checks=checks, pin=rebuild.pin, info=rebuild.info
    )


@contextmanager
def rebuilt_source(
    spec: Manifest,
    options: Options,
    progress: Progress,
    checks: list[CheckResult],
    *,
    events: Events | None = None,
) -> Iterator[Rebuild | None]:
    """Steps 3 and 4: pin the source and rebuild it; yields None when the source check failed.

    The build path is reserved for the duration of the `with` block and removed afterwards
    unless `options.keep_build`.

    Raises:
        InputError, BuildError, ToolMissingError: as `verify`.
    """
    path = options.build_path or Path(spec.recipe.path or build.DEFAULT_BUILD_PATH)
    _refuse_release_inside(spec.release, path)
    isolation = build.find_isolation(
        network=spec.recipe.network, allow_network=options.allow_network
    )
    with build.build_path(path, keep=options.keep_build) as checkout:
        _step(progress, events, "clone", f"cloning {spec.source.repo} at {spec.source.commit[:12]}")
        try:
            pin = source.checkout(spec.source, checkout)
        except VerificationError as exc:
            checks.append(CheckResult("source-signature", False, exc.message))
            yield None
            return
        if pin.signer is not None:
            checks.append(CheckResult("source-signature", True, f"commit signed by {pin.signer}"))
        _step(progress, events, "build", f"building in {checkout} ({isolation.name})")
        on_output = (lambda line: events(ProgressEvent("build", detail=line))) if events else None
        info = build.run(
            spec.recipe,
            checkout,
            log_path=path.with_name(path.name + ".log"),
            source_date_epoch=pin.committer_time,
            isolation=isolation,
            on_output=on_output,
        )
        yield Rebuild(pin, info, checkout, checkout / spec.recipe.output)


def release_changed_check(paths: list[str]) -> CheckResult:
    """A failed check: released files changed while the build ran (a hostile build wrote them)."""
    return CheckResult(
        "release-integrity",
        False,
        "released artifacts changed during the build; the comparison cannot be trusted",
        tuple(paths),
    )


def intoto_check(spec: InTotoSpec, released: dict[str, Path]) -> CheckResult:
    """Step 7: the in-toto chain as a check; a chain that fails is a failed check.

    Raises:
        InputError: the layout, a layout key or the links folder is malformed or unreadable.
        InconclusiveError: an inspection timed out.
    """
    try:
        summary = intoto.verify_chain(spec, released)
    except VerificationError as exc:
        return CheckResult("in-toto", False, exc.message, tuple((exc.details or "").splitlines()))
    return CheckResult("in-toto", True, summary)


def released_artifacts(spec: Manifest) -> dict[str, Path]:
    """Step 2: map each artifact's relative path to its released file.

    Raises:
        InputError: the release path is missing or empty, or an artifact is missing, escapes
            the release folder, or is not a regular file.
    """
    release = spec.release
    if not release.exists():
        raise InputError(
            f"release path {release} does not exist",
            hint="set [release] path to the folder (or file) of released artifacts",
        )
    if release.is_file():
        if spec.artifacts:
            raise InputError("[[artifact]] entries need [release] path to be a folder")
        return {release.name: release}
    if spec.artifacts:
        names = list(spec.artifacts)
    else:
        names = sorted(
            p.relative_to(release).as_posix()
            for p in release.rglob("*")
            if p.is_file() or p.is_symlink()
        )
    if not names:
        raise InputError(f"release folder {release} holds no files", hint="nothing to verify")
    files = {}
    for name in names:
        path = contained(release, name, what="released artifact")
        if not path.is_file():
            raise InputError(f"released artifact {name} is missing from {release}")
        files[name] = path
    return files


def compare_release(
    spec: Manifest,
    released: dict[str, Path],
    output: Path,
    *,
    events: Events | None = None,
    jobs: int = 1,
) -> tuple[ArtifactResult, ...]:
    """Steps 5 and 6: hash and compare every artifact; list unexpected rebuilt files.

    Differing pairs are compared in up to `jobs` processes; the results keep the order of
    `released`, so the report is the same whatever `jobs` is.

    Raises:
        InputError: a file cannot be read or a rebuilt path escapes the output folder.
        InconclusiveError: a comparison process died.
    """
    rebuilt: dict[str, Path] = {}
    if output.is_file() and len(released) == 1:
        rebuilt = {next(iter(released)): output}
    elif output.is_dir():
        for name in released:
            candidate = contained(output, name, what="rebuilt artifact")
            if candidate.is_file():
                rebuilt[name] = candidate
    to_hash = [*released.values(), *rebuilt.values()]
    on_bytes = None
    if events is not None:
        total = sum(p.stat().st_size for p in to_hash)
        events(ProgressEvent("hash", f"hashing {len(to_hash)} file(s)", total=total))
        on_bytes = lambda n: events(ProgressEvent("hash", advance=n))  # noqa: E731
    digests = hash_files(to_hash, on_bytes=on_bytes)
    pairs = [
        Pair(name, path, rebuilt[name], (digests[path], digests[rebuilt[name]]))
        for name, path in released.items()
        if name in rebuilt
    ]
    if events is not None:
        events(ProgressEvent("compare", "comparing byte for byte", total=len(pairs)))
    on_done = (
        (lambda name: events(ProgressEvent("compare", advance=1, detail=name))) if events else None
    )
    compared = {
        r.path: r
        for r in compare_pairs(pairs, spec.policy, judge=policy.judge, jobs=jobs, on_done=on_done)
    }
    results = [
        compared.get(name) or ArtifactResult(name, ArtifactVerdict.MISSING, digests[path], None)
        for name, path in released.items()
    ]
    if not spec.artifacts and output.is_dir():
        for path in sorted(p for p in output.rglob("*") if p.is_file()):
            name = path.relative_to(output).as_posix()
            if name not in released:
                results.append(
                    ArtifactResult(name, ArtifactVerdict.UNEXPECTED, None, hash_files([path])[path])
                )
    return tuple(results)


def _refuse_release_inside(release: Path, build_path: Path) -> None:
    release, build_path = release.resolve(), build_path.resolve()
    if release == build_path or build_path in release.parents:
        raise InputError(
            f"the release path {release} lies inside the build path {build_path}",
            hint="the released artifacts must come from outside the rebuild",
        )


def _report(
    spec: Manifest,
    *,
    options: Options,
    artifacts: tuple[ArtifactResult, ...],
    checks: list[CheckResult],
    pin: SourcePin | None,
    info: BuildInfo | None,
) -> Report:
    return Report(
        command="verify",
        artifacts=artifacts,
        checks=tuple(checks),
        source=pin,
        build=info,
        manifest_sha256=spec.sha256,
        policy=spec.policy,
        policy_sha256=policy.policy_digest(spec.policy),
        strict=options.strict,
    )
