"""End to end: `reprover verify` on a real C project, its release, and broken variants."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

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


def test_text_report_names_verdict_and_offset(project: Project, run_cli: Cli) -> None:
    binary = project.release / "hello"
    data = bytearray(binary.read_bytes())
    data[0x1100] ^= 0xFF
    binary.write_bytes(bytes(data))
    code, out, _ = run_cli("verify", project.manifest())
    assert code == 1
    assert out.startswith("verdict: FAIL")
    assert "0x00001100" in out


def test_unexpected_rebuilt_file_fails_only_when_strict(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest(command='["sh", "-c", "make && echo extra > out/extra.txt"]')
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0
    assert {a["path"]: a["verdict"] for a in json.loads(out)["artifacts"]}["extra.txt"] == (
        "unexpected"
    )
    assert run_cli("verify", manifest, "--strict")[0] == 1


def test_listed_artifacts_only_are_compared(project: Project, run_cli: Cli) -> None:
    # Another released file must be ignored explicitly (else it is `unlisted` and fails:
    # tests/adversarial/test_unlisted_attacks.py); it is then listed with its digest.
    (project.release / "notes.txt").write_text("not an artifact")
    manifest = project.manifest(extra='ignore = ["*.txt"]\n[[artifact]]\npath = "hello"\n')
    code, out, _ = run_cli("verify", manifest, "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert [a["path"] for a in report["artifacts"]] == ["hello"]
    [ignored] = [c for c in report["checks"] if c["name"] == "release-ignored"]
    assert ignored["findings"][0].startswith("notes.txt: sha256 ")


def test_build_failure_is_inconclusive_with_log_tail(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest(command='"echo compiling; echo fatal: no compiler >&2; exit 7"')
    code, out, err = run_cli("verify", manifest)
    assert code == 3
    assert out.startswith("verdict: INCONCLUSIVE")  # the report is written all the same
    assert "fatal: no compiler" in out
    assert "exit code 7" in err
    assert "fatal: no compiler" in err
    assert "Traceback" not in err


def test_build_timeout_is_inconclusive(project: Project, run_cli: Cli) -> None:
    body = project.manifest().read_text().replace("timeout = 120", "timeout = 1")
    manifest = project.manifest(body.replace('command = ["make"]', 'command = ["sleep", "30"]'))
    code, _, err = run_cli("verify", manifest)
    assert code == 3
    assert "timeout of 1 s" in err


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


def test_verify_folder_reads_its_reprover_toml(project: Project, run_cli: Cli) -> None:
    code, _, err = run_cli("verify", project.root)
    assert code == 2
    assert "holds no reprover.toml" in err
    project.manifest()
    code, out, err = run_cli("verify", project.root)
    assert code == 0, err
    assert f"reprover verify {project.root / 'reprover.toml'}" in out


def test_unreadable_manifest_is_bad_input(project: Project, run_cli: Cli) -> None:
    manifest = project.manifest()
    manifest.unlink()
    manifest.mkdir()
    (manifest / "reprover.toml").mkdir()  # a folder where the file should be
    code, _, err = run_cli("verify", manifest)
    assert code == 2
    assert "is a folder, not a regular file" in err


def test_build_path_exists_only_inside_the_sandbox(project: Project, run_cli: Cli) -> None:
    """The checkout lives in a private folder bound at the build path: nothing on the host."""
    manifest = project.manifest()
    assert run_cli("verify", manifest)[0] == 0
    assert not (project.root / "build").exists()
    code, _, err = run_cli("verify", manifest, "--keep-build")
    assert code == 0
    assert not (project.root / "build").exists()
    [kept] = re.findall(r"kept in (\S+)", err)
    assert (Path(kept) / "checkout" / "out" / "hello").is_file()
    assert Path(kept).stat().st_mode & 0o777 == 0o700
    shutil.rmtree(kept)
    assert run_cli("verify", manifest)[0] == 0


def test_foreign_folder_at_build_path_is_not_touched(project: Project, run_cli: Cli) -> None:
    precious = project.root / "build" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("keep me")
    code, _, _ = run_cli("verify", project.manifest())
    assert code == 0
    assert precious.read_text() == "keep me"
    assert sorted(p.name for p in precious.parent.iterdir()) == ["precious.txt"]
