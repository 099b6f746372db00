"""The hermetic build runner.

Owns: running a recipe's command in a normalized environment (only PATH plus the recipe's env;
a throw-away HOME; `LC_ALL=C.UTF-8`, `TZ=UTC`, umask 022, `SOURCE_DATE_EPOCH`), at a fixed
absolute build path, without network when the recipe says so (a new network namespace through
`unshare` or bubblewrap), under a timeout that kills the whole process group, with the full log
kept on disk; and fingerprinting the toolchain the recipe names.
Does not own: fetching the source (see `reprover.source`) or judging outputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from reprover.errors import BuildError, InputError
from reprover.model import BuildInfo, Recipe

DEFAULT_BUILD_PATH = "/tmp/reprover-build"  # noqa: S108 - a fixed, recorded path is the point
LOG_TAIL_LINES = 25
POLL_SECONDS = 0.25
TOOL_VARIABLES = ("CC", "CXX", "LD", "AR", "AS", "CPP", "RUSTC", "GO")
DEFAULT_TOOLS = ("cc", "make")


@dataclass(frozen=True)
class Isolation:
    """How the build is confined: a command prefix, a description, and what it guarantees.

    `kind` is "bwrap" (bubblewrap: the whole filesystem read-only except the build path, the
    build's HOME and a private /tmp; no network unless the recipe allows it), "unshare" (no
    network; the filesystem is not protected) or "none".
    """

    kind: str
    name: str
    network_isolated: bool
    prefix: tuple[str, ...] = ()

    def argv(self, command: list[str], *, checkout: Path, home: Path) -> list[str]:
        """The full argv that runs `command` confined."""
        if self.kind != "bwrap":
            return [*self.prefix, *command]
        binds: list[str] = []
        for path in (checkout, home):
            binds += ["--bind", str(path), str(path)]
        return [*self.prefix, *binds, "--chdir", str(checkout), "--", *command]


_BWRAP = (
    "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",  # noqa: S108 - a private, empty /tmp inside the sandbox
    "--die-with-parent",
)  # fmt: skip


def find_isolation(*, network: bool, allow_network: bool) -> Isolation:
    """Choose how to run the build: the strongest confinement that works on this machine.

    Args:
        network: the recipe allows network access.
        allow_network: the user explicitly accepts a build with network when isolation is
            unavailable (recorded in the report).

    Raises:
        BuildError: the recipe forbids network, no isolation works here, and the user did not
            pass --allow-network.
    """
    net = () if network else ("--unshare-net",)
    bwrap = Isolation(
        "bwrap",
        "bubblewrap: read-only filesystem outside the build path"
        + ("" if network else ", no network"),
        network_isolated=not network,
        prefix=(*_BWRAP, *net),
    )
    if shutil.which("bwrap") and _works([*bwrap.prefix, "--", "true"]):
        return bwrap
    if network:
        return Isolation("none", "network allowed by the recipe", network_isolated=False)
    candidates = (
        (("unshare", "--user", "--map-root-user", "--net", "--"), "new user+network namespace"),
        (("unshare", "--net", "--"), "new network namespace"),
    )
    for prefix, name in candidates:
        if shutil.which("unshare") and _works([*prefix, "true"]):
            return Isolation(
                "unshare",
                f"unshare: {name}; filesystem NOT protected (install bubblewrap)",
                network_isolated=True,
                prefix=prefix,
            )
    if allow_network:
        return Isolation("none", "NOT isolated: --allow-network given", network_isolated=False)
    raise BuildError(
        "the recipe forbids network access but no network isolation works on this machine",
        hint="install bubblewrap (or util-linux's unshare), allow user namespaces, or pass "
        "--allow-network to build with network (the report records it)",
    )


def _works(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def build_path(path: Path, *, keep: bool = False) -> Iterator[Path]:
    """Reserve the fixed build path: lock it, clear a previous reprover build, remove it after.

    Raises:
        InputError: the path exists and was not made by reprover.
        BuildError: another reprover run holds the path.
    """
    if not path.is_absolute():
        raise InputError(f"build path {path} must be absolute")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".reprover-lock")
    if path.exists() and not lock_path.exists():
        raise InputError(
            f"build path {path} exists and was not created by reprover",
            hint="remove it, or choose another [build] path / --build-path",
        )
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BuildError(f"another reprover run is using build path {path}") from exc
        if path.exists():
            shutil.rmtree(path)
        try:
            yield path
        finally:
            if not keep:
                shutil.rmtree(path, ignore_errors=True)
                lock_path.unlink(missing_ok=True)


def normalized_env(recipe: Recipe, *, home: Path, source_date_epoch: int) -> dict[str, str]:
    """The build's whole environment: PATH, fixed locale/time settings, then the recipe's env."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
    }
    env.update(recipe.env)
    return env


def run(
    recipe: Recipe,
    checkout: Path,
    *,
    log_path: Path,
    source_date_epoch: int,
    isolation: Isolation,
    on_output: Callable[[str], None] | None = None,
) -> BuildInfo:
    """Run the recipe's command in `checkout` and return how it ran.

    `on_output`, when given, is called about every `POLL_SECONDS` while the build runs with
    the last complete line of its log (or "" before the first), for a progress display.

    Raises:
        BuildError: the command cannot start, exits non-zero, or exceeds the timeout; the
            message carries the tail of the log, whose full text stays at `log_path`.
    """
    argv = (
        ["/bin/sh", "-c", recipe.command]
        if isinstance(recipe.command, str)
        else list(recipe.command)
    )
    with tempfile.TemporaryDirectory(prefix="reprover-home-") as home:
        env = normalized_env(recipe, home=Path(home), source_date_epoch=source_date_epoch)
        toolchain = fingerprint_toolchain(recipe, env)
        with log_path.open("wb") as log:
            try:
                process = subprocess.Popen(
                    isolation.argv(argv, checkout=checkout, home=Path(home)),
                    cwd=checkout,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    umask=0o022,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BuildError(
                    f"cannot start the build command {argv[0]!r}: {exc.strerror or exc}",
                    hint="check [build] command; programs are looked up on PATH",
                ) from exc
            try:
                code = _wait(process, recipe.timeout, log_path, on_output)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise BuildError(
                    f"the build exceeded its timeout of {recipe.timeout} s and was killed",
                    hint=f"raise [build] timeout if it needs longer; full log: {log_path}",
                    details=_tail(log_path),
                ) from None
            except BaseException:
                _kill_group(process)
                raise
    if code != 0:
        network_note = "" if not isolation.network_isolated else " (it ran without network)"
        raise BuildError(
            f"the build failed with exit code {code}{network_note}",
            hint=f"full log: {log_path}",
            details=_tail(log_path),
        )
    return BuildInfo(
        command=recipe.command,
        build_path=str(checkout),
        env=dict(recipe.env),
        toolchain=toolchain,
        network_isolated=isolation.network_isolated,
        isolation=isolation.name,
        log_path=str(log_path),
    )


def _wait(
    process: subprocess.Popen[bytes],
    timeout: float,
    log_path: Path,
    on_output: Callable[[str], None] | None,
) -> int:
    """Wait for the build, reporting its last log line every POLL_SECONDS when asked to.

    Raises:
        subprocess.TimeoutExpired: the build outlived `timeout` seconds.
    """
    if on_output is None:
        return process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            return process.wait(timeout=max(0.0, min(POLL_SECONDS, left)))
        except subprocess.TimeoutExpired:
            if left <= POLL_SECONDS:
                raise
        on_output(last_log_line(log_path))


def last_log_line(log_path: Path) -> str:
    """The last complete, non-empty line of the log (read from its last 4 KiB), or ""."""
    try:
        with log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - 4096))
            tail = log.read()
    except OSError:
        return ""
    lines = [line for line in tail.split(b"\n")[:-1] if line.strip()]
    return lines[-1].decode("utf-8", "replace").strip() if lines else ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(log_path: Path) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log_path.stat().st_size - 64 * 1024))
            lines = log.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return "(the build log cannot be read)"
    return "last lines of the build log:\n" + "\n".join(f"  | {line}" for line in lines)


def fingerprint_toolchain(recipe: Recipe, env: Mapping[str, str]) -> dict[str, str]:
    """First line of `--version` of the tools the recipe names.

    Those are: CC, CXX, ... and every other `[build] env` value that names a program, the
    command's argv[0], and `cc` and `make`.
    """
    named = [env.get(v, "") for v in TOOL_VARIABLES] + list(recipe.env.values())
    names: list[str] = [value.split()[0] for value in named if value.strip()]
    if isinstance(recipe.command, tuple):
        names.append(recipe.command[0])
    names.extend(DEFAULT_TOOLS)
    toolchain: dict[str, str] = {}
    for name in dict.fromkeys(names):
        program = shutil.which(name, path=env["PATH"])
        if program is None or Path(name).name in {"sh", "bash", "env"}:
            continue
        try:
            done = subprocess.run(
                [program, "--version"],
                env=dict(env),
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        first = (done.stdout or done.stderr).strip().splitlines()
        if done.returncode == 0 and first:
            toolchain[name] = first[0].strip()
    return toolchain
