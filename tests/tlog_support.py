"""A real evidence log made through the CLI, for the log tests and the log attacks."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Cli = Callable[..., tuple[int, str, str]]
ORIGIN = "transparency.example/evidence"


@dataclass
class LogFixture:
    """A log folder, its keys and verifier key, and the files it holds (entry i = files[i])."""

    root: Path
    logdir: Path
    key: Path
    vkey: str
    files: list[Path]

    def file(self, name: str, data: bytes) -> Path:
        path = self.root / "files" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path

    def copy(self, name: str) -> Path:
        """A copy of the log folder as it is now (a monitor's mirror)."""
        target = self.root / name
        shutil.copytree(self.logdir, target, symlinks=True)
        return target


def make_key(run_cli: Cli, folder: Path, name: str) -> Path:
    """`reprover key new NAME -d folder`; return the private key path."""
    folder.mkdir(parents=True, exist_ok=True)
    code, _, err = run_cli("key", "new", name, "-d", folder, "-q")
    assert code == 0, err
    return folder / f"{name}.pem"


def make_log(run_cli: Cli, root: Path, entries: int = 10, *, key: Path | None = None) -> LogFixture:
    """Create a log in `root/log` and append `entries` files through the CLI."""
    key = key or make_key(run_cli, root / "keys", "log")
    logdir = root / "log"
    code, out, err = run_cli("log", "init", logdir, "--origin", ORIGIN, "--key", key)
    assert code == 0, err
    fixture = LogFixture(root, logdir, key, out.strip(), [])
    if entries:
        append(run_cli, fixture, [f"entry {i}\n".encode() for i in range(entries)])
    return fixture


def append(run_cli: Cli, fixture: LogFixture, contents: list[bytes], prefix: str = "f") -> None:
    """Append each content as a new file through the CLI."""
    paths = [
        fixture.file(f"{prefix}{len(fixture.files) + i}", data) for i, data in enumerate(contents)
    ]
    code, out, err = run_cli("log", "append", fixture.logdir, *paths, "--key", fixture.key)
    assert code == 0, err
    first = len(fixture.files)
    assert out.split() == [x for i, p in enumerate(paths) for x in (str(first + i), str(p))]
    fixture.files += paths
