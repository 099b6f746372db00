"""The build sandbox: what a hostile build may see, and the argv that confines it.

Owns: choosing the confinement this machine allows (`find_isolation`) and the command line
that runs a program inside it (`Sandbox.argv`). The strong sandbox is bubblewrap with new user
(where the kernel allows), pid, ipc, uts, cgroup and network (unless the recipe allows it)
namespaces, every capability dropped (as root too), `--die-with-parent` and a new session. It
starts from an empty root and shows the build only:

- the toolchain, read-only: `/usr`, the `/bin`, `/sbin`, `/lib*` links or folders, and a short
  list of `/etc` entries compilers and interpreters read (`ETC_ENTRIES`);
- its own `/proc` (its pid namespace only: no other process, no `/proc/<pid>/root` way out;
  `/proc/sys` read-only), a minimal `/dev`, a private size-limited `/tmp` holding its HOME;
- its checkout, writable, bound at the fixed build path (the host folder is private to this
  run, so two runs never collide and nobody can plant anything at the build path).

Everything else is absent: the release, the manifest's folder, the user's home, the verifier's
trust files and working folder, the host's `/tmp`, `/run`, `/var`, `/opt`. Where one of those
lies inside a toolchain folder, an empty tmpfs (or /dev/null) is mounted over it, as over
`/etc/ssl/private` (a build run by root keeps root's file access, not its capabilities).
Where bubblewrap cannot run, the weak fallbacks (`unshare`, or nothing) are used only when the
user accepts weak isolation; their reports say so.
Does not own: running the build, its log or its timeout (`reprover.build`).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from reprover.errors import BuildError, InputError

TOOLCHAIN_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group",
    "nsswitch.conf", "localtime", "hosts", "host.conf", "gai.conf", "protocols", "services",
    "resolv.conf", "ssl", "ca-certificates", "ca-certificates.conf", "perl", "mime.types",
    "os-release", "debian_version", "gcrypt", "java-17-openjdk", "java-21-openjdk",
)  # fmt: skip
PRIVATE_SYSTEM_PATHS = ("/etc/ssl/private",)  # inside shown folders, readable by root alone
SANDBOX_HOME = "/tmp/reprover-home"  # noqa: S108 - inside the sandbox's private /tmp
TMP_SIZE = 4 << 30  # bytes of the sandbox's /tmp (a tmpfs: memory), against a build filling it
FORBIDDEN_BUILD_PATHS = ("/usr", "/etc", "/proc", "/dev", "/bin", "/sbin", "/lib")
PROBE_TIMEOUT = 120  # seconds; only bounds a hung probe: a loaded machine is slow, not unisolated
PROBE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Isolation:
    """How builds are confined on this machine.

    `kind` is "bwrap" (the strong sandbox), "unshare" (a new network namespace only: the
    filesystem and the other processes are NOT hidden) or "none". `strong` is True only for
    bwrap with a pid namespace and no capabilities.
    """

    kind: str
    name: str
    network_isolated: bool
    strong: bool
    prefix: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sandbox:
    """One confined build: the isolation, the private checkout and what must stay hidden.

    `checkout` is the host folder; `build_path` is where the build sees it (the same folder
    under weak isolation, which cannot move it). `hidden` lists host paths the build must not
    see even when they lie inside a toolchain folder.
    """

    isolation: Isolation
    checkout: Path
    build_path: Path
    home: Path
    hidden: tuple[Path, ...] = field(default_factory=tuple)

    def argv(self, command: Sequence[str]) -> list[str]:
        """The full argv that runs `command` confined, in the checkout."""
        if self.isolation.kind != "bwrap":
            return [*self.isolation.prefix, *command]
        return [
            *self.isolation.prefix,
            *_toolchain_binds(),
            # /proc/sys read-only: kernel settings are checked by file mode, and a build run by
            # root would otherwise own them without any capability (core_pattern: an escape)
            "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev",
            "--size", str(TMP_SIZE), "--tmpfs", "/tmp",  # noqa: S108 - the sandbox's own
            "--dir", SANDBOX_HOME,
            "--bind", str(self.checkout), str(self.build_path),
            *self._git_read_only(),
            *_overlays((*self.hidden, *(Path(p) for p in PRIVATE_SYSTEM_PATHS))),
            "--chdir", str(self.build_path),
            "--", *command,
        ]  # fmt: skip

    def _git_read_only(self) -> list[str]:
        """Keep `.git` read-only: git runs outside the sandbox later (rebuild's materials), and
        a build that could write `.git/config` could make it run a filter or fsmonitor there."""
        git = self.checkout / ".git"
        return ["--ro-bind", str(git), f"{self.build_path}/.git"] if git.is_dir() else []

    @property
    def cwd(self) -> Path:
        """Where to start the confining program on the host."""
        return self.checkout


def prepare(
    isolation: Isolation, *, checkout: Path, build_path: Path, home: Path, hidden: Sequence[Path]
) -> Sandbox:
    """The sandbox for one build: bind `checkout` at `build_path` (strong isolation only).

    Args:
        isolation: from `find_isolation`.
        checkout: the private host folder holding the source.
        build_path: where the build sees it (recorded so others can repeat the build).
        home: a private host folder for HOME under weak isolation.
        hidden: host paths to hide even inside toolchain folders (release, manifest folder...).

    Raises:
        InputError: the build path is relative, the root, or inside a toolchain or system folder.
    """
    if not build_path.is_absolute():
        raise InputError(f"build path {build_path} must be absolute")
    pure = PurePosixPath(build_path)
    if (
        len(pure.parts) < 2
        or any(part in (".", "..") for part in str(pure).split("/"))
        or pure in (PurePosixPath("/tmp"), PurePosixPath(SANDBOX_HOME))  # noqa: S108
        or any(pure == PurePosixPath(d) or PurePosixPath(d) in pure.parents for d in (
            *FORBIDDEN_BUILD_PATHS, *TOOLCHAIN_DIRS, SANDBOX_HOME))
    ):  # fmt: skip
        raise InputError(
            f"build path {build_path} is not allowed: it must not be /, /tmp, hold '..' or lie "
            "inside a toolchain or system folder",
            hint="use a path such as /tmp/reprover-build or /build/<name>",
        )
    if isolation.kind == "bwrap":
        return Sandbox(isolation, checkout, build_path, Path(SANDBOX_HOME), tuple(hidden))
    return Sandbox(isolation, checkout, checkout, home, tuple(hidden))


def _toolchain_binds() -> list[str]:
    args: list[str] = []
    for folder in TOOLCHAIN_DIRS:
        path = Path(folder)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), folder]
        elif path.is_dir():
            args += ["--ro-bind", folder, folder]
    etc = Path("/etc")
    for name in ETC_ENTRIES:
        entry = etc / name
        if entry.exists():
            args += ["--ro-bind", str(entry), str(entry)]
    for entry in sorted(etc.glob("python3*")):
        args += ["--ro-bind", str(entry), str(entry)]
    return args


def _overlays(hidden: Sequence[Path]) -> list[str]:
    """Mounts that hide each path in `hidden` lying inside a folder the sandbox shows."""
    shown = [Path(d).resolve() for d in TOOLCHAIN_DIRS if Path(d).is_dir()]
    shown += [(Path("/etc") / n).resolve() for n in ETC_ENTRIES if (Path("/etc") / n).exists()]
    args: list[str] = []
    for path in dict.fromkeys(p.resolve() for p in hidden):
        if not any(path == s or s in path.parents for s in shown):
            continue
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


_STRONG = (
    "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
    "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "reprover",
)  # fmt: skip
_USERNS = ("--unshare-user", "--disable-userns")


def find_isolation(*, network: bool, allow_network: bool, allow_weak: bool) -> Isolation:
    """Choose the strongest confinement that works here; refuse weak isolation unless allowed.

    Args:
        network: the recipe allows network access.
        allow_network: the user accepts a build with network when no network isolation works.
        allow_weak: the user accepts weak isolation (no bubblewrap, or no namespaces for it);
            the report says so.

    Raises:
        BuildError: the strong sandbox cannot run here and weak isolation was not accepted, or
            the recipe forbids network, nothing isolates it, and --allow-network was not given.
    """
    net = () if network else ("--unshare-net",)
    what = "" if network else ", no network"
    reason = "bubblewrap (bwrap) is not installed"
    if bwrap := shutil.which("bwrap"):
        for userns, label in ((_USERNS, "user, "), ((), "")):
            prefix = (bwrap, *userns, *_STRONG, *net)
            if _works_cached((*prefix, *_toolchain_binds(), "--", "true")):
                return Isolation(
                    "bwrap",
                    f"bubblewrap: new {label}pid, ipc, uts"
                    f"{'' if network else ', network'} namespaces; no capabilities; only the "
                    f"toolchain and the checkout are visible{what}",
                    network_isolated=not network,
                    strong=True,
                    prefix=prefix,
                )
        reason = "bubblewrap cannot create namespaces here (user namespaces forbidden?)"
    if not allow_weak:
        raise BuildError(
            f"the strong build sandbox is unavailable: {reason}; a verdict would be inconclusive",
            hint="install bubblewrap and allow unprivileged user namespaces (Ubuntu: sysctl "
            "kernel.apparmor_restrict_unprivileged_userns=0), run in a VM, or pass "
            "--allow-weak-isolation to accept a build that can see this machine (the report "
            "says so)",
        )
    weak = f"WEAK isolation ({reason})"
    if network:
        return Isolation("none", f"{weak}: none", network_isolated=False, strong=False)
    candidates = (
        (("unshare", "--user", "--map-root-user", "--net", "--"), "new user+network namespace"),
        (("unshare", "--net", "--"), "new network namespace"),
    )
    for prefix, name in candidates:
        if shutil.which("unshare") and _works([*prefix, "true"]):
            return Isolation(
                "unshare",
                f"{weak}: unshare, {name}; filesystem and processes NOT hidden",
                network_isolated=True,
                strong=False,
                prefix=prefix,
            )
    if allow_network:
        return Isolation(
            "none", f"{weak}: NOT isolated, --allow-network given", network_isolated=False,
            strong=False,
        )  # fmt: skip
    raise BuildError(
        "the recipe forbids network access but no network isolation works on this machine",
        hint="install bubblewrap (or util-linux's unshare), allow user namespaces, or pass "
        "--allow-network to build with network (the report records it)",
    )


@functools.cache
def _works_cached(argv: tuple[str, ...]) -> bool:
    """Whether `argv` (its program by absolute path) runs here; asked once per process."""
    return _works(list(argv))


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            cwd="/",
            env={"PATH": PROBE_PATH},  # the probe's `true` is looked up inside the sandbox
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
