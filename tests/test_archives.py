"""Archives compared member by member: metadata rules, content, nesting, every format."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive_support import FILES, FIXTURES, artifact, regions, report, write_tar, write_zip
from reprover.compare import compare_artifact
from reprover.compare.archives import Limits
from reprover.digest import hash_file
from reprover.model import ArtifactVerdict, Policy

ALL_RULES = (
    "archive.mtime",
    "archive.order",
    "archive.owner",
    "archive.mode",
    "archive.compression",
)


def allow(*rules: str) -> list[str]:
    return [x for r in rules for x in ("--allow", r)]


def test_zip_times_only_need_archive_mtime(tmp_path: Path, run_cli) -> None:
    a = write_zip(tmp_path / "a.whl")
    (tmp_path / "b").mkdir()
    b = write_zip(tmp_path / "b" / "a.whl", date=(2025, 6, 7, 8, 9, 10))
    code, rep = report(run_cli, "diff", a, b)
    assert code == 1
    outer = artifact(rep, "a.whl")
    assert set(regions(outer)) == {
        "zip.entry[pkg/__init__.py].mtime",
        "zip.entry[pkg/core.py].mtime",
    }
    assert all(d["kind"] == "timestamp" for d in outer["differences"])
    assert regions(outer)["zip.entry[pkg/core.py].mtime"]["detail"] == (
        "2024-01-02T03:04:06 -> 2025-06-07T08:09:10"
    )
    code, rep = report(run_cli, "diff", a, b, *allow("archive.mtime"))
    assert code == 0
    assert artifact(rep, "a.whl")["verdict"] == "equivalent"


def test_changed_member_is_its_own_artifact_and_mtime_rule_does_not_cover_it(
    tmp_path: Path, run_cli
) -> None:
    a = write_zip(tmp_path / "a.zip")
    b = write_zip(
        tmp_path / "b.zip",
        {**FILES, "pkg/core.py": FILES["pkg/core.py"] + b"#"},
        date=(2025, 1, 1, 0, 0, 0),
    )
    code, rep = report(run_cli, "diff", a, b, *allow(*ALL_RULES))
    assert code == 1
    outer = artifact(rep, "a.zip")
    assert outer["verdict"] == "different"
    data = regions(outer)["zip.entry[pkg/core.py].data"]
    assert not data["allowed"]
    member = artifact(rep, "a.zip!pkg/core.py")
    assert member["verdict"] == "different"
    assert member["released"]["size"] == len(FILES["pkg/core.py"])
    assert member["differences"][0]["offset"] == len(FILES["pkg/core.py"])
    assert not any(a["path"] == "a.zip!pkg/__init__.py" for a in rep["artifacts"])


def test_member_added_or_removed_always_fails(tmp_path: Path, run_cli) -> None:
    a = write_zip(tmp_path / "a.zip")
    b = write_zip(tmp_path / "b.zip", {**FILES, "pkg/extra.py": b"x = 1\n"})
    code, rep = report(run_cli, "diff", a, b, *allow(*ALL_RULES))
    assert code == 1
    assert artifact(rep, "a.zip!pkg/extra.py")["verdict"] == "unexpected"
    assert regions(artifact(rep, "a.zip"))["zip.entry[pkg/extra.py]"]["detail"] == (
        "only in the rebuilt archive"
    )
    code, rep = report(run_cli, "diff", b, a, *allow(*ALL_RULES))
    assert code == 1
    assert artifact(rep, "b.zip!pkg/extra.py")["verdict"] == "missing"


def test_order_compression_owner_mode_each_need_their_rule(tmp_path: Path, run_cli) -> None:
    base = write_zip(tmp_path / "a.zip")
    cases = {
        "archive.order": write_zip(tmp_path / "order.zip", list(reversed(FILES.items()))),
        "archive.compression": write_zip(tmp_path / "stored.zip", method=0),
        "archive.mode": write_zip(tmp_path / "mode.zip", mode=0o600),
    }
    for rule, other in cases.items():
        code, _ = report(run_cli, "diff", base, other)
        assert code == 1, rule
        others = [r for r in ALL_RULES if r != rule]
        code, _ = report(run_cli, "diff", base, other, *allow(*others))
        assert code == 1, rule
        code, rep = report(run_cli, "diff", base, other, *allow(rule))
        assert code == 0, (rule, rep)
    (tmp_path / "b").mkdir()
    owner = write_tar(tmp_path / "a.tar"), write_tar(tmp_path / "b" / "a.tar", uid=1000)
    code, rep = report(run_cli, "diff", *owner)
    assert code == 1
    assert {"tar.member[pkg/core.py].uid", "tar.member[pkg/core.py].uname"} <= set(
        regions(artifact(rep, "a.tar"))
    )
    code, _ = report(run_cli, "diff", *owner, *allow("archive.owner"))
    assert code == 0


@pytest.mark.parametrize("compression", ["", "gz", "xz", "bz2", "zst"])
def test_tar_family_times_and_content(tmp_path: Path, run_cli, compression: str) -> None:
    suffix = ".tar" + (f".{compression}" if compression else "")
    (tmp_path / "b").mkdir()
    a = write_tar(tmp_path / f"a{suffix}", compression=compression)
    b = write_tar(tmp_path / "b" / f"a{suffix}", mtime=1_800_000_000, compression=compression)
    code, rep = report(run_cli, "diff", a, b, *allow("archive.mtime"))
    assert code == 0, rep
    outer = artifact(rep, f"a{suffix}")
    assert "tar.member[pkg/core.py].mtime" in regions(outer)
    if compression == "gz":
        assert regions(outer)["gzip.header.mtime"]["rule"] == "archive.mtime"
    changed = write_tar(
        tmp_path / "b" / f"a{suffix}",
        {**FILES, "pkg/core.py": b"import os\n" + FILES["pkg/core.py"][10:]},
        compression=compression,
    )
    code, rep = report(run_cli, "diff", a, changed, *allow(*ALL_RULES))
    assert code == 1
    assert artifact(rep, f"a{suffix}!pkg/core.py")["differences"][0]["offset"] == 0


def test_same_tar_other_gzip_level_is_compression(tmp_path: Path, run_cli) -> None:
    import gzip

    raw = write_tar(tmp_path / "x.tar").read_bytes()
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.tar.gz").write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    code, rep = report(run_cli, "diff", tmp_path / "a.tar.gz", tmp_path / "b" / "a.tar.gz")
    assert code == 1
    got = regions(artifact(rep, "a.tar.gz"))
    assert got["gzip.compression.stream"]["cause"] == "root"
    code, _ = report(
        run_cli,
        "diff",
        tmp_path / "a.tar.gz",
        tmp_path / "b" / "a.tar.gz",
        *allow("archive.compression"),
    )
    assert code == 0


def test_pe_inside_tar_inside_zip_names_every_layer_and_the_pe_region(
    tmp_path: Path, run_cli
) -> None:
    pair = FIXTURES / "ledger" / "pe-mingw-timestamp"
    layers = []
    for side in ("a", "b"):
        tar = write_tar(
            tmp_path / f"{side}-engine.tar.gz",
            {"bin/engine.exe": (pair / side).read_bytes()},
            compression="gz",
        )
        (tmp_path / side).mkdir()
        layers.append(
            write_zip(tmp_path / side / "bundle.zip", {"engine.tar.gz": tar.read_bytes()})
        )
    code, rep = report(run_cli, "diff", *layers)
    assert code == 1
    leaf = artifact(rep, "bundle.zip!engine.tar.gz!bin/engine.exe")
    assert {d["region"] for d in leaf["differences"]} >= {"pe.coff.TimeDateStamp"}
    code, rep = report(run_cli, "diff", *layers, *allow("pe.timestamp", "pe.checksum"))
    assert code == 0, rep
    assert artifact(rep, "bundle.zip")["verdict"] == "equivalent"


def test_library_results_and_strict(tmp_path: Path) -> None:
    a = write_zip(tmp_path / "a.zip")
    b = write_zip(tmp_path / "b.zip", date=(2030, 1, 1, 0, 0, 0))
    digests = (hash_file(a), hash_file(b))
    from reprover.policy import judge

    results = compare_artifact(
        "a.zip", a, b, Policy(allow=("archive.mtime",)), digests=digests, judge=judge
    )
    assert [r.verdict for r in results] == [ArtifactVerdict.EQUIVALENT]
    results = compare_artifact("a.zip", a, b, Policy(), digests=digests, judge=judge)
    assert results[0].verdict is ArtifactVerdict.DIFFERENT


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        (Limits(name=8), "archive.limit.name"),
        (Limits(seconds=0), "archive.limit.time"),
        (Limits(floor=400, ratio=0), "archive.limit.bytes"),  # 559 bytes expanded, once
        (Limits(depth=0), "archive.limit.depth"),
    ],
)
def test_each_bound_is_inconclusive_and_named(tmp_path: Path, limits: Limits, named: str) -> None:
    inner = write_zip(tmp_path / "inner.zip").read_bytes()
    a = write_zip(tmp_path / "a.zip", {"inner.zip": inner, **FILES})
    b = write_zip(tmp_path / "b.zip", {"inner.zip": inner + b"x", **FILES})
    from reprover.policy import judge

    results = compare_artifact("a.zip", a, b, Policy(), digests=(hash_file(a), hash_file(b)),
                               judge=judge, limits=limits)  # fmt: skip
    undecided = [r for r in results if r.verdict is ArtifactVerdict.INCONCLUSIVE]
    assert undecided, results
    assert any(named in note for r in undecided for note in r.notes)


def test_zip64_local_sizes_are_checked_against_the_central_directory(tmp_path: Path) -> None:
    import zipfile

    from reprover.compare.archives.limits import Budget
    from reprover.compare.archives.zipfmt import read_zip

    path = tmp_path / "z64.zip"
    with zipfile.ZipFile(path, "w") as z, z.open("big.bin", "w", force_zip64=True) as out:
        out.write(b"x" * 1000)
    data = bytearray(path.read_bytes())
    with path.open("rb") as f:
        assert read_zip(f, len(data), Budget(Limits(), len(data))).hidden == []
    extra = data.index(b"\x01\x00\x10\x00", 30)  # the local ZIP64 record: id 1, 16 bytes
    data[extra + 4] ^= 1  # its uncompressed size now disagrees with the central directory
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(data))
    with lying.open("rb") as f:
        hidden = read_zip(f, len(data), Budget(Limits(), len(data))).hidden
    assert any("disagrees with the central directory: size" in h.reason for h in hidden)
