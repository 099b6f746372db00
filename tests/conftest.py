"""Shared fixtures: real git repositories, real C builds, real releases."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests: the same examples every run (CI never fails on an input a previous run did
# not try), no example database written into the checkout, and no per-example deadline (a loaded
# machine is slow, not wrong).
settings.register_profile("reprover", derandomize=True, database=None, deadline=None)
settings.load_profile("reprover")

IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Author",
    "GIT_AUTHOR_EMAIL": "ada@vendor.example",
    "GIT_AUTHOR_DATE": "2026-02-01T12:00:00+00:00",
    "GIT_COMMITTER_NAME": "Ada Author",
    "GIT_COMMITTER_EMAIL": "ada@vendor.example",
    "GIT_COMMITTER_DATE": "2026-02-01T12:00:00+00:00",
}

HELLO_C = r"""
#include <stdio.h>
static const char banner[] = "hello from the engine " __DATE__;
int main(void) { puts(banner); return 0; }
"""

MAKEFILE = """\
all: out/hello
out/hello: hello.c
\tmkdir -p out
\t$(CC) -O2 -g -ffile-prefix-map=$(CURDIR)=. -o $@ hello.c
"""


@pytest.fixture(autouse=True)
def _private_tmpdir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point TMPDIR (for reprover in-process and every child) at a folder pytest cleans up.

    reprover keeps each run's build log (`$TMPDIR/reprover-log-*/build.log`) on purpose, so
    without this every test that runs a build leaves a folder in /tmp. The folder is outside
    `tmp_path`, so tests that list `tmp_path` see only what they made.
    """
    folder = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches: read TMPDIR again
    return folder


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in `repo` with a fixed identity and no user configuration."""
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        **IDENTITY,
        **(env or {}),
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=full_env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class Project:
    """A real C project in git, released by its vendor, and a manifest to verify it."""

    root: Path
    repo: Path
    commit: str
    release: Path

    def manifest(
        self, body: str | None = None, *, name: str = "reprover.toml", **fields: str
    ) -> Path:
        """Write a manifest (the default one, or `body`) next to the release and return it."""
        if body is None:
            values = {
                "repo": "repo",
                "commit": self.commit,
                "command": '["make"]',
                "output": "out",
                "release": "release",
                "build_path": str(self.root / "build"),
                "extra": "",
            }
            values.update(fields)
            body = (
                "[source]\n"
                f'repo = "{values["repo"]}"\n'
                f'commit = "{values["commit"]}"\n'
                "[build]\n"
                f"command = {values['command']}\n"
                f'output = "{values["output"]}"\n'
                f'path = "{values["build_path"]}"\n'
                "timeout = 120\n"
                "[release]\n"
                f'path = "{values["release"]}"\n'
                f"{values['extra']}"
            )
        path = self.root / name
        path.write_text(body)
        return path


def vendor_build(repo: Path, commit: str, dest: Path, workdir: Path) -> None:
    """Build `commit` as the vendor would: another folder, plain make, SOURCE_DATE_EPOCH set."""
    checkout = workdir / "vendor"
    git(workdir, "clone", "--quiet", "--no-local", str(repo), str(checkout))
    git(checkout, "-c", "advice.detachedHead=false", "checkout", "--quiet", commit)
    epoch = git(checkout, "show", "-s", "--format=%ct", commit)
    subprocess.run(
        ["make"],
        cwd=checkout,
        env={"PATH": os.environ["PATH"], "SOURCE_DATE_EPOCH": epoch},
        check=True,
        capture_output=True,
    )
    dest.mkdir(parents=True, exist_ok=True)
    for item in (checkout / "out").iterdir():
        shutil.copy2(item, dest / item.name)
    shutil.rmtree(checkout)


def make_repo(repo: Path, files: dict[str, str]) -> str:
    """Create a git repository with `files` in one commit; return the commit id."""
    repo.mkdir(parents=True)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "initial")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A hello-world C project in git with a faithful vendor release."""
    repo = tmp_path / "repo"
    commit = make_repo(repo, {"hello.c": HELLO_C, "Makefile": MAKEFILE})
    release = tmp_path / "release"
    vendor_build(repo, commit, release, tmp_path)
    return Project(tmp_path, repo, commit, release)


@pytest.fixture
def run_cli(capsysbinary: pytest.CaptureFixture[bytes]) -> Callable[..., tuple[int, str, str]]:
    """Call `reprover.cli.main` in-process; return (exit code, stdout, stderr)."""
    from reprover.cli import main

    def call(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsysbinary.readouterr()
        return code, out.decode(), err.decode()

    return call


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI (`CI` set, as `.ci/run` and CI services do) a skipped test fails.

    Tests skip when a tool they need is missing (wixl, go, chromium, an unprivileged user...),
    which is convenient on a laptop; CI installs every tool, so a skip there means a check
    silently stopped running.
    """
    report: pytest.TestReport = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool is installed: {reason}"
    return report
