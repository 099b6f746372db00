"""Real packages through the real CLI: Debian .deb, wheels, a jar, an sdist, an npm tarball.

The packages in tests/fixtures/real-packages were made by their vendors' tools (Debian's dpkg-deb
and Maven, setuptools and bdist_wheel, npm); tests/package_variants.py makes each variant with the
tool of that format. For every package: itself is identical; a repack with only the times changed
differs only by `archive.mtime`; one changed byte of code (an ELF or PE `.text` byte, two layers
down in a .deb; a class three layers down in a jar in a .deb) fails naming that member and region;
bytes between members fail as `archive.hidden` whatever is allowed. scripts/real_packages.py runs
the same checks over larger packages fetched into a cache.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from archive_support import artifact, report
from package_variants import (
    FIXTURES,
    code_region,
    flip_code,
    hide_bytes,
    rebuild_deb,
    repack_times,
    replace_in_deb,
    strip_authenticode,
    strip_signatures,
)

ARCHIVE_RULES = ("archive.mtime", "archive.order", "archive.owner", "archive.mode",
                 "archive.compression")  # fmt: skip
LZ4 = "liblz4-1_1.9.4-1_amd64.deb"
CLI = "libcommons-cli-java_1.5.0-1_all.deb"
COMMITTED = sorted(p.name for p in FIXTURES.iterdir() if p.name != "README.md")
DERIVED = ["liblz4-zstd.deb", "liblz4-gzip.deb", "liblz4-none.deb", "commons-cli.jar"]
# node-tar, not Python's tarfile, writes npm tarballs (other header spellings): its times-only
# repack is made with npm's own node-tar by scripts/real_packages.py, not here
NPM = "is-number-7.0.0.tgz"


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every package by name: the committed ones, .deb files recompressed by dpkg-deb, a jar."""
    root = tmp_path_factory.mktemp("real")
    found = {name: FIXTURES / name for name in COMMITTED}
    # the same package as dpkg-deb writes it with -Zzstd (data.tar.zst, as Ubuntu ships them),
    # -Zgzip (older Debian) and -Znone (data.tar)
    for compression in ("zstd", "gzip", "none"):
        work = root / compression
        work.mkdir()
        out = root / f"liblz4-{compression}.deb"
        found[out.name] = rebuild_deb(found[LZ4], out, work, compression=compression)
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(found[CLI])], check=True,
                          capture_output=True).stdout  # fmt: skip
    (root / "fsys.tar").write_bytes(fsys)
    with tarfile.open(root / "fsys.tar") as t:
        jar = t.extractfile("./usr/share/java/commons-cli.jar")
        assert jar is not None
        found["commons-cli.jar"] = root / "commons-cli.jar"
        found["commons-cli.jar"].write_bytes(jar.read())
    return found


def _variant(tmp_path: Path, name: str) -> Path:
    (tmp_path / "rebuilt").mkdir(exist_ok=True)
    return tmp_path / "rebuilt" / name


def _unallowed(rep: Any) -> list[tuple[str, str]]:
    return [(a["path"], d["region"]) for a in rep["artifacts"] for d in a["differences"]
            if not d["allowed"]]  # fmt: skip


@pytest.mark.parametrize("name", COMMITTED)
def test_a_real_package_against_a_copy_of_itself_is_identical(name: str, tmp_path: Path,
                                                              run_cli) -> None:  # fmt: skip
    copy = _variant(tmp_path, name)
    shutil.copyfile(FIXTURES / name, copy)
    code, rep = report(run_cli, "diff", FIXTURES / name, copy)
    assert code == 0, _unallowed(rep)
    assert {a["verdict"] for a in rep["artifacts"]} == {"identical"}


@pytest.mark.parametrize("name", sorted(set(COMMITTED + DERIVED) - {NPM}))
def test_repacked_with_other_times_differs_only_by_archive_mtime(
    name: str, packages: dict[str, Path], tmp_path: Path, run_cli
) -> None:
    src = packages[name]
    rebuilt = repack_times(src, _variant(tmp_path, src.name), tmp_path)
    code, rep = report(run_cli, "diff", src, rebuilt)
    assert code == 1
    code, rep = report(run_cli, "diff", src, rebuilt, "--allow", "archive.mtime")
    assert code == 0, _unallowed(rep)
    assert {a["verdict"] for a in rep["artifacts"]} <= {"identical", "equivalent"}
    # every difference is a time, a consequence of one, or a member equivalent by that rule
    rules = {d["rule"] for a in rep["artifacts"] for d in a["differences"]}
    assert rules - {"member equivalent"} == {"archive.mtime"}


@pytest.mark.parametrize("name", sorted(COMMITTED + DERIVED))
def test_one_changed_byte_of_code_is_named_with_its_member_and_region(
    name: str, packages: dict[str, Path], tmp_path: Path, run_cli
) -> None:
    src = packages[name]
    rebuilt = _variant(tmp_path, src.name)
    flip = flip_code(src, rebuilt, tmp_path)
    code, rep = report(run_cli, "diff", src, rebuilt, *(f"--allow={r}" for r in ARCHIVE_RULES))
    assert code == 1
    leaf = artifact(rep, flip.member)
    assert leaf["verdict"] == "different"
    if flip.region is not None:
        assert flip.region in {d["region"] for d in leaf["differences"] if not d["allowed"]}
    assert artifact(rep, src.name)["verdict"] == "different"


def test_the_changed_bytes_are_where_the_tools_put_them(packages: dict[str, Path],
                                                        tmp_path: Path) -> None:  # fmt: skip
    """The corpus covers what the task names: ELF two layers down in .xz and .zst, PE, jar class."""
    flips = {n: flip_code(packages[n], tmp_path / n.replace("/", "_"), tmp_path).member
             for n in (LZ4, "liblz4-zstd.deb", CLI)}  # fmt: skip
    lib = "!./usr/lib/x86_64-linux-gnu/liblz4.so.1.9.4"
    assert flips[LZ4] == f"{LZ4}!data.tar.xz{lib}"
    assert flips["liblz4-zstd.deb"] == f"liblz4-zstd.deb!data.tar.zst{lib}"
    assert flips[CLI].startswith(f"{CLI}!data.tar.xz!./usr/share/java/commons-cli.jar!")
    assert flips[CLI].endswith(".class")


@pytest.mark.parametrize("name", sorted(COMMITTED + DERIVED))
def test_bytes_hidden_between_members_fail_whatever_is_allowed(
    name: str, packages: dict[str, Path], tmp_path: Path, run_cli
) -> None:
    src = packages[name]
    rebuilt = _variant(tmp_path, src.name)
    layer = hide_bytes(src, rebuilt, tmp_path)
    code, rep = report(run_cli, "diff", src, rebuilt, *(f"--allow={r}" for r in ARCHIVE_RULES))
    assert code == 1
    hidden = [d for d in artifact(rep, layer)["differences"] if d["kind"] == "hidden"]
    assert hidden and not any(d["allowed"] for d in hidden)


SHIM = "shim-signed_1.51~1+deb12u1+16.1-2~deb12u1_amd64.deb"
SHIM_EFI = "./usr/lib/shim/shimx64.efi.signed"


def _shim_efi() -> bytes:
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(FIXTURES / SHIM)], check=True,
                          capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(fsys)) as t:
        member = t.extractfile(SHIM_EFI)
        assert member is not None
        return member.read()


@pytest.mark.slow  # a 1 MB PE parsed on both sides and a dpkg-deb build
def test_microsoft_signed_shim_in_a_deb_against_its_unsigned_rebuild(tmp_path: Path,
                                                                    run_cli) -> None:  # fmt: skip
    """Debian's shim, signed by Microsoft twice (two WIN_CERTIFICATE entries): signature-only."""
    rebuilt = _variant(tmp_path, SHIM)
    assert strip_signatures(FIXTURES / SHIM, rebuilt, tmp_path) == 1
    code, rep = report(run_cli, "sign-check", rebuilt, FIXTURES / SHIM)
    assert code == 0, _unallowed(rep)
    leaf = artifact(rep, f"{SHIM}!data.tar.xz!{SHIM_EFI}")
    assert leaf["verdict"] == "signature-only"
    signers = " ".join(leaf["notes"])  # the signers of this layer, beside its verdict
    assert "Microsoft Windows UEFI Driver Publisher" in signers
    assert "Microsoft UEFI CA 2023 signer" in signers


@pytest.mark.slow  # a 1 MB PE parsed on both sides and a dpkg-deb build
def test_an_honest_unsigned_deb_differs_in_md5sums_only_by_the_signed_file(
    tmp_path: Path, run_cli
) -> None:
    """dpkg-deb lists each file's md5 in control.tar: the unsigned build lists another one, and
    the released line is the MD5 of the released (signed) file: a consequence, explained."""
    unsigned = strip_authenticode(_shim_efi())
    rebuilt = replace_in_deb(FIXTURES / SHIM, _variant(tmp_path, SHIM), tmp_path, SHIM_EFI,
                             unsigned, md5sums=True)  # fmt: skip
    code, rep = report(run_cli, "sign-check", rebuilt, FIXTURES / SHIM)
    assert code == 0, _unallowed(rep)
    assert artifact(rep, SHIM)["verdict"] == "signature-only"
    assert artifact(rep, f"{SHIM}!data.tar.xz!{SHIM_EFI}")["verdict"] == "signature-only"
    md5sums = artifact(rep, f"{SHIM}!control.tar.xz!./md5sums")
    assert md5sums["verdict"] == "equivalent"
    [line] = md5sums["differences"]
    assert line["region"] == "md5sums[usr/lib/shim/shimx64.efi.signed]"
    assert line["rule"] == f"restates {SHIM}!data.tar.xz!{SHIM_EFI} (signature-only)"


@pytest.mark.slow  # a 1 MB PE parsed on both sides and a dpkg-deb build
def test_a_changed_code_byte_under_the_microsoft_signature_fails(tmp_path: Path,
                                                                 run_cli) -> None:  # fmt: skip
    unsigned = bytearray(strip_authenticode(_shim_efi()))
    found = code_region(bytes(unsigned))
    assert found is not None
    at, region = found
    unsigned[at] ^= 0x01
    rebuilt = replace_in_deb(FIXTURES / SHIM, _variant(tmp_path, SHIM), tmp_path, SHIM_EFI,
                             bytes(unsigned))  # fmt: skip
    code, rep = report(run_cli, "sign-check", rebuilt, FIXTURES / SHIM)
    assert code == 1
    leaf = artifact(rep, f"{SHIM}!data.tar.xz!{SHIM_EFI}")
    assert leaf["verdict"] == "different"
    assert region == "pe.section[.text]"
    assert region in {d["region"] for d in leaf["differences"] if not d["allowed"]}


def test_a_jar_rebuilt_at_another_time_inside_a_deb_rebuilt_at_another_time(
    tmp_path: Path, run_cli
) -> None:
    """Times differ in three layers (.deb, data.tar.xz, the jar): only archive.mtime."""
    rebuilt = repack_times(FIXTURES / CLI, _variant(tmp_path, CLI), tmp_path, jars=True)
    code, rep = report(run_cli, "diff", FIXTURES / CLI, rebuilt, "--allow", "archive.mtime")
    assert code == 0, _unallowed(rep)
    jar = artifact(rep, f"{CLI}!data.tar.xz!./usr/share/java/commons-cli.jar")
    assert jar["verdict"] == "equivalent"


def test_md5sums_of_a_jar_equivalent_but_not_identical_follow_it(tmp_path: Path,
                                                                 run_cli) -> None:  # fmt: skip
    """What an honest rebuild writes: md5sums lists the new jar's digest. The jar is equivalent
    under archive.mtime, so its md5sums line is a consequence; without the rule it is not."""
    rebuilt = repack_times(FIXTURES / CLI, _variant(tmp_path, CLI), tmp_path, jars=True,
                           md5sums=True)  # fmt: skip
    code, rep = report(run_cli, "diff", FIXTURES / CLI, rebuilt, "--allow", "archive.mtime")
    assert code == 0, _unallowed(rep)
    md5sums = artifact(rep, f"{CLI}!control.tar.xz!./md5sums")
    assert md5sums["verdict"] == "equivalent"
    jar = f"{CLI}!data.tar.xz!./usr/share/java/commons-cli.jar"
    assert {d["rule"] for d in md5sums["differences"]} == {f"restates {jar} (equivalent)"}
    code, rep = report(run_cli, "diff", FIXTURES / CLI, rebuilt)
    assert code == 1
    md5sums = artifact(rep, f"{CLI}!control.tar.xz!./md5sums")
    assert md5sums["verdict"] == "different"
    assert any("is different: not accepted" in n for n in md5sums["notes"])
