"""End to end: `reprover verify` on a real C project, its release, and broken variants."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable

import pytest

from conftest import Project

Cli = Callable[..., tuple[int, str, str]]


def test_faithful_release_passes_with_json_contract(project: Project, run_cli: Cli) -> None:
    code, out, _ = run_cli("verify", project.manifest(), "--format", "json")
    report = json.loads(out)
    assert code == 0, out
    assert report["schema"] == "reprover/report/v1"
    assert report["verdict"] == "pass"
    assert report["source"]["commit"] == project.commit
    assert len(report["source"]["tree"]) == 40
    assert report["source"]["committer_time"] == 1769947200
    [artifact] = report["artifacts"]
    assert artifact["path"] == "hello"
    assert artifact["verdict"] == "identical"
    assert artifact["released"] == artifact["rebuilt"]
    assert artifact["released"]["size"] == (project.release / "hello").stat().st_size
    assert report["build"]["network_isolated"] is True
    assert "cc" in report["build"]["toolchain"]
    assert "timestamp" not in report


def test_report_bytes_are_reproducible_and_written_atomically(
    project: Project, run_cli: Cli
) -> None:
    manifest = project.manifest()
    first, second = project.root / "a.json", project.root / "b.json"
    assert run_cli("verify", manifest, "--format", "json", "-o", first)[0] == 0
    assert run_cli("verify", manifest, "--format", "json", "-o", second)[0] == 0
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in project.root.iterdir() if p.name.startswith(".")) == []
    code, out, _ = run_cli("verify", manifest, "--format", "json", "--timestamps")
    assert code == 0
    assert json.loads(out)["timestamp"].endswith("+00:00")


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


def test_text_report_names_verdict_and_offset(project: Project, run_cli: Cli) -> None:
    binary = project.release / "hello"
    data = bytearray(binary.read_bytes())
    data[0x1100] ^= 0xFF
    binary.write_bytes(bytes(data))
    code, out, _ = run_cli("verify", project.manifest())
    assert code == 1
    assert out.startswith("verdict: FAIL")
    assert "0x00001100" in out


def test_extra_released_file_is_missing_from_rebuild(project: Project, run_cli: Cli) -> None:
    (project.release / "backdoor.dll").write_bytes(b"MZ not built from source")
    code, out, _ = run_cli("verify", project.manifest(), "--format", "json")
    assert code == 1
    verdicts = {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}
    assert verdicts == {"backdoor.dll": "missing", "hello": "identical"}


def test_unexpected_rebuilt_file_fails_only_when_strict(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest(command='["sh", "-c", "make && echo extra > out/extra.txt"]')
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0
    assert {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}["extra.txt"] == (
        "unexpected"
    )
    assert run_cli("verify", manifest, "--strict")[0] == 1


def test_listed_artifacts_only_are_compared(project: Project, run_cli: Cli) -> None:
    (project.release / "notes.txt").write_text("not an artifact")
    manifest = project.manifest(extra='[[artifact]]\npath = "hello"\n')
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0
    assert [a["path"] for a in json.loads(out)["artifacts"]] == ["hello"]


def test_build_failure_is_inconclusive_with_log_tail(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest(command='"echo compiling; echo fatal: no compiler >&2; exit 7"')
    code, out, err = run_cli("verify", manifest)
    assert code == 3
    assert out == ""
    assert "exit code 7" in err
    assert "fatal: no compiler" in err
    assert "Traceback" not in err


def test_build_timeout_is_inconclusive(project: Project, run_cli: Cli) -> None:
    body = project.manifest().read_text().replace("timeout = 120", "timeout = 1")
    manifest = project.manifest(body.replace('command = ["make"]', 'command = ["sleep", "30"]'))
    code, _, err = run_cli("verify", manifest)
    assert code == 3
    assert "timeout of 1 s" in err


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


@pytest.mark.parametrize(
    ("commit", "message"),
    [
        ("main", "not a full commit SHA"),
        ("deadbee", "not a full commit SHA"),
        ("0" * 40, "does not exist"),
    ],
)
def test_commit_must_be_a_full_existing_sha(
    project: Project, run_cli: Cli, commit: str, message: str
) -> None:
    code, _, err = run_cli("verify", project.manifest(commit=commit))
    assert code == 2
    assert message in err


def test_tree_object_is_not_a_commit(project: Project, run_cli: Cli) -> None:
    from conftest import git

    tree = git(project.repo, "rev-parse", "HEAD^{tree}")
    code, _, err = run_cli("verify", project.manifest(commit=tree))
    assert code == 2
    assert "it is a tree" in err


def test_missing_repository_is_bad_input(project: Project, run_cli: Cli) -> None:
    code, _, err = run_cli("verify", project.manifest(repo="no-such-repo"))
    assert code == 2
    assert "cannot clone" in err


def test_user_work_tree_is_untouched(project: Project, run_cli: Cli) -> None:
    (project.repo / "hello.c").write_text("uncommitted edit")
    assert run_cli("verify", project.manifest())[0] == 0
    assert (project.repo / "hello.c").read_text() == "uncommitted edit"
    assert not (project.repo / "out").exists()


@pytest.mark.parametrize("release", ["missing-folder", "empty"])
def test_release_missing_or_empty(project: Project, run_cli: Cli, release: str) -> None:
    (project.root / "empty").mkdir()
    code, _, err = run_cli("verify", project.manifest(release=release))
    assert code == 2
    assert "release" in err


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


def test_release_inside_build_path_is_refused(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest(build_path=str(project.root / "release"))
    code, _, err = run_cli("verify", manifest)
    assert code == 2
    assert "inside the build path" in err


def test_unreadable_manifest_is_bad_input(project: Project, run_cli: Cli) -> None:
    code, _, err = run_cli("verify", project.root)
    assert code == 2
    assert "cannot read manifest" in err


def test_build_path_is_removed_and_reusable(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest()
    assert run_cli("verify", manifest)[0] == 0
    assert not (project.root / "build").exists()
    assert run_cli("verify", manifest, "--keep-build")[0] == 0
    assert (project.root / "build" / "out" / "hello").is_file()
    assert run_cli("verify", manifest)[0] == 0


def test_foreign_folder_at_build_path_is_not_deleted(project: Project, run_cli: Cli) -> None:
    precious = project.root / "build" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("keep me")
    code, _, err = run_cli("verify", project.manifest())
    assert code == 2
    assert "not created by reprover" in err
    assert precious.read_text() == "keep me"


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
    code, out, _ = run_cli("verify", project.manifest(command=command), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert "filesystem NOT protected" in report["build"]["isolation"]
    [check] = report["checks"]
    assert check["name"] == "release-integrity"
    assert check["passed"] is False
    assert check["findings"] == ["hello"]
