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
This module owns the order of the steps, step 6's comparison of the release and the report;
the release's listing is `verify.release`, steps 3 to 5 are `verify.rebuild`, the options
and progress events are `verify.options`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from reprover import intoto, manifest, outputs, policy, snapshot, workarea
from reprover.compare.pool import Pair, compare_groups
from reprover.digest import hash_files
from reprover.errors import VerificationError
from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    BuildInfo,
    CheckResult,
    Digest,
    InTotoSpec,
    Manifest,
    Report,
    SourcePin,
)
from reprover.verify.options import Events, Options, Progress, ProgressEvent, step
from reprover.verify.rebuild import Rebuild, rebuilt_source
from reprover.verify.release import released_artifacts, unverified_results

__all__ = ["Options", "verify"]


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
            if rebuild is None:  # the source check failed: nothing was built
                unbuilt = tuple(
                    ArtifactResult(name, ArtifactVerdict.MISSING, snap.digests[name], None,
                                   notes=("not rebuilt: the source check failed",))
                    for name in names
                )  # fmt: skip
                report = _report(spec, options, unbuilt + unlisted, checks, None, None, snap.inputs)
                return replace(report, inputs=(str(manifest_path),))
            step(progress, events, "compare", f"comparing {len(names)} artifact(s)")
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
            step(progress, events, "in-toto", "verifying the in-toto supply chain")
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
