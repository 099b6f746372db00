"""Steps 3 to 5 of a verification: pin the source, rebuild it in the sandbox, take its outputs.

Owns: `rebuilt_source` (clone and check out the pinned commit, verify its signature when
required, read pinned entitlements before the build can touch the checkout, run the recipe in
the sandbox with the checkout bound at the build path, take the outputs without following
links) and its result, `Rebuild`. `reprover rebuild` runs these steps alone.
Does not own: the release (`reprover.verify.release`), comparing (`reprover.verify`), the
sandbox, the build or the outputs themselves (`reprover.sandbox`, `reprover.build`,
`reprover.outputs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from reprover import build, outputs, sandbox, source, workarea
from reprover.errors import VerificationError
from reprover.model import BuildInfo, CheckResult, Digest, Manifest, Policy, SourcePin
from reprover.verify.options import Events, Options, Progress, ProgressEvent, step


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
    step(progress, events, "clone", f"cloning {spec.source.repo} at {spec.source.commit[:12]}")
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
    step(progress, events, "build", f"building in {path} ({isolation.name})")
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
