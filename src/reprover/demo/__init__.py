"""The embedded end-to-end demo: a vendor releases a scanner engine; a reviewer verifies it.

Owns: the scenario. It copies the packaged scanner source into a workspace, commits it as the
vendor's engine team, builds the "official release" in one folder at one time, signs the
Windows engine (Authenticode, when mingw-w64, openssl and osslsigncode are installed), records
the whole supply chain as signed in-toto links (owner, author, builder, signer, two
rebuilders), then verifies it with the real pipeline from another folder at a later time
(pass), again after changing one byte of code in a copy of the release (fail), and again with
a build link edited after signing (fail); the lab signs the first two results and logs them
in an evidence log, and a reviewer checks their inclusion and audits the log.
Does not own: printing (the CLI prints the steps this returns), the chain's parties
(`reprover.demo.chain`) or the signing (`reprover.demo.signing`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from reprover.demo import chain, evidence, signing
from reprover.errors import BuildError, Error, InputError, ToolMissingError
from reprover.fsutil import write_atomic
from reprover.model import ArtifactVerdict, Report, Verdict
from reprover.verify import Options, verify

AUTHOR = "Scanner Engine Team <engine@vendor.example>"
COMMIT_DATE = "2026-01-15T09:30:00+00:00"
MARKER = ".reprover-demo"
MINGW = "x86_64-w64-mingw32-gcc"


@dataclass
class Step:
    """One step of the demo: what it did, what was expected, and whether that happened."""

    title: str
    expected: str
    ok: bool
    report: Report | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    """The workspace and the steps, in order."""

    workspace: Path
    steps: list[Step]

    @property
    def ok(self) -> bool:
        """Every step behaved as expected."""
        return all(step.ok for step in self.steps)


def run(workspace: Path, progress: Callable[[str], None] = lambda _: None) -> DemoResult:
    """Run the whole scenario in `workspace` (created; a previous demo there is replaced).

    Raises:
        InputError: the workspace exists and is not a previous demo.
        ToolMissingError: git, make or a C compiler is missing.
        BuildError: the vendor build fails.
    """
    workspace = _fresh_workspace(workspace.absolute())
    for tool in ("git", "make", "cc"):
        if shutil.which(tool) is None:
            raise ToolMissingError(f"the demo needs {tool}", hint="apt-get install git make gcc")
    windows = shutil.which(MINGW) is not None
    sign = windows and signing.available()
    steps: list[Step] = []
    progress("creating the vendor's git repository")
    commit = _vendor_repository(workspace / "scanner")
    progress(f"vendor builds the official release from {commit[:12]}")
    targets = ["release", "windows"] if windows else ["release"]
    _vendor_release(workspace, commit, targets)
    notes = [] if windows else [f"{MINGW} is not installed: the Windows PE part is skipped"]
    trusted = None
    if sign:
        progress("release engineering signs the Windows engine (Authenticode)")
        trusted = signing.sign_release(workspace / "release" / "scan.exe", workspace / "keys")
    elif windows:
        notes.append("openssl or osslsigncode is not installed: the release is not signed")
    steps.append(
        Step(
            "vendor built" + (" and signed" if sign else "") + " the official release",
            "release/scan" + (" and release/scan.exe" if windows else ""),
            ok=True,
            notes=notes,
        )
    )
    progress("every party of the supply chain records its step (in-toto links)")
    links = chain.make_chain(
        workspace, workspace / "scanner", workspace / "build-outputs", workspace / "release"
    )
    options = _Manifest(commit, targets, trusted, links)
    manifest = options.write(workspace, "reprover.toml", "release", links.links)
    progress("reviewer verifies the release")
    report = verify(manifest, Options(), progress)
    results = [("pass", report, manifest)]
    verdicts = {a.path: a.verdict for a in report.artifacts}
    expected_exe = ArtifactVerdict.SIGNATURE_ONLY if sign else ArtifactVerdict.IDENTICAL
    steps.append(
        Step(
            "verify the faithful release and its supply chain",
            "pass: scan identical"
            + (f", scan.exe {expected_exe.value}" if windows else "")
            + ", in-toto chain verified",
            report.verdict is Verdict.PASS
            and verdicts.get("scan") is ArtifactVerdict.IDENTICAL
            and (not windows or verdicts.get("scan.exe") is expected_exe),
            report,
        )
    )
    tampered = _tamper(workspace)
    manifest = options.write(workspace, "reprover-tampered.toml", "release-tampered", links.links)
    progress("reviewer verifies a release with one changed code byte")
    report = verify(manifest, Options(), progress)
    results.append(("fail", report, manifest))
    changed = [a for a in report.artifacts if a.verdict is ArtifactVerdict.DIFFERENT]
    steps.append(
        Step(
            f"verify a release whose {tampered[0]} has one byte changed at 0x{tampered[1]:x}",
            "fail, naming the offset (and in-toto refuses the changed file too)",
            report.verdict is Verdict.FAIL
            and len(changed) == 1
            and any(d.offset == tampered[1] for d in changed[0].differences),
            report,
        )
    )
    manifest = options.write(
        workspace, "reprover-tampered-links.toml", "release", links.links_tampered
    )
    progress("reviewer verifies with a build link edited after it was signed")
    report = verify(manifest, Options(), progress)
    intoto = [c for c in report.checks if c.name == "in-toto"]
    steps.append(
        Step(
            "verify the faithful release against a build link edited after signing",
            "fail: the in-toto check names the bad signature",
            report.verdict is Verdict.FAIL
            and len(intoto) == 1
            and not intoto[0].passed
            and any("bad-signature" in f for f in intoto[0].findings),
            report,
        )
    )
    progress("the lab attests both results; the transparency center logs them; a reviewer checks")
    steps.append(_evidence_step(workspace, results))
    return DemoResult(workspace, steps)


def _evidence_step(workspace: Path, results: list[tuple[str, Report, Path]]) -> Step:
    """Attest and log the passed and the failed result; the reviewer checks the log offline."""
    title = "the passed and the failed result are signed, logged, and checked by a reviewer"
    expected = "both attestations proven in the evidence log; the audit recomputes it all"
    try:
        seen = evidence.log_results(workspace, results)
    except Error as exc:
        return Step(title, expected, ok=False, notes=[exc.diagnostics()])
    return Step(title, expected, ok=True, notes=seen)


def _fresh_workspace(workspace: Path) -> Path:
    if workspace.exists():
        if not (workspace / MARKER).exists():
            raise InputError(
                f"{workspace} exists and is not a reprover demo workspace",
                hint="pass --workspace with a new folder",
            )
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    (workspace / MARKER).write_text("created by `reprover demo`; safe to delete\n")
    return workspace


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _vendor_repository(repo: Path) -> str:
    source = resources.files("reprover.demo") / "scanner"
    with resources.as_file(source) as folder:
        shutil.copytree(folder, repo, ignore=shutil.ignore_patterns("out", "__pycache__"))
    name, email = AUTHOR[: AUTHOR.index(" <")], AUTHOR[AUTHOR.index("<") + 1 : -1]
    identity = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": COMMIT_DATE,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_COMMITTER_DATE": COMMIT_DATE,
    }
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", "Scanner engine 1.4.2", env=identity)
    return _git(repo, "rev-parse", "HEAD")


def _vendor_release(workspace: Path, commit: str, targets: list[str]) -> None:
    """The vendor's own build: another folder, the current time, plain make.

    The outputs are kept in `build-outputs` (what the build department hands to signing) and
    copied to `release` (what ships, signed later).
    """
    build = workspace / "vendor-build"
    _git(workspace, "clone", "--quiet", "--no-local", "scanner", str(build))
    _git(build, "-c", "advice.detachedHead=false", "checkout", "--quiet", commit)
    epoch = _git(build, "show", "-s", "--format=%ct", commit)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOURCE_DATE_EPOCH": epoch}
    done = subprocess.run(
        ["make", *targets], cwd=build, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BuildError("the vendor build of the demo failed", details=done.stdout + done.stderr)
    shutil.copytree(build / "out", workspace / "build-outputs")
    shutil.copytree(build / "out", workspace / "release")
    shutil.rmtree(build)


@dataclass(frozen=True)
class _Manifest:
    """What every manifest of the demo shares; `write` adds the release and the links."""

    commit: str
    targets: list[str]
    trusted: Path | None
    chain: chain.ChainPaths

    def write(self, workspace: Path, name: str, release: str, links: Path) -> Path:
        command = ", ".join(f'"{t}"' for t in ["make", *self.targets])
        mingw = f', MINGW = "{MINGW}"' if "windows" in self.targets else ""
        signature = ""
        if self.trusted is not None:
            signature = (
                '\n[policy]\nallow = ["signature"]   # signed releases: signature-only\n'
                f'\n[signature]\ntrusted = ["{self.trusted.relative_to(workspace)}"]\n'
            )
        text = f"""# Written by `reprover demo`. Run `reprover verify {name}` here to repeat it.
[source]
repo = "scanner"
commit = "{self.commit}"

[build]
command = [{command}]
output = "out"
timeout = 300
network = false
env = {{ CC = "gcc"{mingw} }}
path = "{workspace / "rebuild"}"

[release]
path = "{release}"
{signature}
[in-toto]
layout = "{self.chain.layout.relative_to(workspace)}"
layout_keys = ["{self.chain.layout_key.relative_to(workspace)}"]
links = "{links.relative_to(workspace)}"
"""
        path = workspace / name
        write_atomic(path, text.encode())
        return path


def _tamper(workspace: Path) -> tuple[str, int]:
    """Copy the release and flip one byte in the middle of the Linux engine's code."""
    shutil.copytree(workspace / "release", workspace / "release-tampered")
    target = workspace / "release-tampered" / "scan"
    offset = _text_middle(target)
    data = bytearray(target.read_bytes())
    data[offset] ^= 0x01
    target.write_bytes(bytes(data))
    return "scan", offset


def _text_middle(path: Path) -> int:
    """File offset of the middle of the .text section of our own (trusted) ELF build."""
    import lief  # noqa: PLC0415 - only the demo's own binary is parsed here, in-process

    binary = lief.ELF.parse(str(path))
    if binary is None:
        raise InputError(f"{path} is not an ELF file")
    text = binary.get_section(".text")
    if text is None:
        raise InputError(f"{path} has no .text section")
    return int(text.offset + text.size // 2)
