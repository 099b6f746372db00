"""Outputs that would destroy an input or a device, and inputs that are not files, via the CLI.

The rule for every command (README, "Files reprover reads and writes"): outputs go to regular
files only, never over an input of the same run (device and inode) nor a device; missing parent
folders are created; inputs are regular files and folders only, FIFOs, devices, sockets,
dangling links and symlink loops are refused (exit 2) before any byte is read.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project
from signature_support import fx

Cli = Callable[..., tuple[int, str, str]]


def _copy(name: str, dest: Path) -> Path:
    dest.write_bytes(fx(name).read_bytes())
    return dest


def test_sign_check_output_over_the_signed_release_is_refused(tmp_path: Path, run_cli: Cli) -> None:
    unsigned = _copy("unsigned.exe", tmp_path / "u.exe")
    signed = _copy("signed.exe", tmp_path / "s.exe")
    before = signed.read_bytes()
    for option in (("-o", signed), ("--report", f"json={signed}")):
        code, _, err = run_cli("sign-check", unsigned, signed, *option)
        assert code == 2, err
        assert "is an input of this run" in err
    linked = tmp_path / "hard-link.exe"
    os.link(signed, linked)  # another name, the same inode
    code, _, err = run_cli("sign-check", unsigned, signed, "-o", linked)
    assert code == 2 and "is an input" in err
    symlinked = tmp_path / "sym.exe"
    symlinked.symlink_to(signed)
    assert run_cli("sign-check", unsigned, signed, "-o", symlinked)[0] == 2
    assert signed.read_bytes() == before


def test_diff_output_over_a_file_inside_a_compared_folder_is_refused(
    tmp_path: Path, run_cli: Cli
) -> None:
    for side in ("old", "new"):
        (tmp_path / side / "sub").mkdir(parents=True)
        (tmp_path / side / "sub" / "a").write_bytes(b"same")
    code, _, err = run_cli("diff", tmp_path / "old", tmp_path / "new", "-o", tmp_path / "new/sub/a")
    assert code == 2 and "is an input" in err
    assert (tmp_path / "new/sub/a").read_bytes() == b"same"


def test_layout_new_output_over_the_owner_key_is_refused(tmp_path: Path, run_cli: Cli) -> None:
    assert run_cli("key", "new", "owner", "-d", tmp_path / "keys")[0] == 0
    key = tmp_path / "keys" / "owner.pem"
    before = key.read_bytes()
    code, _, err = run_cli("layout", "init", "single-team", "-o", tmp_path / "spec.toml")
    assert code == 0, err
    code, _, err = run_cli("layout", "new", tmp_path / "spec.toml", "-o", key, "--key", key)
    assert code == 2 and "is an input" in err
    assert key.read_bytes() == before


def test_verify_output_over_the_manifest_or_a_released_file_is_refused(
    project: Project, run_cli: Cli
) -> None:
    manifest = project.manifest()
    released = project.release / "hello"
    before = (manifest.read_bytes(), released.read_bytes())
    for option in (
        ("-o", manifest),
        ("--report", f"html={released}"),
        ("--attest", released, "--attest-key", fx("leaf.key")),
    ):
        code, _, err = run_cli("verify", manifest, *option)
        assert code == 2, (option, err)
    assert (manifest.read_bytes(), released.read_bytes()) == before


@pytest.mark.parametrize("option", ["-o", "--report", "--attest"])
def test_output_to_dev_null_is_refused_and_the_device_stays(
    project: Project, run_cli: Cli, option: str
) -> None:
    argv: tuple[str, ...] = {
        "-o": ("-o", os.devnull),
        "--report": ("--report", f"json={os.devnull}"),
        "--attest": ("--attest", os.devnull, "--attest-key", str(fx("leaf.key"))),
    }[option]
    code, _, err = run_cli("verify", project.manifest(), *argv)
    assert code == 2, err
    assert "character device" in err
    assert stat.S_ISCHR(Path(os.devnull).stat().st_mode)


def test_output_to_a_folder_is_refused(tmp_path: Path, run_cli: Cli) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"a")
    code, _, err = run_cli("diff", a, a, "-o", tmp_path)
    assert code == 2 and "is a folder" in err


def test_missing_output_folders_are_created_by_every_command(tmp_path: Path, run_cli: Cli) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"a")
    assert run_cli("diff", a, a, "-o", tmp_path / "r/1/out.txt")[0] == 0
    assert run_cli("diff", a, a, "--report", f"json={tmp_path / 'r/2/out.json'}")[0] == 0
    assert run_cli("key", "new", "owner", "-d", tmp_path / "keys/deep")[0] == 0
    assert run_cli("layout", "init", "single-team", "-o", tmp_path / "specs/x.toml")[0] == 0
    (tmp_path / "keys/deep/dev.pub.pem").write_bytes(
        (tmp_path / "keys/deep/owner.pub.pem").read_bytes()
    )
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'readme = "x"\nexpires_days = 30\n[functionaries]\ndev = "keys/deep/dev.pub.pem"\n'
        '[[steps]]\nname = "build"\nfunctionaries = ["dev"]\nthreshold = 1\n'
        'materials = ["DISALLOW *"]\nproducts = ["CREATE *", "DISALLOW *"]\n'
    )
    owner = tmp_path / "keys/deep/owner.pem"
    code, _, err = run_cli("layout", "new", spec, "-o", tmp_path / "l/root.layout", "--key", owner)
    assert code == 0, err
    for path in ("r/1/out.txt", "r/2/out.json", "keys/deep/owner.pem", "specs/x.toml"):
        assert (tmp_path / path).is_file(), path
    assert (tmp_path / "l/root.layout").is_file()


def test_verify_creates_the_folders_of_its_reports_and_attestation(
    project: Project, run_cli: Cli
) -> None:
    target = project.root / "out" / "today"
    code, _, err = run_cli(
        "verify",
        project.manifest(),
        "-o", target / "r.txt",
        "--report", f"junit={target / 'j' / 'junit.xml'}",
        "--attest", target / "a" / "result.intoto.json",
        "--attest-key", fx("leaf.key"),
    )  # fmt: skip
    assert code == 0, err
    for name in ("r.txt", "j/junit.xml", "a/result.intoto.json"):
        assert (target / name).is_file(), name


def _runs_without_hanging(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process: a read of a FIFO would block past the timeout."""
    return subprocess.run(
        [sys.executable, "-m", "reprover", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_fifo_and_device_inputs_are_refused_before_any_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    for argv in (
        ("diff", fifo, plain),
        ("diff", plain, zero),
        ("sign-check", fifo, fx("signed.exe")),
        ("sign-check", fx("unsigned.exe"), zero),
        ("sign-check", fx("unsigned.exe"), fx("signed.exe"), "--trusted", fifo),
    ):
        done = _runs_without_hanging(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "FIFO" in done.stderr or "character device" in done.stderr


def test_fifo_manifest_is_refused_before_any_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "reprover.toml")
    done = _runs_without_hanging("verify", tmp_path)
    assert done.returncode == 2 and "FIFO" in done.stderr, done.stderr


@pytest.mark.slow
def test_fifo_and_socket_inside_a_compared_folder_are_refused(tmp_path: Path) -> None:
    for side in ("old", "new"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "a").write_bytes(b"a")
    os.mkfifo(tmp_path / "new" / "pipe")
    done = _runs_without_hanging("diff", tmp_path / "old", tmp_path / "new")
    assert done.returncode == 2 and "FIFO" in done.stderr, done.stderr
    (tmp_path / "new" / "pipe").unlink()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "old" / "sock"))
    try:
        done = _runs_without_hanging("diff", tmp_path / "old", tmp_path / "new")
        assert done.returncode == 2 and "socket" in done.stderr, done.stderr
    finally:
        server.close()


def test_fifo_in_the_release_folder_is_refused(project: Project, run_cli: Cli) -> None:
    os.mkfifo(project.release / "pipe")
    code, _, err = run_cli("verify", project.manifest())
    assert code == 2 and "FIFO" in err


def test_symlink_loops_are_bad_input(project: Project, run_cli: Cli, tmp_path: Path) -> None:
    (project.release / "loop").symlink_to("loop")
    code, _, err = run_cli("verify", project.manifest())
    assert code == 2 and "symlink loop" in err
    for side in ("old", "new"):
        (tmp_path / side / "sub").mkdir(parents=True)
        (tmp_path / side / "sub" / "up").symlink_to("..")  # a folder link to a folder above it
    code, _, err = run_cli("diff", tmp_path / "old", tmp_path / "new")
    assert code == 2 and "symlink loop" in err
    looped = tmp_path / "self"
    looped.symlink_to("self")
    code, _, err = run_cli("sign-check", looped, fx("signed.exe"))
    assert code == 2 and "symlink loop" in err


def test_folder_diff_refuses_dangling_and_outside_folder_symlinks(
    tmp_path: Path, run_cli: Cli
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for side in (old, new):
        side.mkdir()
        (side / "a").write_bytes(b"a")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_bytes(b"s")
    (new / "outside").symlink_to(tmp_path / "elsewhere")
    code, _, err = run_cli("diff", old, new)
    assert code == 2 and "outside" in err
    (new / "outside").unlink()
    (new / "dangling").symlink_to(tmp_path / "nothing")
    code, _, err = run_cli("diff", old, new)
    assert code == 2 and "dangling" in err


def test_folder_diff_follows_a_one_sided_symlink_inside(tmp_path: Path, run_cli: Cli) -> None:
    """A link on one side and a file on the other compare by content (the link's target)."""
    old, new = tmp_path / "old", tmp_path / "new"
    for side in (old, new):
        (side / "lib").mkdir(parents=True)
        (side / "lib" / "x.so.1").write_bytes(b"library")
    (old / "x.so").write_bytes(b"library")
    (new / "x.so").symlink_to("lib/x.so.1")
    (new / "libs").symlink_to("lib")  # a folder link: its files are listed under libs/
    (old / "libs").mkdir()
    (old / "libs" / "x.so.1").write_bytes(b"library")
    code, out, err = run_cli("diff", old, new)
    assert code == 0, out + err
    (new / "lib" / "x.so.1").write_bytes(b"changed")
    assert run_cli("diff", old, new)[0] == 1


def test_layout_new_writes_nothing_on_lint_errors(tmp_path: Path, run_cli: Cli) -> None:
    assert run_cli("key", "new", "owner", "-d", tmp_path)[0] == 0
    assert run_cli("key", "new", "dev", "-d", tmp_path)[0] == 0
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'readme = "x"\nexpires_days = 30\n[functionaries]\ndev = "dev.pub.pem"\n'
        '[[steps]]\nname = "build"\nfunctionaries = ["dev"]\nthreshold = 3\n'
        'materials = ["ALLOW *"]\nproducts = ["ALLOW *"]\n'
    )
    target = tmp_path / "root.layout"
    code, _, err = run_cli("layout", "new", spec, "-o", target, "--key", tmp_path / "owner.pem")
    assert code == 1, err
    assert "not written" in err and not target.exists()


def test_layout_check_without_key_says_the_signature_was_not_checked(
    tmp_path: Path, run_cli: Cli
) -> None:
    assert run_cli("key", "new", "owner", "-d", tmp_path)[0] == 0
    assert run_cli("key", "new", "dev", "-d", tmp_path)[0] == 0
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'readme = "x"\nexpires_days = 30\n[functionaries]\ndev = "dev.pub.pem"\n'
        '[[steps]]\nname = "build"\nfunctionaries = ["dev"]\nthreshold = 1\n'
        'materials = ["DISALLOW *"]\nproducts = ["CREATE *", "DISALLOW *"]\n'
    )
    target = tmp_path / "root.layout"
    code, _, err = run_cli("layout", "new", spec, "-o", target, "--key", tmp_path / "owner.pem")
    assert code == 0, err
    code, _, err = run_cli("layout", "check", target)
    assert "signature NOT checked" in err
    code, _, err = run_cli("layout", "check", target, "--key", tmp_path / "owner.pub.pem")
    assert "signature checked against 1 owner key" in err
    code, _, err = run_cli("layout", "check", spec)
    assert code == 2 and "reprover layout new" in err
