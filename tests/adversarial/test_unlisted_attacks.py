"""Every released file is accounted for: a file the manifest does not list fails as `unlisted`.

The vendor's release folder is what users download. With `[[artifact]]` naming only `hello`,
a `backdoor.dll` shipped beside it must fail the run (with and without `--strict`) and be named
in every report, unless the verifier chose to ignore it, in which case its digest is listed.
Run through the real CLI on a real C build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from conftest import Project

Cli = Callable[..., tuple[int, str, str]]
ONLY_HELLO = '[[artifact]]\npath = "hello"\n'


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_unlisted_backdoor_dll_in_the_release(project: Project, run_cli: Cli, strict: bool) -> None:
    backdoor = project.release / "backdoor.dll"
    backdoor.write_bytes(b"MZ not built from source")
    (project.release / "plugins").mkdir()
    (project.release / "plugins" / "hook.so").write_bytes(b"\x7fELF hook")
    argv = ["verify", project.manifest(extra=ONLY_HELLO), "--format", "json"]
    code, out, err = run_cli(*argv, *(["--strict"] if strict else []))
    assert code == 1, err
    report = json.loads(out)
    assert report["verdict"] == "fail"
    verdicts = {a["path"]: a["verdict"] for a in report["artifacts"]}
    assert verdicts == {
        "hello": "identical",
        "backdoor.dll": "unlisted",
        "plugins/hook.so": "unlisted",
    }
    [dll] = [a for a in report["artifacts"] if a["path"] == "backdoor.dll"]
    assert dll["released"]["sha256"] == hashlib.sha256(backdoor.read_bytes()).hexdigest()
    code, text, _ = run_cli("verify", project.manifest(extra=ONLY_HELLO), "--format", "text")
    assert code == 1
    assert "backdoor.dll" in text and "unlisted" in text


def test_ignored_release_files_are_listed_with_digests(project: Project, run_cli: Cli) -> None:
    backdoor = project.release / "backdoor.dll"
    backdoor.write_bytes(b"MZ not built from source")
    (project.release / "hello.sha256").write_text("checksums\n")
    extra = 'ignore = ["*.dll", "*.sha256"]\n' + ONLY_HELLO
    code, out, err = run_cli("verify", project.manifest(extra=extra), "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    [check] = [c for c in report["checks"] if c["name"] == "release-ignored"]
    assert check["passed"] is True
    sha = hashlib.sha256(backdoor.read_bytes()).hexdigest()
    assert f"backdoor.dll: sha256 {sha}, {len(backdoor.read_bytes())} bytes" in check["findings"]
    assert [a["path"] for a in report["artifacts"]] == ["hello"]


def test_unlisted_symlink_out_of_the_release_is_refused(project: Project, run_cli: Cli) -> None:
    (project.release / "latest").symlink_to("/etc/passwd")
    code, _, err = run_cli("verify", project.manifest(extra=ONLY_HELLO), "--format", "json")
    assert code == 2, err
    assert "released file 'latest' resolves to /etc/passwd, outside" in err


def test_ignore_pattern_cannot_hide_a_listed_artifact(project: Project, run_cli: Cli) -> None:
    extra = 'ignore = ["hel*"]\n' + ONLY_HELLO
    code, _, err = run_cli("verify", project.manifest(extra=extra))
    assert code == 2
    assert "[release] ignore: 'hel*' matches the listed artifact 'hello'" in err
