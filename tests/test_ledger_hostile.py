"""Hostile and broken inputs: bounded time and memory, a clear note, never a crash or a pass."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from ledger_helpers import FIXTURES
from reprover.compare import compare_files
from reprover.compare.isolation.worker import Unparsed, parse_regions
from reprover.model import ArtifactVerdict, Digest, Kind, Policy
from reprover.policy import judge


def digest(path: Path) -> Digest:
    import hashlib

    data = path.read_bytes()
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def compare(a: Path, b: Path, allow: tuple[str, ...] = ()) -> object:
    return compare_files(
        "x", a, b, Policy(allow=allow), digests=(digest(a), digest(b)), judge=judge
    )


def test_truncated_elf_is_different_with_a_note(tmp_path: Path) -> None:
    full = FIXTURES / "elf-date" / "a"
    cut = tmp_path / "cut"
    cut.write_bytes(full.read_bytes()[:9000])
    result = compare(cut, full, ("elf.build-id", "debug-info", "signature"))
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert any("past the end" in n or "truncated" in n for n in result.notes)
    assert result.differences


def test_truncated_pe_section_is_noted(tmp_path: Path) -> None:
    data = (FIXTURES / "pe-mingw-timestamp" / "a").read_bytes()
    cut = tmp_path / "cut.exe"
    cut.write_bytes(data[:30000])
    mapped = parse_regions(cut)
    assert not isinstance(mapped, Unparsed)
    assert any("past the end" in n for n in mapped["notes"])


def test_claims_pe_but_is_not(tmp_path: Path) -> None:
    fake = tmp_path / "fake.exe"
    fake.write_bytes(b"MZ" + bytes(range(256)) * 8)
    mapped = parse_regions(fake)
    assert isinstance(mapped, Unparsed)
    assert "PE" in mapped.reason
    other = tmp_path / "other.exe"
    other.write_bytes(b"MZ" + bytes(range(255, -1, -1)) * 8)
    result = compare(fake, other)
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert {d.kind for d in result.differences} == {Kind.UNPARSED}
    assert any("not parsed" in n and "PE" in n for n in result.notes)


def test_zero_length_against_binary(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    result = compare(empty, FIXTURES / "elf-date" / "a")
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert sum(d.length for d in result.differences) == 0 or result.differences
    assert result.differences


def test_relocation_wrap_pe_parses_quickly(tmp_path: Path) -> None:
    """Base-relocation block size that wraps a 32-bit cursor (shape of LIEF issue 1362)."""
    data = bytearray((FIXTURES / "pe-mingw-timestamp" / "a").read_bytes())
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    opt = lfanew + 24
    nsect = struct.unpack_from("<H", data, lfanew + 6)[0]
    optsize = struct.unpack_from("<H", data, lfanew + 20)[0]
    reloc_rva = struct.unpack_from("<I", data, opt + 112 + 8 * 5)[0]
    assert reloc_rva, "fixture has a base-relocation directory"
    for i in range(nsect):
        _, vsize, va, rawsize, rawptr = struct.unpack_from("<8sIIII", data, opt + optsize + 40 * i)
        if va <= reloc_rva < va + max(vsize, rawsize):
            block = rawptr + reloc_rva - va
            break
    struct.pack_into("<I", data, block + 4, 0xFFFFFFFC)
    evil = tmp_path / "wrap.exe"
    evil.write_bytes(bytes(data))
    mapped = parse_regions(evil, timeout=300)  # a hang (LIEF 1362) never ends; slow is not one
    assert not isinstance(mapped, Unparsed), mapped
    result = compare(evil, FIXTURES / "pe-mingw-timestamp" / "a")
    assert [d.region for d in result.differences] == ["pe.directory[BASERELOC]"]
    assert result.verdict is ArtifactVerdict.DIFFERENT


def test_fat_macho_with_overlapping_slices(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "macho-fat" / "a").read_bytes())
    first_offset = struct.unpack_from(">I", data, 8 + 8)[0]
    struct.pack_into(">I", data, 8 + 20 + 8, first_offset)
    evil = tmp_path / "overlap"
    evil.write_bytes(bytes(data))
    result = compare(evil, FIXTURES / "macho-fat" / "a", ("macho.uuid", "signature"))
    assert result.verdict is ArtifactVerdict.DIFFERENT
    mapped = parse_regions(evil)
    if isinstance(mapped, Unparsed):
        assert any("not parsed" in n for n in result.notes)
    else:
        assert any("overlap" in n for n in mapped["notes"])


@pytest.mark.parametrize("seed", [1, 2])
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(rng.randbytes(8192))
    b.write_bytes(rng.randbytes(8192))
    result = compare(a, b, ("signature",))
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert sum(d.length for d in result.differences) > 8000
    assert any("not a PE, ELF or Mach-O" in n for n in result.notes)


def test_random_bytes_behind_each_magic(tmp_path: Path) -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    for magic in (b"\x7fELF\x02\x01\x01", b"MZ", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        path = tmp_path / "x"
        path.write_bytes(magic + rng.randbytes(4096))
        assert isinstance(parse_regions(path), (Unparsed, dict))


def test_timeout_is_recorded(tmp_path: Path) -> None:
    mapped = parse_regions(FIXTURES / "elf-date" / "a", timeout=0.0)
    assert isinstance(mapped, Unparsed)
    assert "timed out" in mapped.reason


def test_memory_limit_is_recorded(tmp_path: Path) -> None:
    big = tmp_path / "big.exe"
    big.write_bytes((FIXTURES / "pe-mingw-timestamp" / "a").read_bytes() + bytes(32 << 20))
    mapped = parse_regions(big, memory=1 << 20)
    assert isinstance(mapped, Unparsed)
    assert "memory" in mapped.reason or "crashed" in mapped.reason or "failed" in mapped.reason


def test_worker_recovers_after_failures() -> None:
    assert isinstance(parse_regions(FIXTURES / "elf-date" / "a", timeout=0.0), Unparsed)
    mapped = parse_regions(FIXTURES / "elf-date" / "a")
    assert isinstance(mapped, dict) and mapped["format"] == "elf"


def test_identical_only_when_bytes_are(tmp_path: Path) -> None:
    a = FIXTURES / "elf-date" / "a"
    copy = tmp_path / "copy"
    copy.write_bytes(a.read_bytes())
    assert compare(a, copy).verdict is ArtifactVerdict.IDENTICAL
    flipped = bytearray(a.read_bytes())
    flipped[-1] ^= 1
    copy.write_bytes(bytes(flipped))
    assert compare(a, copy).verdict is ArtifactVerdict.DIFFERENT


@pytest.mark.parametrize(
    "extra",
    [
        {"exec": [[0, 99]]},  # past the end
        {"exec": [["0", 4]]},
        {"structures": [[0, 4]]},  # no name
        {"findings": [3]},
        {"exec": None},
    ],
)
def test_a_lying_parse_child_reply_is_unparsed(extra: dict[str, object]) -> None:
    """The parent checks the child's exec spans, structures and findings like its regions."""
    import json

    from reprover.compare.isolation.worker import _decode

    reply = {"format": "elf", "size": 8, "regions": [], "symbols": [], "notes": [],
             "exec": [], "structures": [[0, 8, "elf.header"]], "findings": []}  # fmt: skip
    assert isinstance(_decode(json.dumps(reply).encode()), dict)
    reply.update(extra)
    assert isinstance(_decode(json.dumps(reply).encode()), Unparsed)
