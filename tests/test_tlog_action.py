"""The GitHub Action appends its attestation to an evidence log and uploads the proof."""

from __future__ import annotations

from pathlib import Path

from conftest import Project
from test_action import load, outputs, run_step
from tlog_support import Cli, make_key, make_log


def test_action_logs_the_attestation_and_writes_the_proof(project: Project, run_cli: Cli) -> None:
    log = make_log(run_cli, project.root / "evidence", entries=0)
    lab = make_key(run_cli, project.root / "keys", "lab")
    github_output = project.root / "github_output"
    env = {
        "MANIFEST": str(project.manifest()),
        "REPORTS": "json",
        "REPORT_DIR": "reports",
        "ATTESTATION": "key",
        "ATTESTATION_KEY": str(lab),
        "LOG_DIR": str(log.logdir),
        "LOG_KEY": str(log.key),
        "EXTRA_ARGS": "",
        "GITHUB_OUTPUT": str(github_output),
        "GITHUB_STEP_SUMMARY": str(project.root / "summary"),
    }
    done = run_step("Verify the release", env, project.root)
    assert done.returncode == 0, done.stderr
    assert outputs(github_output)["verdict"] == "pass", done.stderr
    reports = project.root / "reports"
    attestation = reports / "reprover.intoto.json"
    proof = reports / "reprover.intoto.json.proof.json"
    code, out, err = run_cli("log", "check", proof, attestation, "--vkey", log.vkey)
    assert code == 0, err
    assert "is entry 0" in out
    # a log without an attestation to put in it is bad input, not a silent skip
    github_output.unlink()
    done = run_step("Verify the release", {**env, "ATTESTATION": "none"}, project.root)
    assert outputs(github_output)["verdict"] == "bad-input", done.stderr


def test_action_declares_the_log_inputs() -> None:
    action = load(Path(__file__).resolve().parent.parent / "action.yml")
    assert {"log-dir", "log-key", "log-artifact"} <= set(action["inputs"])
    upload = next(s for s in action["runs"]["steps"] if s.get("name") == "Upload the evidence log")
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "${{ inputs.log-dir }}"
    assert "inputs.log-artifact != ''" in upload["if"]
