"""Within one release: differing artifacts compared on several cores give the same report bytes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reprover import policy
from reprover.compare.pool import Pair, compare_pairs
from reprover.digest import hash_files
from reprover.errors import InputError
from reprover.model import Policy, Report
from reprover.render import render

SOURCE = '#include <stdio.h>\nint main(void) { puts("engine %s"); return %d; }\n'


def build(folder: Path, name: str, text: str, code: int) -> Path:
    """Compile a small real ELF program."""
    source = folder / f"{name}.c"
    source.write_text(SOURCE % (text, code))
    out = folder / name
    subprocess.run(["gcc", "-O2", "-o", out, source], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[Pair]:
    """Five released/rebuilt pairs: four differ (string, code), one is identical."""
    root = tmp_path_factory.mktemp("pairs")
    files = []
    for n in range(5):
        released = build(root, f"r{n}", f"release {n}", n)
        rebuilt = build(root, f"b{n}", f"release {n}!", n + (n % 2))
        if n == 2:
            rebuilt.write_bytes(released.read_bytes())
        files.append((f"bin/tool{n}", released, rebuilt))
    digests = hash_files([p for _, a, b in files for p in (a, b)])
    return [Pair(name, a, b, (digests[a], digests[b])) for name, a, b in files]


def report_bytes(pairs: list[Pair], jobs: int) -> bytes:
    seen: list[str] = []
    results = compare_pairs(pairs, Policy(), judge=policy.judge, jobs=jobs, on_done=seen.append)
    assert seen == [p.path for p in pairs]  # progress in the given order
    return render(Report(command="diff", artifacts=tuple(results)), "json")


@pytest.mark.slow
def test_report_is_the_same_bytes_on_one_or_several_cores(pairs: list[Pair]) -> None:
    one = report_bytes(pairs, 1)
    assert b'"verdict": "different"' in one and b'"verdict": "identical"' in one
    assert report_bytes(pairs, 2) == one


@pytest.mark.slow
def test_an_unreadable_file_in_a_pool_process_is_bad_input(pairs: list[Pair]) -> None:
    gone = Pair("bin/gone", pairs[0].released.with_name("nope"), pairs[0].rebuilt, pairs[0].digests)
    with pytest.raises(InputError):
        compare_pairs([pairs[1], gone], Policy(), judge=policy.judge, jobs=2)
