"""Attacks and faults on a campaign, through the real CLI and a real Dask cluster on 127.0.0.1.

A worker killed mid-task, a worker that returns a report about other bytes than it was sent,
and a manifest that is bad input among good ones. The scheduler and workers are started with
the `dask` CLI (`tests/campaign_support.py`), every port on 127.0.0.1, and every process they
started is killed when the test ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attest_support import new_key
from campaign_support import DaskCluster, make_releases

HERE = Path(__file__).resolve().parent
REPROVER = [sys.executable, "-m", "reprover"]


def reprover(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real `reprover` command to its end (at most 10 minutes)."""
    return subprocess.run(
        [*REPROVER, *map(str, argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_killed_worker_mid_task_reruns_and_every_report_is_intact(tmp_path: Path) -> None:
    manifests = make_releases(tmp_path / "r", 4, build_seconds=2)
    with DaskCluster(tmp_path / "dask") as cluster:
        cluster.add_worker("doomed", nanny=False)
        cluster.add_worker("steady")
        steady = cluster.worker_addresses()["steady"]
        out = tmp_path / "campaign.json"
        campaign = subprocess.Popen(
            [
                *REPROVER, "verify", *map(str, manifests), "--scheduler", cluster.address,
                "--format", "json", "-o", str(out), "--reports-dir", str(tmp_path / "reports"),
            ],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not cluster.is_building("doomed"):
                assert campaign.poll() is None, campaign.communicate()
                assert time.monotonic() < deadline, "the doomed worker never started a build"
                time.sleep(0.1)
            cluster.kill("doomed")
            _, stderr = campaign.communicate(timeout=300)
        finally:
            if campaign.poll() is None:
                campaign.kill()
                campaign.wait()
    assert campaign.returncode == 0, stderr
    data = json.loads(out.read_text())
    assert [r["verdict"] for r in data["results"]] == ["pass"] * 4
    [rerun] = [r for r in data["results"] if r["attempts"] > 1]
    assert rerun["attempts"] == 2 and rerun["worker"] == steady
    [note] = data["notes"]
    assert note.startswith(f"{rerun['manifest']}: ran 2 times") and "were lost" in note
    assert "2 attempts" in stderr
    for manifest in manifests:
        alone = reprover("verify", manifest, "--format", "json", cwd=tmp_path)
        assert alone.returncode == 0, alone.stderr
        report = tmp_path / "reports" / f"{manifest.stem}.json"
        assert report.read_text() == alone.stdout  # nothing lost, nothing changed


@pytest.mark.slow
def test_worker_returning_a_report_for_other_bytes_is_refused(tmp_path: Path) -> None:
    [manifest] = make_releases(tmp_path / "r", 1)
    hello = manifest.parent / "release" / "hello"
    data = bytearray(hello.read_bytes())
    data[0x1100] ^= 0xFF  # the release differs from its source: an honest run fails
    hello.write_bytes(bytes(data))
    key, _ = new_key(tmp_path / "keys", "lab")
    (tmp_path / "attest").mkdir()
    with DaskCluster(tmp_path / "dask") as cluster:
        cluster.add_worker("liar", preload=HERE / "lying_worker.py")
        done = reprover(
            "verify", manifest, "--scheduler", cluster.address, "--format", "json",
            "--reports-dir", tmp_path / "reports", "--attest", tmp_path / "attest",
            "--attest-key", key, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["verdict"] == "inconclusive" and result["report_sha256"] is None
    assert "report refused" in result["error"]
    assert "returned a report for other bytes of hello than it was sent" in result["error"]
    assert list((tmp_path / "attest").iterdir()) == []  # nothing attested
    assert not list((tmp_path / "reports").glob("*.json"))  # no report written for it


@pytest.mark.slow
def test_bad_input_manifest_fails_only_its_own_task(tmp_path: Path) -> None:
    [good] = make_releases(tmp_path / "r", 1)
    bad = good.with_name("escape.toml")
    bad.write_text(good.read_text() + '[[artifact]]\npath = "../../../etc/passwd"\n')
    done = reprover("verify", good, bad, "--jobs", "1", "--format", "json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["verdict"], r["exit_code"]) for r in results] == [("pass", 0), ("bad-input", 2)]
    assert "must be a relative path without '..'" in results[1]["error"]
    assert results[1]["worker"] is None  # never sent to a worker


@pytest.mark.slow
def test_worker_that_never_answers_cannot_hang_the_campaign(tmp_path: Path) -> None:
    [manifest] = make_releases(tmp_path / "r", 1)
    with DaskCluster(tmp_path / "dask") as cluster:
        cluster.add_worker("silent", preload=HERE / "hanging_worker.py")
        started = time.monotonic()
        done = reprover(
            "verify", manifest, "--scheduler", cluster.address, "--format", "json",
            "--stall-timeout", "5", cwd=tmp_path,
        )  # fmt: skip
        assert time.monotonic() - started < 1800  # gave up: the worker sleeps 3600 s
    assert done.returncode == 3, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["verdict"] == "inconclusive"
    assert "no task of the campaign finished for 5 s; given up" in result["error"]
