"""What an installed copy holds: the wheel ships the layout templates and guide that `--help`
points at, and `reprover layout init` writes them from the installed package, not the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reprover.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"  # Debian's python3-setuptools and python3-wheel build the wheel


def _help_texts() -> dict[str, str]:
    """The --help text of every command and subcommand."""
    texts: dict[str, str] = {}

    def walk(parser: object, name: str) -> None:
        texts[name] = parser.format_help()  # type: ignore[attr-defined]
        for action in getattr(parser, "_actions", []):
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                for sub_name, sub in choices.items():
                    walk(sub, f"{name} {sub_name}")

    walk(build_parser(), "reprover")
    return texts


def test_no_help_text_points_at_a_file_of_the_source_checkout() -> None:
    """Pointers must resolve in an installed copy: a command, never a repository path."""
    for name, text in _help_texts().items():
        assert not re.search(r"[\w/-]+\.md\b|README|layouts/", text), (name, text)
    assert "reprover layout init --guide" in _help_texts()["reprover layout new"]


@pytest.mark.slow
@pytest.mark.skipif(
    subprocess.run([PYTHON, "-c", "import setuptools, wheel"], check=False).returncode != 0,
    reason="needs python3-setuptools and python3-wheel (.ci/apt-packages.txt)",
)
def test_the_wheel_ships_the_templates_and_layout_init_uses_them(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / item, source / item)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path / "dist"
    built = subprocess.run(
        [
            PYTHON,
            "-c",
            f"from setuptools import build_meta; print(build_meta.build_wheel({str(dist)!r}))",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    wheel = dist / built
    names = set(zipfile.ZipFile(wheel).namelist())
    for packaged in ("transparency-center.toml", "single-team.toml", "README.md"):
        assert f"reprover/layouts/{packaged}" in names
    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import reprover; print(reprover.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(installed)), where  # the installed copy, not the checkout
    work = tmp_path / "work"
    work.mkdir()
    for template in ("transparency-center", "single-team"):
        subprocess.run(
            [sys.executable, "-m", "reprover", "layout", "init", template],
            cwd=work, env=env, check=True, capture_output=True,
        )  # fmt: skip
        shipped = (ROOT / "src" / "reprover" / "layouts" / f"{template}.toml").read_bytes()
        assert (work / f"{template}.toml").read_bytes() == shipped
    guide = subprocess.run(
        [sys.executable, "-m", "reprover", "layout", "init", "--guide"],
        cwd=work, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert guide.startswith("# in-toto layouts") and "## The specification format" in guide
