"""Hostile repositories verified through the real CLI, as the invoking user and unprivileged.

`Hostile` builds a real C project in git whose recipe runs `hostile.sh` (the attack) after or
instead of `make`, releases it as the vendor would, and runs `python -m reprover` in a child
process: as the invoking user, or (when the tests run as root, as CI does) as an unprivileged
user made for the purpose and dropped to with `setpriv`. Every path lives under one folder that
the running user owns, with TMPDIR and HOME inside it.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import reprover
from conftest import HELLO_C, MAKEFILE, Project, git, vendor_build

UNPRIVILEGED_USER = "reprover-sbx"
MODES = ("invoker", "unprivileged")
CLI_TIMEOUT = 300


@dataclass
class Hostile:
    """One hostile project and a way to verify it as `mode`'s user."""

    root: Path
    mode: str
    project: Project = field(init=False)

    def create(
        self, script: str, *, files: dict[str, str] | None = None, mode: int = 0o755
    ) -> None:
        """Commit hello.c, the Makefile, `hostile.sh` (=`script`) and `files`; release it."""
        repo = self.root / "repo"
        repo.mkdir()
        for name, text in {
            "hello.c": HELLO_C, "Makefile": MAKEFILE, "hostile.sh": script, **(files or {})
        }.items():  # fmt: skip
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
            if name.startswith("tools/"):
                (repo / name).chmod(mode)
        git(repo, "init", "--quiet", "--initial-branch=main")
        git(repo, "add", "--all")
        git(repo, "commit", "--quiet", "-m", "release")
        commit = git(repo, "rev-parse", "HEAD")
        release = self.root / "release"
        vendor_build(repo, commit, release, self.root)
        self.project = Project(self.root, repo, commit, release)

    def manifest(self, *, command: str = '["sh", "hostile.sh"]', **fields: str) -> Path:
        """Write the manifest (default: run hostile.sh) and hand the folder to the user."""
        path = self.project.manifest(command=command, **fields)
        self.give_away()
        return path

    def give_away(self) -> None:
        """Make the unprivileged user own everything under root (no-op for the invoker)."""
        if self.mode == "unprivileged" and os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            for path in [self.root, *self.root.rglob("*")]:
                os.lchown(path, user.pw_uid, user.pw_gid)

    def cli(
        self, *args: str | Path, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
    ) -> tuple[int, str, str]:
        """Run `python -m reprover ARGS` as this mode's user; (exit code, stdout, stderr)."""
        python, extra_env = _python(self.mode)
        full_env = {
            "PATH": env.pop("PATH") if env and "PATH" in env else "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "LC_ALL": "C.UTF-8",
            **extra_env,
            **(env or {}),
        }
        done = subprocess.run(
            [*_drop(self.mode), python, "-m", "reprover", *map(str, args)],
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
            pass_fds=pass_fds,
        )
        return done.returncode, done.stdout, done.stderr


def hostile_for(mode: str) -> Hostile:
    """A fresh folder for `mode` (skips "unprivileged" where no such user can be used)."""
    if mode == "unprivileged" and os.geteuid() != 0:
        pytest.skip("already unprivileged: the 'invoker' run is the unprivileged run")
    if mode == "unprivileged":
        _ensure_user()
    # In /tmp itself, not $TMPDIR: the tests point TMPDIR into pytest's folder, which only root
    # may enter, and the unprivileged user must reach this one (the fixture removes it).
    root = Path(tempfile.mkdtemp(prefix="reprover-sbx-", dir="/tmp"))
    for sub in ("home", "tmp"):
        (root / sub).mkdir()
    return Hostile(root, mode)


def _drop(mode: str) -> list[str]:
    if mode == "invoker":
        return []
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


@functools.cache
def _python(mode: str) -> tuple[str, dict[str, str]]:
    """A Python the user can run with reprover importable, and the environment it needs."""
    if mode == "invoker":
        return sys.executable, {}
    candidates = [(sys.executable, {})]
    paths = os.pathsep.join(
        [sysconfig.get_paths()["purelib"], str(Path(reprover.__file__).parents[1])]
    )
    for system in ("/usr/bin/python3",):
        candidates.append((system, {"PYTHONPATH": paths}))
    for python, env in candidates:
        check = subprocess.run(
            [*_drop(mode), python, "-c", "import reprover.cli, lief"],
            env={"PATH": "/usr/bin:/bin", **env},
            cwd="/",
            capture_output=True,
            check=False,
        )
        if check.returncode == 0:
            return python, env
    pytest.skip(f"no Python that user {UNPRIVILEGED_USER} can run has reprover importable")


def _ensure_user() -> None:
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        if shutil.which("useradd") is None or shutil.which("setpriv") is None:
            pytest.skip("useradd or setpriv is missing: cannot test as an unprivileged user")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             UNPRIVILEGED_USER],
            check=True,
            capture_output=True,
        )  # fmt: skip
