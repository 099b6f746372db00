"""The ledger is exact (issue 18) and no rule covers code (issue 12), as properties.

Over every committed binary fixture (ELF, PE, Mach-O thin and fat, signed and unsigned) and a
deterministic sample of system binaries:

- same size: the bytes the ledger lists are exactly the bytes that differ (what `cmp -l`
  prints), each once; no two listed runs overlap;
- different sizes: every byte that differs from its aligned counterpart, and every byte on
  one side only, is listed exactly once, and nothing else;
- flipping any byte the loader maps executable (read by the test with LIEF, `ledger_exec`)
  is never allowed, whatever rules are enabled;
- flipping a byte that the fuzz oracle's hand-written reading assigns to a rule is allowed by
  that rule alone, never by another.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_oracle import allowed_ranges
from ledger_exec import executable_bytes, system_binaries
from ledger_helpers import FIXTURES, ledger_of
from reprover.compare import compare_files
from reprover.compare.isolation.worker import parse_regions
from reprover.compare.regions.structure import align
from reprover.model import ArtifactVerdict, Digest, Kind, Policy
from reprover.policy import RULES, judge

ROOT = Path(__file__).parent / "fixtures"
BINARIES = sorted(
    set(ROOT.glob("ledger/*/[ab]"))
    | {p for p in ROOT.glob("signature/*") if p.suffix == ".exe" or p.name.startswith("macho-")}
)
SYSTEM = system_binaries(12)
GRANTED = sorted(set(RULES) - {"signature"})
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
flips = st.lists(st.tuples(st.floats(0, 0.99999), st.integers(1, 255)), min_size=1, max_size=3)


def _pair(tmp: Path, a: bytes, b: bytes) -> tuple[Path, Path]:
    pa, pb = tmp / "released", tmp / "rebuilt"
    pa.write_bytes(a)
    pb.write_bytes(b)
    return pa, pb


def _listed(ledger: object) -> list[tuple[int, int]]:
    rows = sorted((d.offset, d.length) for d in ledger.differences if d.length)  # type: ignore[attr-defined]
    for (o1, n1), (o2, _) in itertools.pairwise(rows):
        assert o1 + n1 <= o2, f"overlapping runs at 0x{o1:x} and 0x{o2:x}"
    return rows


def _covered(rows: list[tuple[int, int]]) -> set[int]:
    return {i for o, n in rows for i in range(o, o + n)}


def _flip(data: bytes, where: list[tuple[float, int]]) -> bytes:
    out = bytearray(data)
    for at, mask in where:
        out[int(at * len(out))] ^= mask
    return bytes(out)


def check_same_size(path: Path, where: list[tuple[float, int]]) -> None:
    original = path.read_bytes()
    mutated = _flip(original, where)
    changed = {i for i in range(len(original)) if original[i] != mutated[i]}
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _pair(Path(tmp), original, mutated)
        for ledger in (ledger_of(a, b), ledger_of(b, a)):
            assert _covered(_listed(ledger)) == changed, path
            assert not [d for d in ledger.differences if d.length == 0], path


def check_aligned(path: Path, where: list[tuple[float, int]], tail: bytes, cut: int) -> None:
    original = path.read_bytes()
    mutated = _flip(original, where)
    mutated = mutated[: len(mutated) - cut] + tail
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _pair(Path(tmp), original, mutated)
        ledger = ledger_of(a, b)
        map_a, map_b = parse_regions(a), parse_regions(b)
        expected: set[int] = set()
        if (
            len(original) == len(mutated)
            or not isinstance(map_a, dict)
            or not isinstance(map_b, dict)
            or not map_a["structures"]
            or not map_b["structures"]
        ):
            common = min(len(original), len(mutated))
            expected = {i for i in range(common) if original[i] != mutated[i]}
            expected |= set(range(common, len(original)))
        else:
            for pair in align(map_a, map_b):
                if pair.a_start is None or pair.a_end is None:
                    continue
                if pair.b_start is None or pair.b_end is None:
                    expected |= set(range(pair.a_start, pair.a_end))
                    continue
                la, lb = pair.a_end - pair.a_start, pair.b_end - pair.b_start
                for i in range(min(la, lb)):
                    if original[pair.a_start + i] != mutated[pair.b_start + i]:
                        expected.add(pair.a_start + i)
                expected |= set(range(pair.a_start + min(la, lb), pair.a_end))
        assert _covered(_listed(ledger)) == expected, path


def _compare(a: Path, b: Path, allow: tuple[str, ...]) -> object:
    def dg(p: Path) -> Digest:
        data = p.read_bytes()
        return Digest(hashlib.sha256(data).hexdigest(), len(data))

    return compare_files("x", a, b, Policy(allow=allow), digests=(dg(a), dg(b)), judge=judge)


def check_code_never_allowed(path: Path, pick: float, mask: int) -> None:
    spans = executable_bytes(path)
    if not spans:
        return
    total = sum(e - s for s, e in spans)
    index = int(pick * total)
    for start, end in spans:
        if index < end - start:
            at = start + index
            break
        index -= end - start
    original = path.read_bytes()
    mutated = bytearray(original)
    mutated[at] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _pair(Path(tmp), original, bytes(mutated))
        result = _compare(a, b, tuple(RULES))
        assert result.verdict is ArtifactVerdict.DIFFERENT, (path, hex(at))  # type: ignore[attr-defined]
        hit = [d for d in result.differences if d.offset <= at < d.offset + d.length]  # type: ignore[attr-defined]
        assert hit and all(d.kind is Kind.CODE and not d.allowed for d in hit), (path, hex(at))


def check_rule_alone(path: Path, pick: float, mask: int) -> None:
    data = path.read_bytes()
    ranges = [r for r in allowed_ranges(data) if r[2] in GRANTED and r[1] > r[0]]
    if not ranges:
        return
    start, end, rule = ranges[int(pick * len(ranges))]
    at = start + int(pick * 7919) % (end - start)
    mutated = bytearray(data)
    mutated[at] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _pair(Path(tmp), data, bytes(mutated))
        others = tuple(r for r in GRANTED if r != rule)
        assert _compare(a, b, others).verdict is ArtifactVerdict.DIFFERENT, (path, rule, hex(at))  # type: ignore[attr-defined]
        alone = _compare(a, b, (rule,))
        if alone.verdict is ArtifactVerdict.EQUIVALENT:  # type: ignore[attr-defined]
            assert {d.rule for d in alone.differences} == {rule}  # type: ignore[attr-defined]


@FAST
@given(path=st.sampled_from(BINARIES), where=flips)
def test_same_size_ledger_is_the_differing_bytes(
    path: Path, where: list[tuple[float, int]]
) -> None:
    check_same_size(path, where)


@FAST
@given(
    path=st.sampled_from(BINARIES),
    where=flips,
    tail=st.binary(min_size=0, max_size=64),
    cut=st.integers(0, 48),
)
def test_resized_ledger_is_every_unaligned_byte_once(
    path: Path, where: list[tuple[float, int]], tail: bytes, cut: int
) -> None:
    check_aligned(path, where, tail, cut)


@FAST
@given(path=st.sampled_from(BINARIES), pick=st.floats(0, 0.99999), mask=st.integers(1, 255))
def test_a_changed_code_byte_is_never_allowed(path: Path, pick: float, mask: int) -> None:
    check_code_never_allowed(path, pick, mask)


@FAST
@given(path=st.sampled_from(BINARIES), pick=st.floats(0, 0.99999), mask=st.integers(1, 255))
def test_a_rule_byte_is_allowed_by_its_rule_alone(path: Path, pick: float, mask: int) -> None:
    check_rule_alone(path, pick, mask)


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM, reason="no ELF files in /usr/bin or /usr/lib")
@SLOW
@given(path=st.sampled_from(SYSTEM or [Path("/")]), where=flips)
def test_system_binaries_same_size(path: Path, where: list[tuple[float, int]]) -> None:
    check_same_size(path, where)


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM, reason="no ELF files in /usr/bin or /usr/lib")
@SLOW
@given(
    path=st.sampled_from(SYSTEM or [Path("/")]),
    where=flips,
    tail=st.binary(min_size=1, max_size=64),
)
def test_system_binaries_resized(path: Path, where: list[tuple[float, int]], tail: bytes) -> None:
    check_aligned(path, where, tail, 0)


@pytest.mark.slow
@pytest.mark.skipif(not SYSTEM, reason="no ELF files in /usr/bin or /usr/lib")
@SLOW
@given(path=st.sampled_from(SYSTEM or [Path("/")]), pick=st.floats(0, 0.99999))
def test_system_binaries_code_never_allowed(path: Path, pick: float) -> None:
    check_code_never_allowed(path, pick, 0x5A)


def test_fixture_pairs_listed_bytes_match_alignment() -> None:
    """The committed pairs themselves (real rebuilds): same-size ones equal `cmp -l`."""
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "a").exists()):
        a, b = (folder / "a").read_bytes(), (folder / "b").read_bytes()
        rows = _listed(ledger_of(folder / "a", folder / "b"))
        if len(a) == len(b):
            assert _covered(rows) == {i for i in range(len(a)) if a[i] != b[i]}, folder.name


def test_same_size_with_a_moved_section_is_exact_and_says_what_moved(tmp_path: Path) -> None:
    """A section header that moves .comment: the ledger is still the one changed byte."""
    import lief

    src = FIXTURES / "elf-date" / "a"
    elf = lief.ELF.parse(str(src))
    index = next(i for i, s in enumerate(elf.sections) if s.name == ".comment")
    at = elf.header.section_header_offset + 64 * index + 24  # sh_offset
    data = bytearray(src.read_bytes())
    data[at] ^= 0x08
    a, b = _pair(tmp_path, src.read_bytes(), bytes(data))
    ledger = ledger_of(a, b)
    assert _covered(_listed(ledger)) == {at}
    assert any("compared offset by offset" in n for n in ledger.notes)
    assert any(n.startswith("elf.section[.comment]: aligned by name") for n in ledger.notes)
