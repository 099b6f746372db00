"""reprover's own release (scripts/release.py): reproducible, and two times differ by mtime only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from archive_support import artifact, report

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"


def build_at(tmp_path: Path, epoch: int) -> Path:
    """Export HEAD and build it with the release recipe at `epoch`; return the output folder."""
    src = tmp_path / f"src-{epoch}"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    subprocess.run([PYTHON, "scripts/release.py", "--build", "out"], cwd=src, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return src / "out"


@pytest.mark.slow
@pytest.mark.skipif(
    subprocess.run([PYTHON, "-c", "import setuptools, wheel"], check=False).returncode != 0
    or shutil.which("git") is None
    or not (ROOT / ".git").exists(),
    reason="needs python3-setuptools, python3-wheel and a git checkout",
)
def test_wheel_and_sdist_built_at_two_times_differ_only_by_archive_mtime(
    tmp_path: Path, run_cli
) -> None:
    one, two = build_at(tmp_path, 1_700_000_000), build_at(tmp_path, 1_800_000_000)
    again = (
        build_at(tmp_path / "again", 1_700_000_000)
        if (tmp_path / "again").mkdir() is None
        else None
    )
    assert again is not None
    for name in sorted(p.name for p in one.iterdir()):
        assert (one / name).read_bytes() == (again / name).read_bytes(), name  # reproducible
        code, rep = report(run_cli, "diff", one / name, two / name)
        assert code == 1
        kinds = {
            d["kind"] for a in rep["artifacts"] for d in a["differences"] if d["cause"] == "root"
        }
        assert kinds == {"timestamp"}, (name, rep)
        code, rep = report(run_cli, "diff", one / name, two / name, "--allow", "archive.mtime")
        assert code == 0, rep
        assert artifact(rep, name)["verdict"] == "equivalent"
