"""The GitHub Action: its YAML, and its shell steps run locally against a real release.

PyYAML is not a dependency of reprover, and is not added just to read two files: the YAML is
read with PyYAML when this Python has it, else with a system python3 that has it (GitHub's
Ubuntu runners and Debian's python3-yaml do); without either the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import Project

ROOT = Path(__file__).resolve().parent.parent
TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def load(path: Path) -> dict[Any, Any]:
    """Parse a YAML file with PyYAML, here or in the system's python3."""
    try:
        import yaml
    except ImportError:
        python = shutil.which("python3", path="/usr/bin:/bin")
        done = (
            subprocess.run(
                [python, "-c", TO_JSON],
                input=path.read_text(),
                capture_output=True,
                text=True,
                check=False,
            )
            if python
            else None
        )
        if done is None or done.returncode != 0:
            pytest.skip("PyYAML is not installed here nor in /usr/bin/python3; it reads action.yml")
        data = json.loads(done.stdout)
    else:
        data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def action_step(name: str) -> dict[str, Any]:
    steps = load(ROOT / "action.yml")["runs"]["steps"]
    return next(s for s in steps if s.get("name") == name)


def test_action_is_a_composite_with_the_documented_inputs() -> None:
    action = load(ROOT / "action.yml")
    assert action["runs"]["using"] == "composite"
    assert {"manifest", "reports", "attestation", "attestation-key"} <= set(action["inputs"])
    assert set(action["outputs"]) == {"verdict", "exit-code", "report-dir"}
    steps = action["runs"]["steps"]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            # inputs reach scripts through env only: no expression is spliced into shell code
            assert "${{" not in step["run"], step["name"]
    fail = action_step("Fail unless verified")
    assert fail["if"] == "always()"


def test_release_gate_workflow_uses_the_action() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "release-gate.yml")
    # YAML 1.1 reads a bare `on` as True (and JSON writes that key as "true")
    triggers = workflow.get("on") or workflow.get(True) or workflow.get("true")
    assert "release" in triggers
    steps = workflow["jobs"]["verify"]["steps"]
    gate = next(s for s in steps if s.get("id") == "reprover")
    assert gate["uses"] == "./"
    assert workflow["jobs"]["verify"]["permissions"]["id-token"] == "write"
    assert workflow["jobs"]["publish"]["needs"] == "verify"


def run_step(name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one of the action's bash steps as the runner would, with `env` as its inputs."""
    script = action_step(name)["run"]
    full = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(cwd),
        **env,
    }
    return subprocess.run(
        ["bash", "-e", "-c", script],
        check=False,
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.mark.parametrize("tamper", [False, True])
def test_verify_and_fail_steps_run_locally(project: Project, tamper: bool) -> None:
    if tamper:
        binary = project.release / "hello"
        data = bytearray(binary.read_bytes())
        data[data.index(b"hello from the engine")] ^= 0x20
        binary.write_bytes(bytes(data))
    manifest = project.manifest()
    github_output = project.root / "github_output"
    summary = project.root / "step_summary"
    env = {
        "MANIFEST": str(manifest),
        "REPORTS": "html,junit json",
        "REPORT_DIR": "reports",
        "ATTESTATION": "none",
        "ATTESTATION_KEY": "",
        "EXTRA_ARGS": "",
        "GITHUB_OUTPUT": str(github_output),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = run_step("Verify the release", env, project.root)
    assert done.returncode == 0, done.stderr
    result = outputs(github_output)
    expected = ("1", "fail") if tamper else ("0", "pass")
    assert (result["exit-code"], result["verdict"]) == expected
    reports = project.root / "reports"
    assert sorted(p.name for p in reports.iterdir()) == [
        "junit.xml", "report.html", "report.json", "summary.md"
    ]  # fmt: skip
    icon = "\u274c" if tamper else "\u2705"
    assert summary.read_text().startswith(f"## {icon} reprover verify")
    root = ET.fromstring((reports / "junit.xml").read_bytes())  # noqa: S314 - our own output
    assert root.get("failures") == ("1" if tamper else "0")
    fail = run_step(
        "Fail unless verified",
        {"CODE": result["exit-code"], "VERDICT": result["verdict"]},
        project.root,
    )
    assert fail.returncode == int(expected[0])
    if tamper:
        assert "::error title=reprover::release not verified: fail (exit 1)" in fail.stdout


def test_bad_inputs_become_exit_2(project: Project) -> None:
    github_output = project.root / "github_output"
    env = {
        "MANIFEST": str(project.manifest()),
        "REPORTS": "html pdf",
        "REPORT_DIR": "reports",
        "ATTESTATION": "none",
        "ATTESTATION_KEY": "",
        "EXTRA_ARGS": "",
        "GITHUB_OUTPUT": str(github_output),
        "GITHUB_STEP_SUMMARY": str(project.root / "summary"),
    }
    done = run_step("Verify the release", env, project.root)
    assert "unknown report format 'pdf'" in done.stdout
    assert outputs(github_output) == {"exit-code": "2", "verdict": "bad-input"}
    assert run_step("Fail unless verified", {"CODE": "2"}, project.root).returncode == 2
    assert run_step("Fail unless verified", {}, project.root).returncode == 3


def test_sandbox_step_leaves_a_working_bubblewrap(project: Project) -> None:
    """Run as the runner would: here bubblewrap is installed, so the step only checks it works.

    On a stock Ubuntu runner the same step installs bubblewrap and lifts AppArmor's ban on
    unprivileged user namespaces; both commands are in the step this test runs.
    """
    step = action_step("Prepare the build sandbox")["run"]
    assert "apt-get install" in step and "bubblewrap" in step
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in step
    done = run_step("Prepare the build sandbox", {}, project.root)
    assert done.returncode == 0, done.stderr
    assert "reprover: bubblewrap sandbox available" in done.stdout, done.stdout


def test_an_inconclusive_run_still_writes_every_report_and_the_summary(project: Project) -> None:
    manifest = project.manifest(command='"echo fatal: no compiler >&2; exit 7"')
    github_output = project.root / "github_output"
    summary = project.root / "step_summary"
    env = {
        "MANIFEST": str(manifest),
        "REPORTS": "html junit json text",
        "REPORT_DIR": "reports",
        "ATTESTATION": "none",
        "ATTESTATION_KEY": "",
        "EXTRA_ARGS": "",
        "GITHUB_OUTPUT": str(github_output),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = run_step("Verify the release", env, project.root)
    assert done.returncode == 0, done.stderr
    assert outputs(github_output) == {"exit-code": "3", "verdict": "inconclusive"}
    reports = project.root / "reports"
    shown = summary.read_text()
    assert shown.startswith("## \u26a0\ufe0f reprover verify: INCONCLUSIVE")
    assert "the build failed with exit code 7" in shown and "fatal: no compiler" in shown
    document = json.loads((reports / "report.json").read_text())
    assert document["verdict"] == "inconclusive"
    assert "exit code 7" in document["inconclusive"]["reason"]
    assert "fatal: no compiler" in document["inconclusive"]["log_tail"]
    root = ET.fromstring((reports / "junit.xml").read_bytes())  # noqa: S314 - our own output
    error = root.find(".//error")
    assert error is not None and "exit code 7" in (error.get("message") or "")
    assert "fatal: no compiler" in (error.text or "")
    assert root.get("errors") == "1"
    assert "verdict: INCONCLUSIVE" in (reports / "report.txt").read_text()
    assert "Why the run is inconclusive" in (reports / "report.html").read_text()
