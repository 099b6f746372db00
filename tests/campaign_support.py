"""Campaign test support: several small real releases, and a real Dask cluster on 127.0.0.1.

`make_releases` builds N distinct C projects in git, each released by its vendor, each with
its own manifest and build path. `DaskCluster` starts `dask scheduler` and `dask worker`s
with the `dask` CLI (every port on 127.0.0.1), can kill a worker, and on exit kills every
process it started and every descendant of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from distributed import Client

from conftest import MAKEFILE, git, make_repo, vendor_build

STARTUP_SECONDS = 60


def hello_source(n: int) -> str:
    """A small C program, different for each `n`."""
    return (
        "#include <stdio.h>\n"
        f'static const char banner[] = "release {n} of the engine";\n'
        "int main(void) { puts(banner); return 0; }\n"
    )


def make_releases(
    root: Path, count: int, *, build_seconds: float = 0, build_path: str | None = None
) -> list[Path]:
    """Create `count` projects under `root`; return their manifests, in order.

    With `build_seconds`, each rebuild sleeps that long first (so a test can act mid-build).
    With `build_path`, every manifest builds at that one fixed path (else each its own).
    """
    makefile = MAKEFILE
    if build_seconds:
        makefile = MAKEFILE.replace("\tmkdir -p out", f"\tsleep {build_seconds}\n\tmkdir -p out")
    manifests = []
    for n in range(count):
        base = root / f"p{n}"
        repo = base / "repo"
        commit = make_repo(repo, {"hello.c": hello_source(n), "Makefile": MAKEFILE})
        vendor_build(repo, commit, base / "release", base)
        if build_seconds:
            (repo / "Makefile").write_text(makefile)
            git(repo, "commit", "--quiet", "-am", "slow build")
            commit = git(repo, "rev-parse", "HEAD")
        manifest = base / f"engine{n}.toml"
        manifest.write_text(
            "[source]\n"
            'repo = "repo"\n'
            f'commit = "{commit}"\n'
            "[build]\n"
            'command = ["make"]\n'
            'output = "out"\n'
            f'path = "{build_path or base / "build"}"\n'
            "timeout = 120\n"
            "[release]\n"
            'path = "release"\n'
        )
        manifests.append(manifest)
    return manifests


def dask_cli(*args: str) -> list[str]:
    """argv of the `dask` command of this Python environment."""
    return [str(Path(sys.executable).with_name("dask")), *args]


@dataclass
class DaskCluster:
    """A scheduler and workers started with the real `dask` CLI, on 127.0.0.1 only."""

    folder: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    address: str = ""

    def __enter__(self) -> DaskCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        scheduler_file = self.folder / "scheduler.json"
        self._start(
            "scheduler",
            dask_cli(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ),
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            self._alive_or_fail("scheduler", deadline)
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        return self

    def add_worker(self, name: str, *, nanny: bool = True, preload: Path | None = None) -> None:
        """Start one single-threaded worker and wait until the scheduler lists it."""
        argv = dask_cli(
            "worker",
            self.address,
            "--name",
            name,
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--local-directory",
            str(self.folder / name),
            "--nanny" if nanny else "--no-nanny",
        )
        if preload is not None:
            argv += ["--preload", str(preload)]
        self._start(name, argv)
        deadline = time.monotonic() + STARTUP_SECONDS
        while name not in self.worker_names():
            self._alive_or_fail(name, deadline)
            time.sleep(0.2)

    def worker_names(self) -> set[str]:
        """Names of the workers the scheduler knows."""
        return set(self.worker_addresses())

    def worker_addresses(self) -> dict[str, str]:
        """Each known worker's name and address, asked through a short-lived client."""
        with Client(self.address, timeout=10) as client:
            info = client.scheduler_info(n_workers=-1)
        return {str(w.get("name")): address for address, w in info["workers"].items()}

    def is_building(self, name: str) -> bool:
        """Whether worker `name` has a running build (a `make` among its descendants)."""
        try:
            children = psutil.Process(self.procs[name].pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        with contextlib.suppress(psutil.Error):
            return any(c.name() in {"make", "sleep", "bwrap"} for c in children)
        return False

    def kill(self, name: str) -> None:
        """SIGKILL worker `name` and everything it started."""
        self._kill_tree(self.procs[name])

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(list(self.procs.values())):
            self._kill_tree(proc)

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def _alive_or_fail(self, name: str, deadline: float) -> None:
        proc = self.procs[name]
        log = (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]
        if proc.poll() is not None:
            raise RuntimeError(f"dask {name} exited {proc.returncode}:\n{log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"dask {name} did not start in {STARTUP_SECONDS} s:\n{log}")

    @staticmethod
    def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.send_signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
