#!/usr/bin/env python3
"""Benchmark campaigns (issue 17): 8 manifests on 1 vs 2 local Dask workers and the default,
and one 500-file release compared on 1 vs 2 cores.

Each figure is the best wall time of `--repeat` runs of the real `reprover verify` command in
its own process (cluster start and stop included). The campaign's per-task overhead is what a
task costs beyond its verification: on 1 worker, the 7 tasks a campaign of 8 has beyond a
campaign of 1 took (wall time difference) minus what the worker spent verifying them (each
task's `seconds`), per task; the worker's own extra (the arrival check) is each task's
`seconds` minus one verification in a warm process. Goals: at least 1.7x with 2 workers on 2
cores, per-task overhead under 0.5 s.

Run: `.venv/bin/python scripts/bench_campaign.py [--repeat N]`; scripts/bench.py calls `main()`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPROVER = [sys.executable, "-m", "reprover"]
ENV = {
    "PATH": os.environ["PATH"],
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.test",
    "GIT_AUTHOR_DATE": "2026-02-01T12:00:00+00:00",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.test",
    "GIT_COMMITTER_DATE": "2026-02-01T12:00:00+00:00",
}
MAKEFILE = """\
all: out/engine
out/engine: engine.c
\tmkdir -p out
\t$(CC) -O2 -g -ffile-prefix-map=$(CURDIR)=. -o $@ engine.c
"""
# a few hundred lines of C so that each rebuild does real compiler work (about a second)
ENGINE = "#include <stdio.h>\n" + "".join(
    f"int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i} ^ (s >> 3); "
    f"return s; }}\n"
    for i in range(400)
)


def run(argv: Sequence[str | Path], cwd: Path, *, ok: tuple[int, ...] = (0,)) -> None:
    """Run a command; stop the benchmark if it fails."""
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr}")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def project(root: Path, name: str, files: dict[str, str | bytes], command: str) -> Path:
    """A git repository with `files`, released by building it once; returns its manifest."""
    repo = root / name / "repo"
    repo.mkdir(parents=True)
    for path, data in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            (repo / path).write_bytes(data)
        else:
            (repo / path).write_text(data)
    git(repo, "init", "-q", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "-q", "-m", "release")
    commit = git(repo, "rev-parse", "HEAD")
    manifest = root / name / f"{name}.toml"
    manifest.write_text(
        f'[source]\nrepo = "repo"\ncommit = "{commit}"\n'
        f'[build]\ncommand = {command}\noutput = "out"\npath = "{root / name / "build"}"\n'
        f'timeout = 600\n[release]\npath = "release"\n'
    )
    return manifest


def vendor_release(manifest: Path) -> None:
    """Make the vendor's release: build the commit in another folder with plain make."""
    vendor = manifest.parent / "vendor"
    git(manifest.parent, "clone", "-q", "--no-local", "repo", str(vendor))
    epoch = git(vendor, "show", "-s", "--format=%ct", "HEAD")
    subprocess.run(
        ["make"], cwd=vendor, env={**ENV, "SOURCE_DATE_EPOCH": epoch}, check=True,
        capture_output=True,
    )  # fmt: skip
    shutil.copytree(vendor / "out", manifest.parent / "release")
    shutil.rmtree(vendor)


def best(argv: Sequence[str | Path], cwd: Path, repeat: int, ok: tuple[int, ...] = (0,)) -> float:
    """Best wall time of `argv` over `repeat` runs."""
    return best_campaign(argv, cwd, repeat, ok=ok)[0]


def best_campaign(
    argv: Sequence[str | Path], cwd: Path, repeat: int, ok: tuple[int, ...] = (0,)
) -> tuple[float, float]:
    """Best wall time over `repeat` runs, and the sum of the task seconds of that run (when
    `argv` writes a JSON campaign report to campaign.json)."""
    runs = []
    for _ in range(repeat):
        report = cwd / "campaign.json"
        report.unlink(missing_ok=True)
        start = time.perf_counter()
        run(argv, cwd, ok=ok)
        wall = time.perf_counter() - start
        tasks = json.loads(report.read_text())["results"] if report.exists() else []
        runs.append((wall, sum(r["seconds"] for r in tasks)))
    return min(runs)


def bench_campaign(root: Path, repeat: int) -> dict[str, float]:
    """8 manifests: local campaign on 1 worker, 2 workers, the default; and the overhead."""
    manifests = []
    for n in range(8):
        source = ENGINE + f'int main(void) {{ puts("release {n}"); return f{n}(3); }}\n'
        manifest = project(
            root, f"engine{n}", {"engine.c": source, "Makefile": MAKEFILE}, '["make"]'
        )
        vendor_release(manifest)
        manifests.append(manifest)
    one = [*REPROVER, "verify", "-q", manifests[0]]
    out = ["--reports-dir", "r", "--format", "json", "-o", "campaign.json"]
    figures = {"verify one manifest (no campaign)": best(one, root, repeat)}
    wall1, busy1 = best_campaign([*one, *out, "--jobs", "1"], root, repeat)
    figures["campaign of 1, 1 worker"] = wall1
    wall8, busy8 = best_campaign(
        [*REPROVER, "verify", "-q", *manifests, *out, "--jobs", "1"], root, repeat
    )
    figures["campaign of 8, 1 worker"] = wall8
    argv = [*REPROVER, "verify", "-q", *manifests, *out, "--jobs", "2"]
    figures["campaign of 8, 2 workers"] = best(argv, root, repeat)
    argv = [*REPROVER, "verify", "-q", *manifests, *out]
    figures[f"campaign of 8, local default ({os.cpu_count()} cores)"] = best(argv, root, repeat)
    figures["one verification in a warm process"] = warm_verify(manifests[0], repeat)
    figures["per-task overhead (dispatch, checks, reports)"] = (
        (wall8 - wall1) - (busy8 - busy1)
    ) / 7
    figures["per-task worker extra (arrival check)"] = (
        busy8 / 8 - figures["one verification in a warm process"]
    )
    return figures


def warm_verify(manifest: Path, repeat: int) -> float:
    """Best time of `verify()` called in one process that already imported everything."""
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom reprover.verify import Options, verify\n"
        f"verify(Path({str(manifest)!r}), Options())\nbest = 1e9\n"
        f"for _ in range({repeat}):\n    t = time.perf_counter()\n"
        f"    verify(Path({str(manifest)!r}), Options())\n"
        "    best = min(best, time.perf_counter() - t)\nprint(best)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV
    )
    return float(done.stdout.strip().splitlines()[-1])


def bench_release(root: Path, files: int, repeat: int) -> dict[str, float]:
    """One release of `files` ELF programs, each differing from its rebuild in one byte."""
    work = root / "many"
    work.mkdir()
    (work / "tool.c").write_text(ENGINE + 'int main(void) { puts("tool #0000"); return 0; }\n')
    run(["gcc", "-O2", "-o", "tool", "tool.c"], work)
    template = (work / "tool").read_bytes()
    marker = template.index(b"tool #0000")
    rebuilt: dict[str, str | bytes] = {"Makefile": "all:\n\tcp -r bin out\n"}
    released = root / "release-bytes"
    released.mkdir()
    for n in range(files):
        data = bytearray(template)
        data[marker + 6 : marker + 10] = f"{n:04d}".encode()
        rebuilt[f"bin/tool{n:03d}"] = bytes(data)
        data[marker] ^= 0x20  # the released copy differs in one byte of .rodata
        (released / f"tool{n:03d}").write_bytes(bytes(data))
    manifest = project(root, "many", rebuilt, '["make"]')
    shutil.copytree(released, manifest.parent / "release")
    figures = {}
    for jobs in (1, 2):
        argv = [*REPROVER, "verify", "-q", manifest, "--jobs", str(jobs), "--format", "json"]
        figures[f"{files} differing files, --jobs {jobs}"] = best(argv, root, repeat, ok=(1,))
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    """Run both benchmarks and print the figures with their speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=500)
    args, _ = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="reprover-bench-campaign-") as tmp:
        root = Path(tmp)
        campaign = bench_campaign(root, args.repeat)
        print(f"\nCampaign of 8 manifests (best of {args.repeat}, wall seconds, start-up included)")
        for label, seconds in campaign.items():
            print(f"  {label:52} {seconds:8.2f}")
        one, two = campaign["campaign of 8, 1 worker"], campaign["campaign of 8, 2 workers"]
        single = campaign["campaign of 1, 1 worker"]
        print(f"  speed-up, 2 workers vs 1:                        {one / two:8.2f}x")
        net = (one - single) / (two - single) if two > single else float("nan")
        print(f"  speed-up without cluster start-up ((8) - (1)):   {net:8.2f}x")
        release = bench_release(root, args.files, args.repeat)
        print(
            f"\nOne release, {args.files} files differing in one byte each (best of {args.repeat})"
        )
        for label, seconds in release.items():
            print(f"  {label:52} {seconds:8.2f}")
        values = list(release.values())
        print(f"  speed-up, 2 cores vs 1:                          {values[0] / values[1]:8.2f}x")


if __name__ == "__main__":
    main()
