"""Faults: a killed build, Ctrl-C, git missing, a full disk, a read-only output folder.

Each ends with exit 3 (130 for Ctrl-C), a clear message, and no partial file where a report
should be.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project

Cli = Callable[..., tuple[int, str, str]]


def _reprover(*args: str | Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "reprover", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_build_killed_midway_is_inconclusive(project: Project, run_cli: Cli) -> None:
    report = project.root / "report.json"
    manifest = project.manifest(command='["sh", "-c", "echo started; kill -9 $$"]')
    code, out, err = run_cli("verify", manifest, "-o", report)
    assert code == 3
    assert out == ""
    assert "the build failed with exit code" in err
    assert "started" in err
    assert "verdict: INCONCLUSIVE" in report.read_text()  # every run that ends leaves its report
    assert "the build failed with exit code" in report.read_text()
    assert "full log: " in report.read_text()
    assert not (project.root / "build").exists()


@pytest.mark.slow
def test_ctrl_c_during_build_exits_130_and_writes_nothing(project: Project) -> None:
    report = project.root / "report.json"
    tmp = project.root / "tmp"  # reprover's private folders go here; the build cannot see it
    tmp.mkdir()
    sleep = f"sleep {5_000_000 + secrets.randbelow(10**6)}"  # unique: pgrep finds only ours
    manifest = project.manifest(command=f'["sh", "-c", "echo build-started; {sleep}"]')
    process = _reprover(
        "verify", manifest, "-o", report, env={**os.environ, "TMPDIR": str(tmp)},
        # As from a shell: an ignored SIGINT is inherited across exec, and a library used by an
        # earlier test in this pytest process may have left it ignored (then Ctrl-C did nothing
        # and the build ran to its timeout: exit 3).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    # Wait for the build's first line (generous: a loaded machine may take minutes to clone,
    # probe the sandbox and start it); the wait only bounds a hang, it decides nothing.
    deadline = time.monotonic() + 600
    while (
        time.monotonic() < deadline
        and process.poll() is None
        and not any(
            b"build-started" in log.read_bytes() for log in tmp.glob("reprover-log-*/build.log")
        )
    ):
        time.sleep(0.05)
    if process.poll() is not None:
        pytest.fail(f"reprover ended before the build started: {process.communicate()[1]}")
    assert list(tmp.glob("reprover-run-*")), "the build did not start"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130
    assert "interrupted" in err
    assert "Traceback" not in err
    assert not report.exists()
    assert not list(tmp.glob("reprover-run-*"))  # the private checkout is removed
    assert _leftovers(project.root) == []
    sleepers = subprocess.run(
        ["pgrep", "-f", f"echo build-started; {sleep}"], capture_output=True, text=True, check=False
    )
    assert sleepers.stdout == "", "the build's processes outlived reprover"


def test_git_missing_is_inconclusive(
    project: Project, run_cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin-without-git"
    bin_dir.mkdir()
    for tool in ("sh", "make", "cc", "unshare", "bwrap", "true"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    code, out, err = run_cli("verify", project.manifest())
    assert code == 3
    assert "git is not installed" in err
    assert "reason:  git is not installed" in out


def _no_file_size_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))


def test_disk_full_while_writing_report_leaves_nothing(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 300 bytes fail, as a full disk would."""
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(bytes(4096))
    b.write_bytes(bytes(2048) + b"\x01" + bytes(2047))
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    report = out_dir / "report.json"
    process = _reprover(
        "diff", a, b, "--format", "json", "-o", report, preexec_fn=_no_file_size_limit
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert "cannot write" in err
    assert "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_read_only_output_folder_leaves_nothing(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(b"same")
    out_dir = tmp_path / "readonly"
    out_dir.mkdir()
    report = out_dir / "report.json"
    command = [sys.executable, "-m", "reprover", "diff", str(a), str(a), "-o", str(report)]
    if os.geteuid() == 0:  # root ignores permissions: make the folder a read-only mount
        if subprocess.run(["unshare", "-rm", "true"], check=False).returncode != 0:
            pytest.skip("no mount namespace available to make a read-only folder as root")
        script = f'mount --bind -o ro "{out_dir}" "{out_dir}" && exec "$@"'
        command = ["unshare", "-rm", "sh", "-c", script, "sh", *command]
    else:
        out_dir.chmod(0o555)
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "cannot write" in done.stderr
    assert list(out_dir.iterdir()) == []


def test_lief_worker_killed_is_restarted_and_never_passes(run_cli: Cli) -> None:
    """SIGKILL the parse server between files: the next comparison restarts it."""
    from reprover.compare.isolation import worker

    pair = Path(__file__).parent / "fixtures" / "ledger" / "elf-date"
    assert not isinstance(worker.parse_regions(pair / "a"), worker.Unparsed)
    server = worker._server
    assert server is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    code, out, _ = run_cli("diff", pair / "a", pair / "b", "--format", "json")
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    assert artifact["verdict"] == "different"
    assert all(d["kind"] != "unparsed" for d in artifact["differences"])
    assert worker._server is not server
