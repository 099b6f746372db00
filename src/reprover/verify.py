"""The verification pipeline: the one orchestrator.

`verify()` runs these steps, in this order, and its body reads like them:

1. load and validate the manifest (read once, kept in memory); list the released files that
   are not artifacts (`unlisted` fails; `[release] ignore` ones are listed with digests);
2. take the trust snapshot (`reprover.snapshot`): copy and hash the released artifacts and
   every trust file into a private folder; every later step reads these copies, never the
   original paths (bad input fails here, before any work);
3. pin the source: clone, check out the exact commit, verify its signature if required;
4. rebuild it in the sandbox (`reprover.sandbox`), its checkout bound at the fixed build path;
5. take the rebuilt artifacts without following links (`reprover.outputs`), hashing them;
6. compare each pair and label every differing byte; apply the policy;
7. verify the in-toto supply chain when the manifest has an `[in-toto]` table;
8. collect the trust checks (commit signature, in-toto, snapshot unchanged, and, under weak
   isolation, the original release unchanged) into the report.

It is the one place that turns a failed trust check into a finding in the report; errors that
make a verdict impossible propagate to the caller (the CLI maps them to exit codes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path

from reprover import build, intoto, manifest, outputs, policy, sandbox, snapshot, source, workarea
from reprover.compare.pool import Pair, compare_groups
from reprover.digest import hash_files
from reprover.errors import InputError, VerificationError
from reprover.fsutil import contained, input_path, list_folder, regular_file
from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    BuildInfo,
    CheckResult,
    Digest,
    InTotoSpec,
    Manifest,
    Policy,
    Report,
    SourcePin,
)

Progress = Callable[[str], None]
MEMBER_SEPARATOR = "!"  # outer!inner names archive members in reports


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
    allow_weak_isolation: bool = False
    jobs: int = 1


@dataclass(frozen=True)
class Rebuild:
    """A finished rebuild: the pinned source, how it ran, and its outputs as taken.

    `checkout` is the private host folder of the source (bound at `info.build_path` in the
    sandbox); `outputs` holds private copies of the rebuilt artifacts and their digests.
    """

    pin: SourcePin
    info: BuildInfo
    checkout: Path
    outputs: outputs.Outputs
    policy: Policy


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
    originals = released_artifacts(spec)
    unlisted, ignored = unverified_results(spec)
    checks: list[CheckResult] = [ignored] if ignored is not None else []
    with workarea.private_folder("reprover-run-", keep=options.keep_build) as work:
        message = f"hashing {len(originals)} released file(s)"
        progress(message)
        if events is not None:
            total = sum(p.stat().st_size for p in originals.values())
            events(ProgressEvent("hash", message, total=total))
        snap = snapshot.take(spec, originals, work / "snapshot", on_bytes=_bytes_events(events))
        names = list(snap.released)
        with rebuilt_source(
            snap.manifest,
            options,
            progress,
            checks,
            events=events,
            work=work,
            released=snap.digests,
        ) as rebuild:
            if rebuild is None:
                report = _report(spec, options, unlisted, checks, None, None, snap.inputs)
                return replace(report, inputs=(str(manifest_path),))
            _step(progress, events, "compare", f"comparing {len(names)} artifact(s)")
            results = compare_release(
                replace(snap.manifest, policy=rebuild.policy),
                snap.released,
                snap.digests,
                rebuild,
                events=events,
                jobs=options.jobs,
            )
        if rebuild.outputs.problem is not None:
            checks.append(CheckResult("build-outputs", False, rebuild.outputs.problem))
        if snap.manifest.intoto is not None:
            _step(progress, events, "in-toto", "verifying the in-toto supply chain")
            checks.append(intoto_check(snap.manifest.intoto, snap.released))
        if (changed := snap.changed()) is not None:
            checks.append(changed)
    if rebuild.info.weak_isolation:
        after = hash_files(originals.values())
        moved = [n for n, p in originals.items() if after[p] != snap.digests[n]]
        if moved:
            checks.append(release_changed_check(moved))
    report = _report(
        spec, options, results + unlisted, checks, rebuild.pin, rebuild.info, snap.inputs
    )
    return replace(report, inputs=(str(manifest_path),))  # as given: the repeat command


def _bytes_events(events: Events | None) -> Callable[[int], None] | None:
    if events is None:
        return None
    return lambda n: events(ProgressEvent("hash", advance=n))


@contextmanager
def rebuilt_source(
    spec: Manifest,
    options: Options,
    progress: Progress,
    checks: list[CheckResult],
    *,
    events: Events | None = None,
    work: Path | None = None,
    released: dict[str, Digest] | None = None,
) -> Iterator[Rebuild | None]:
    """Steps 3 to 5: pin the source, rebuild it, take its outputs; None if the source failed.

    Everything happens in `work` (a private folder; a new one, removed afterwards unless
    `options.keep_build`, when not given). `released` names the artifacts to take from the output
    folder; when None, every regular file in it is taken.

    Raises:
        InputError, BuildError, ToolMissingError: as `verify`.
    """
    if work is None:
        with workarea.private_folder("reprover-run-", keep=options.keep_build) as folder:
            with rebuilt_source(
                spec, options, progress, checks, events=events, work=folder, released=released
            ) as rebuild:
                yield rebuild
            return
    path = options.build_path or Path(spec.recipe.path or build.DEFAULT_BUILD_PATH)
    isolation = sandbox.find_isolation(
        network=spec.recipe.network,
        allow_network=options.allow_network,
        allow_weak=options.allow_weak_isolation,
    )
    checkout = work / "checkout"
    (work / "home").mkdir(mode=0o700)
    box = sandbox.prepare(
        isolation,
        checkout=checkout,
        build_path=path,
        home=work / "home",
        hidden=(spec.release, spec.path.parent, Path.home(), work),
    )
    _step(progress, events, "clone", f"cloning {spec.source.repo} at {spec.source.commit[:12]}")
    try:
        pin = source.checkout(spec.source, checkout)
    except VerificationError as exc:
        checks.append(CheckResult("source-signature", False, exc.message))
        yield None
        return
    if pin.signer is not None:
        checks.append(CheckResult("source-signature", True, f"commit signed by {pin.signer}"))
    pins = spec.policy
    if pins.entitlements is not None:  # read before the build can touch the checkout
        pins = replace(
            pins, entitlements_data=source.read_committed(checkout, pin.commit, pins.entitlements)
        )
    _step(progress, events, "build", f"building in {path} ({isolation.name})")
    on_output = (lambda line: events(ProgressEvent("build", detail=line))) if events else None
    log_folder = workarea.make_private("reprover-log-")
    info = build.run(
        spec.recipe,
        box,
        log_path=log_folder / "build.log",
        source_date_epoch=pin.committer_time,
        on_output=on_output,
    )
    info = replace(info, weak_isolation=not isolation.strong)
    progress(f"build log: {info.log_path}")
    limits = {n: 4 * d.size + (64 << 20) for n, d in (released or {}).items()}
    names = list(released) if released is not None else None
    taken = outputs.take(
        checkout, spec.recipe.output, names, work / "rebuilt", list_others=True, limits=limits
    )
    if options.keep_build:
        progress(f"the checkout and outputs are kept in {work}")
    yield Rebuild(pin, info, checkout, taken, pins)


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
            the release folder, loops, is not a regular file (FIFO, device, socket), or its
            name holds `!` (the separator of archive members: `a.zip!b` would be read as
            member `b` of `a.zip`, in reports and attestation subjects alike).
    """
    release = spec.release
    if not release.exists():
        raise InputError(
            f"release path {release} does not exist",
            hint="set [release] path to the folder (or file) of released artifacts",
        )
    input_path(release, what="release path")
    if release.is_file():
        if spec.artifacts:
            raise InputError("[[artifact]] entries need [release] path to be a folder")
        _refuse_member_separator(release.name)
        return {release.name: release}
    if spec.artifacts:
        names = list(spec.artifacts)
    else:
        names = [n for n in _release_files(release) if not _ignored(n, spec.release_ignore)]
    if not names:
        raise InputError(f"release folder {release} holds no files", hint="nothing to verify")
    files = {}
    for name in names:
        _refuse_member_separator(name)
        path = contained(release, name, what="released artifact")
        if not path.exists() and not path.is_symlink():
            raise InputError(f"released artifact {name} is missing from {release}")
        regular_file(path, what="released artifact")
        files[name] = path
    return files


def _refuse_member_separator(name: str) -> None:
    if MEMBER_SEPARATOR in name:
        raise InputError(
            f"released artifact {name!r} has {MEMBER_SEPARATOR!r} in its name, the separator "
            "reprover uses for archive members ('setup.zip!engine.dll'): its results could "
            "not be told from a member's",
            hint="rename the released file (or leave it out of the release folder)",
        )


def unverified_results(
    spec: Manifest,
) -> tuple[tuple[ArtifactResult, ...], CheckResult | None]:
    """Step 2: the released files that are not artifacts, hashed before the build.

    With `[[artifact]]`, every other file under the release folder is `unlisted` (which
    fails), unless a `[release] ignore` pattern matches it; ignored files (in either mode) are
    listed with their digests in a passed `release-ignored` check. The folder is listed as
    everywhere (`_release_files`): symlinks followed only inside it.

    Raises:
        InputError: a file cannot be read, or the folder holds what `_release_files` refuses.
    """
    if not spec.release.is_dir():
        return (), None
    listed = set(spec.artifacts)
    unlisted: list[str] = []
    ignored: list[str] = []
    for name in _release_files(spec.release):
        if name in listed:
            continue
        if _ignored(name, spec.release_ignore):
            ignored.append(name)
        elif spec.artifacts:
            unlisted.append(name)
    paths = {n: spec.release / n for n in [*unlisted, *ignored]}
    digests = hash_files(list(paths.values()))
    note = "released but not listed in [[artifact]] nor matched by [release] ignore"
    results = tuple(
        ArtifactResult(name, ArtifactVerdict.UNLISTED, digests[paths[name]], None, notes=(note,))
        for name in unlisted
    )
    if not ignored:
        return results, None
    findings = tuple(
        f"{name}: sha256 {digests[paths[name]].sha256}, {digests[paths[name]].size} bytes"
        for name in ignored
    )
    check = CheckResult(
        "release-ignored",
        True,
        f"{len(ignored)} released file(s) matched [release] ignore and were not verified",
        findings,
    )
    return results, check


def _release_files(release: Path) -> list[str]:
    """Every file under the release folder, relative, sorted; symlinks followed only inside.

    Raises:
        InputError: a FIFO, device, socket, symlink loop or link out of the folder is in it
            (refused, never skipped).
    """
    return list(list_folder(release, what="released file"))


def _ignored(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def compare_release(
    spec: Manifest,
    released: dict[str, Path],
    digests: dict[str, Digest],
    rebuild: Rebuild,
    *,
    events: Events | None = None,
    jobs: int = 1,
) -> tuple[ArtifactResult, ...]:
    """Step 6: compare every artifact (private copies, hashed once); list unexpected files.

    A released artifact whose rebuilt counterpart was refused (a link, a FIFO, a hard link...)
    is `missing`, with the reason in its notes. Differing pairs are compared in up to `jobs`
    processes; the results keep the order of `released`, so the report is the same whatever
    `jobs` is.

    Raises:
        InputError: a file cannot be read.
        InconclusiveError: a comparison process died.
    """
    taken = rebuild.outputs
    pairs = [
        Pair(name, path, taken.files[name], (digests[name], taken.digests[name]))
        for name, path in released.items()
        if name in taken.files
    ]
    if events is not None:
        events(ProgressEvent("compare", "comparing byte for byte", total=len(pairs)))
    on_done = (
        (lambda name: events(ProgressEvent("compare", advance=1, detail=name))) if events else None
    )
    groups = compare_groups(pairs, spec.policy, judge=policy.judge, jobs=jobs, on_done=on_done)
    compared = {group[0].path: group for group in groups}
    results = [
        result
        for name in released
        for result in compared.get(name) or (_missing(name, digests[name], taken),)
    ]
    if not spec.artifacts:
        for name, digest in sorted(taken.unexpected.items()):
            results.append(ArtifactResult(name, ArtifactVerdict.UNEXPECTED, None, digest))
    return tuple(results)


def _missing(name: str, digest: Digest, taken: outputs.Outputs) -> ArtifactResult:
    """A released artifact without a rebuilt counterpart; a refusal's reason in its notes."""
    reason = taken.refused.get(name) or taken.problem
    notes = (f"refused: {reason}",) if reason and "does not exist" not in reason else ()
    return ArtifactResult(name, ArtifactVerdict.MISSING, digest, None, notes=notes)


def _report(  # noqa: PLR0917 - one private call site per outcome, all positional
    spec: Manifest,
    options: Options,
    artifacts: tuple[ArtifactResult, ...],
    checks: list[CheckResult],
    pin: SourcePin | None,
    info: BuildInfo | None,
    inputs: dict[str, str],
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
        snapshot=dict(inputs),
    )
