"""Campaigns on the local default cluster: many manifests, one report, each as if run alone.

The Dask CLI cluster (a real scheduler, two workers, one killed mid-task) and the attacks are in
tests/adversarial/test_campaign_attacks.py.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from attest_support import new_key
from campaign_support import make_releases
from reprover import manifest as manifests
from reprover.campaign.model import TaskSpec
from reprover.campaign.task import check_arrival
from reprover.errors import InconclusiveError
from reprover.model import Digest

REPROVER = [sys.executable, "-m", "reprover"]


def reprover(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real `reprover` command (a campaign starts worker processes)."""
    return subprocess.run(
        [*REPROVER, *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One local campaign of four manifests: two faithful, one tampered, one bad input.

    Run once for the module, with every report format and attestations; tests read its files.
    """
    root = tmp_path_factory.mktemp("campaign")
    manifests = make_releases(root, 3)
    hello = manifests[1].parent / "release" / "hello"
    data = bytearray(hello.read_bytes())
    data[0x1100] ^= 0xFF
    hello.write_bytes(bytes(data))
    bad = root / "bad" / "broken.toml"
    bad.parent.mkdir()
    bad.write_text("[source]\nrepo = 'x'\n")
    listing = root / "list.txt"
    listing.write_text(f"# the lab's releases\n{manifests[1]}\n\n{bad}  # malformed\n")
    key, public = new_key(root / "keys", "lab")
    (root / "attest").mkdir()
    log_key, _ = new_key(root / "keys", "log")
    init = reprover(
        "log", "init", root / "log", "--origin", "lab.example/log", "--key", log_key, cwd=root
    )
    assert init.returncode == 0, init.stderr
    done = reprover(
        "verify", manifests[0], manifests[2], "--from", listing,
        "--jobs", "2", "--format", "json", "-o", root / "campaign.json",
        "--report", "markdown=" + str(root / "campaign.md"),
        "--report", "html=" + str(root / "campaign.html"),
        "--report", "junit=" + str(root / "campaign.xml"),
        "--report", "text=" + str(root / "campaign.txt"),
        "--reports-dir", root / "reports",
        "--attest", root / "attest", "--attest-key", key,
        "--log", root / "log", "--log-key", log_key,
        cwd=root,
    )  # fmt: skip
    return {
        "root": root,
        "manifests": [manifests[0], manifests[2], manifests[1], bad],
        "done": done,
        "public": public,
        "json": json.loads((root / "campaign.json").read_text()),
    }


@pytest.mark.slow
def test_campaign_exit_code_is_the_highest_and_bad_input_fails_only_its_task(
    campaign: dict[str, object],
) -> None:
    done = campaign["done"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 2, done.stderr
    data = campaign["json"]
    assert isinstance(data, dict)
    assert data["schema"] == "reprover/campaign/v1"
    assert data["verdict"] == "bad-input"
    assert data["total"] == 4
    assert data["scheduler"] == "local (2 workers)"
    verdicts = [(r["index"], r["verdict"], r["exit_code"]) for r in data["results"]]
    assert verdicts == [(0, "pass", 0), (1, "pass", 0), (2, "fail", 1), (3, "bad-input", 2)]
    bad = data["results"][3]
    assert bad["worker"] is None and bad["report_sha256"] is None
    assert "missing required key" in bad["error"] or "[build]" in bad["error"]
    for result in data["results"][:3]:
        assert result["worker"].startswith("tcp://127.0.0.1:")
        assert result["attempts"] == 1
        assert result["seconds"] > 0
    assert data["summary"] == {"pass": 2, "fail": 1, "bad-input": 1}


@pytest.mark.slow
def test_each_manifest_report_is_the_same_bytes_as_running_it_alone(
    campaign: dict[str, object],
) -> None:
    root = campaign["root"]
    assert isinstance(root, Path)
    data = campaign["json"]
    assert isinstance(data, dict)
    names = ["engine0", "engine2", "engine1"]
    manifests = campaign["manifests"]
    assert isinstance(manifests, list)
    for result, name, manifest in zip(data["results"], names, manifests, strict=False):
        written = (root / "reports" / f"{name}.json").read_bytes()
        assert hashlib.sha256(written).hexdigest() == result["report_sha256"]
        alone = reprover("verify", manifest, "--format", "json", cwd=root)
        assert alone.returncode == result["exit_code"]
        assert alone.stdout.encode() == written
        assert (root / "reports" / f"{name}.txt").exists()  # the --report text format too
    assert sorted(p.name for p in (root / "reports").iterdir() if p.suffix == ".json") == [
        "engine0.json",
        "engine1.json",
        "engine2.json",
    ]


@pytest.mark.slow
def test_every_format_and_progress_on_stderr(campaign: dict[str, object]) -> None:
    root = campaign["root"]
    done = campaign["done"]
    assert isinstance(root, Path) and isinstance(done, subprocess.CompletedProcess)
    progress = [line for line in done.stderr.splitlines() if line.startswith("reprover: [")]
    assert len(progress) == 4
    assert {line.split("]", 1)[0] for line in progress} == {
        "reprover: [1/4",
        "reprover: [2/4",
        "reprover: [3/4",
        "reprover: [4/4",
    }
    assert "reprover: campaign bad-input (exit 2)" in done.stderr
    text = (root / "campaign.txt").read_text()
    assert text.startswith("campaign: BAD-INPUT (1 bad-input, 1 fail, 2 pass; 4 of 4")
    markdown = (root / "campaign.md").read_text()
    assert markdown.count("\n| ") == 5  # header and four rows
    assert "engine1.toml" in markdown
    html = (root / "campaign.html").read_text()
    assert "Content-Security-Policy" in html and html.count("<tr>") == 5
    suite = ET.fromstring((root / "campaign.xml").read_bytes()).find("testsuite")  # noqa: S314
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")


@pytest.mark.slow
def test_caller_signs_and_logs_one_attestation_per_release(campaign: dict[str, object]) -> None:
    root, public = campaign["root"], campaign["public"]
    assert isinstance(root, Path) and isinstance(public, Path)
    written = sorted(p.name for p in (root / "attest").iterdir())
    names = ["engine0.intoto.json", "engine1.intoto.json", "engine2.intoto.json"]
    assert written == sorted([*names, *(f"{n}.proof.json" for n in names)])  # and logged
    for name, expected in (("engine0", 0), ("engine1", 1)):
        release = root / f"p{name[-1]}" / "release" / "hello"
        done = reprover(
            "verify-attestation", root / "attest" / f"{name}.intoto.json",
            "--artifact", release, "--key", public, cwd=root,
        )  # fmt: skip
        assert done.returncode == expected, done.stderr  # engine1 was attested FAILED


@pytest.mark.slow
def test_shards_merge_into_the_whole_campaign(campaign: dict[str, object]) -> None:
    root = campaign["root"]
    manifests = campaign["manifests"]
    assert isinstance(root, Path) and isinstance(manifests, list)
    listing = root / "shards.txt"
    listing.write_text("\n".join(str(m) for m in [manifests[3], manifests[0], manifests[3]]))
    # a manifest named twice is refused before anything runs
    twice = reprover("verify", "--from", listing, cwd=root)
    assert twice.returncode == 2 and "named twice" in twice.stderr
    listing.write_text("\n".join(str(m) for m in [manifests[0], manifests[3]]))
    outputs = []
    for k in (1, 2):
        out = root / f"shard{k}.json"
        done = reprover(
            "verify", "--from", listing, "--shard", f"{k}/2", "--format", "json", "-o", out,
            "--jobs", "1", cwd=root,
        )  # fmt: skip
        shard = json.loads(out.read_text())
        assert shard["shard"] == f"{k}/2" and len(shard["results"]) == 1
        assert done.returncode == (0, 2)[k - 1], done.stderr
        outputs.append(out)
    merged = root / "merged.json"
    done = reprover(
        "report", "merge", *reversed(outputs), "--format", "json", "-o", merged, cwd=root
    )
    assert done.returncode == 2, done.stderr
    data = json.loads(merged.read_text())
    assert [r["verdict"] for r in data["results"]] == ["pass", "bad-input"]
    assert data["shard"] is None and data["total"] == 2
    missing = reprover("report", "merge", outputs[0], cwd=root)
    assert missing.returncode == 2 and "shard(s) 2/2 missing" in missing.stderr
    again = reprover("report", "merge", outputs[0], outputs[0], cwd=root)
    assert again.returncode == 2 and "given twice" in again.stderr
    not_campaign = reprover("report", "merge", root / "reports" / "engine0.json", cwd=root)
    assert not_campaign.returncode == 2 and "not a campaign report" in not_campaign.stderr


def test_unreachable_scheduler_is_inconclusive_naming_the_address(tmp_path: Path) -> None:
    [manifest] = make_releases(tmp_path, 1)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    done = reprover(
        "verify", manifest, "--scheduler", address, "--connect-timeout", "1", cwd=tmp_path
    )
    assert done.returncode == 3
    assert f"cannot reach the Dask scheduler at {address}" in done.stderr


def test_arrival_check_refuses_other_bytes_than_the_caller_hashed(tmp_path: Path) -> None:
    [manifest] = make_releases(tmp_path, 1)
    spec = manifests.load(manifest)
    hello = manifest.parent / "release" / "hello"
    sent = Digest(hashlib.sha256(hello.read_bytes()).hexdigest(), hello.stat().st_size)
    task = TaskSpec(0, str(manifest), str(manifest), "m", spec.sha256, {"hello": sent})
    check_arrival(task)
    hello.write_bytes(hello.read_bytes() + b"\0")
    with pytest.raises(InconclusiveError, match="differ from what the campaign sent: hello"):
        check_arrival(task)
    other = TaskSpec(0, str(manifest), str(manifest), "m", "0" * 64, {"hello": sent})
    with pytest.raises(InconclusiveError, match="manifest here has SHA-256"):
        check_arrival(other)


@pytest.mark.slow
def test_github_action_runs_a_campaign_from_a_list(campaign: dict[str, object]) -> None:
    from test_action import action_step, outputs

    root, manifests = campaign["root"], campaign["manifests"]
    assert isinstance(root, Path) and isinstance(manifests, list)
    work = root / "action"
    work.mkdir()
    (work / "releases.txt").write_text(f"{manifests[0]}\n{manifests[1]}\n")
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(work),
        "MANIFEST": "reprover.toml",
        "FROM": "releases.txt",
        "REPORTS": "json",
        "REPORT_DIR": "reports",
        "ATTESTATION": "none",
        "ATTESTATION_KEY": "",
        "EXTRA_ARGS": "--jobs 1",
        "GITHUB_OUTPUT": str(work / "github_output"),
        "GITHUB_STEP_SUMMARY": str(work / "summary"),
    }
    script = action_step("Verify the release")["run"]
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert outputs(work / "github_output") == {"exit-code": "0", "verdict": "pass"}
    campaign_json = json.loads((work / "reports" / "report.json").read_text())
    assert campaign_json["schema"] == "reprover/campaign/v1"
    releases = work / "reports" / "releases"
    assert sorted(p.name for p in releases.glob("*.json")) == ["engine0.json", "engine2.json"]
    assert (releases / "engine0.md").exists()  # each release also in the step-summary format
    assert "reprover campaign: PASS" in (work / "summary").read_text()


@pytest.mark.slow
def test_builds_at_the_same_fixed_build_path_run_side_by_side(tmp_path: Path) -> None:
    fixed = "/build/reprover-campaign-engine"  # one path for every manifest, never created here
    manifests = make_releases(tmp_path, 2, build_seconds=2, build_path=fixed)
    done = reprover("verify", *manifests, "--jobs", "2", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [r["verdict"] for r in results] == ["pass", "pass"]
    assert results[0]["worker"] != results[1]["worker"]  # two builds at once, one path
    assert not Path(fixed).exists()  # each sandbox bound its own private folder there
    for manifest, result in zip(manifests, results, strict=True):
        alone = reprover("verify", manifest, "--format", "json", cwd=tmp_path)
        assert hashlib.sha256(alone.stdout.encode()).hexdigest() == result["report_sha256"]
        assert json.loads(alone.stdout)["build"]["build_path"] == fixed


def test_hostile_manifest_names_cannot_spoof_the_campaign_report() -> None:
    from reprover.campaign.model import CampaignReport, CampaignResult, from_json
    from reprover.campaign.render import RENDERERS

    name = "rel\x1b[2J\u202e\nverdict: PASS | <img src=x> `x`\udcff.toml"
    result = CampaignResult(0, name, "fail", 1, "tcp://127.0.0.1:1", 1.0, "ab" * 32)
    report = CampaignReport((result,), 1, "local (1 worker)")
    text = RENDERERS["text"](report).decode()
    assert "\x1b" not in text and "\u202e" not in text
    assert not any(line.startswith("verdict") for line in text.splitlines())
    markdown = RENDERERS["markdown"](report).decode("utf-8", "surrogateescape")
    [row] = [line for line in markdown.splitlines() if "rel" in line and line.startswith("|")]
    assert row.count(" | ") == 6  # the name did not add a table cell
    html = RENDERERS["html"](report).decode("utf-8", "surrogateescape")
    assert "<img" not in html
    junit = RENDERERS["junit"](report)
    ET.fromstring(junit)  # noqa: S314 - our own output; well-formed despite control characters
    data = RENDERERS["json"](report)
    assert from_json(data, origin="x").results[0].manifest.endswith("\\xff.toml")


@pytest.mark.slow
def test_unlisted_released_files_are_sent_by_digest_and_kept_in_the_report(tmp_path: Path) -> None:
    [manifest] = make_releases(tmp_path, 1)
    manifest.write_text(manifest.read_text() + '[[artifact]]\npath = "hello"\n')
    (manifest.parent / "release" / "extra.dll").write_bytes(b"MZ not from the source")
    done = reprover("verify", manifest, "--reports-dir", "r", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["verdict"] == "fail" and result["report_sha256"]  # accepted, and it fails
    report = json.loads((tmp_path / "r" / f"{manifest.stem}.json").read_text())
    assert {a["path"]: a["verdict"] for a in report["artifacts"]} == {
        "hello": "identical",
        "extra.dll": "unlisted",
    }


def test_two_campaign_reports_to_one_file_are_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    done = reprover(
        "verify", "a.toml", "b.toml", "-o", out, "--report", f"json={out}", cwd=tmp_path
    )
    assert done.returncode == 2 and "would both be written to" in done.stderr
    assert not out.exists()
