"""Archive members compared fast: stored bytes compared directly, content taken in one pass.

The fast paths must give the same answers as expanding everything: these tests change one
thing each (a header byte, a content byte, the compression) and check what is reported, and
that a member cut short by a limit leaves no private file behind.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive_support import FILES, regions, write_tar, write_zip
from reprover.compare.archives import Budget, Context, Limits, compare_tree
from reprover.compare.archives.content import same_stream
from reprover.compare.archives.listing import quote
from reprover.compare.archives.zipfmt import read_zip
from reprover.digest import hash_file
from reprover.model import ACCEPTED, ArtifactResult, ArtifactVerdict, Policy
from reprover.policy import judge


def _compare(
    a: Path, b: Path, tmp: Path, *, limits: Limits | None = None, allow: tuple[str, ...] = ()
) -> tuple[ArtifactResult, ...]:
    """Compare through the recursion driver with a private folder the test can inspect."""
    digests = (hash_file(a), hash_file(b))
    budget = Budget(limits or Limits(), max(d.size for d in digests))

    def leaf(name: str, x: Path, y: Path, pair: tuple[object, object]) -> ArtifactResult:
        return ArtifactResult(name, ArtifactVerdict.DIFFERENT, *pair)  # type: ignore[arg-type]

    tmp.mkdir()
    ctx = Context(Policy(allow=allow), judge, leaf, budget, tmp)
    return compare_tree(a.name, a, b, digests, ctx)


def test_member_cut_short_by_the_byte_limit_leaves_no_file(tmp_path: Path) -> None:
    big = bytes(300_000)  # compresses to a few hundred bytes: a small bomb
    a = write_zip(tmp_path / "a.zip", {"bomb.bin": big, **FILES})
    (tmp_path / "b").mkdir()
    b = write_zip(tmp_path / "b" / "a.zip", {"bomb.bin": big + b"x", **FILES})
    members = tmp_path / "members"
    results = _compare(a, b, members, limits=Limits(floor=400_000, ratio=0))
    assert results[0].verdict not in ACCEPTED
    bomb = next(r for r in results if r.path == "a.zip!bomb.bin")
    assert bomb.verdict is ArtifactVerdict.INCONCLUSIVE
    assert any("archive.limit.bytes" in n for n in bomb.notes)
    assert list(members.iterdir()) == []  # the released side was taken whole, then removed


def test_differing_members_leave_no_file_after_their_comparison(tmp_path: Path) -> None:
    a = write_tar(tmp_path / "a.tar", {"x": b"one" * 100, "y": b"same"})
    b = write_tar(tmp_path / "b.tar", {"x": b"two" * 100, "y": b"same"})
    members = tmp_path / "members"
    results = _compare(a, b, members)
    assert [r.path for r in results] == ["a.tar", "a.tar!x"]
    assert list(members.iterdir()) == []


def test_tar_member_of_same_size_and_headers_but_other_bytes_differs(tmp_path: Path) -> None:
    a = write_tar(tmp_path / "a.tar", {"x": b"A" * 5000, "y": b"same"})
    b = write_tar(tmp_path / "b.tar", {"x": b"A" * 4999 + b"B", "y": b"same"})
    results = _compare(a, b, tmp_path / "members", allow=("archive.mtime",))
    assert results[0].verdict is ArtifactVerdict.DIFFERENT
    assert "tar.member[x].data" in regions(_as_json(results[0]))
    assert "1 member(s) identical" in results[0].notes


def test_tar_header_byte_alone_is_reported_as_its_field(tmp_path: Path) -> None:
    a = write_tar(tmp_path / "a.tar", {"x": b"data"}, uid=0)
    b = write_tar(tmp_path / "b.tar", {"x": b"data"}, uid=1000)
    results = _compare(a, b, tmp_path / "members")
    found = regions(_as_json(results[0]))
    assert "tar.member[x].uid" in found
    assert "tar.member[x].data" not in found


def test_zip_recompressed_member_is_compression_not_content(tmp_path: Path) -> None:
    a = write_zip(tmp_path / "a.zip", method=zipfile.ZIP_DEFLATED)
    (tmp_path / "b").mkdir()
    b = write_zip(tmp_path / "b" / "a.zip", method=zipfile.ZIP_STORED)
    results = _compare(a, b, tmp_path / "members", allow=("archive.compression",))
    assert [r.verdict for r in results] == [ArtifactVerdict.EQUIVALENT]
    found = regions(_as_json(results[0]))
    assert "zip.entry[pkg/core.py].compression.data" in found
    results = _compare(a, b, tmp_path / "members2")
    assert results[0].verdict is ArtifactVerdict.DIFFERENT


def test_zip_fields_are_built_from_the_record_and_local_extra(tmp_path: Path) -> None:
    """Equal keys mean equal fields; a changed local extra changes the key and a field."""
    a = write_zip(tmp_path / "a.zip")
    data = bytearray(a.read_bytes())
    with a.open("rb") as f:
        plain = read_zip(f, len(data), Budget(Limits(), len(data)))
    b = tmp_path / "b.zip"
    with zipfile.ZipFile(b, "w") as z:
        for name, content in FILES.items():
            info = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6))
            info.external_attr, info.create_system = 0o644 << 16, 3
            info.compress_type = zipfile.ZIP_DEFLATED
            info.extra = b"\x34\x12\x02\x00hi"  # an unknown extra record, local and central
            z.writestr(info, content)
    with b.open("rb") as f:
        other = read_zip(f, b.stat().st_size, Budget(Limits(), b.stat().st_size))
        for x, y in zip(plain.members, other.members, strict=True):
            assert x.key != y.key
            assert "extra[0x1234]" in y.fields and "local.extra[0x1234]" in y.fields
            assert "extra[0x1234]" not in x.fields
    with a.open("rb") as f, a.open("rb") as g:
        one = read_zip(f, len(data), Budget(Limits(), len(data)))
        two = read_zip(g, len(data), Budget(Limits(), len(data)))
        for x, y in zip(one.members, two.members, strict=True):
            assert x.key == y.key
            assert {k: v.value for k, v in x.fields.items()} == {
                k: v.value for k, v in y.fields.items()
            }


def test_a_zip_member_view_refuses_assignment(tmp_path: Path) -> None:
    """A ZIP member is a view of its entry: an assignment (as `ole` makes to its own members)
    fails loudly instead of being dropped while the unchecked entry is still read."""
    a = write_zip(tmp_path / "a.zip")
    with a.open("rb") as f:
        listing = read_zip(f, a.stat().st_size, Budget(Limits(), a.stat().st_size))
        member = listing.members[0]
        for attribute in ("opener", "stored", "name", "target"):
            with pytest.raises(AttributeError, match="read-only"):
                setattr(member, attribute, None)


def _slow_quote(name: str) -> str:
    out = []
    for ch in name:
        code = ord(ch)
        if ch in "%![]" or code < 0x20 or code == 0x7F or 0xDC80 <= code <= 0xDCFF:
            out.append(f"%{code & 0xFF:02X}" if code > 0xFF else f"%{code:02X}")
        else:
            out.append(ch)
    return "".join(out)


@given(st.text())
def test_quote_fast_path_agrees_with_the_escaping_rule(name: str) -> None:
    assert quote(name) == _slow_quote(name)


@pytest.mark.parametrize("name", ["a!b", "x[1]", "100%", "\x00", "\x7f", "\udc80", "ok"])
def test_quote_escapes_each_special_character(name: str) -> None:
    assert quote(name) == _slow_quote(name)


def _as_json(result: ArtifactResult) -> dict[str, object]:
    return {"differences": [{"region": d.region} for d in result.differences]}


@given(st.lists(st.binary(max_size=8)), st.lists(st.binary(max_size=8)))
def test_streams_cut_differently_compare_by_their_bytes(a: list[bytes], b: list[bytes]) -> None:
    assert same_stream(lambda: iter(a), lambda: iter(b)) == (b"".join(a) == b"".join(b))
    whole = b"".join(a)
    assert same_stream(lambda: iter(a), lambda: iter([whole]))


def test_corrupt_stream_on_one_side_is_compared_as_bytes(tmp_path: Path) -> None:
    """Both sides are expanded at once; one failing ends the pair without waiting for the
    other, and the file is compared as bytes with the reason noted."""
    good = write_tar(tmp_path / "good.tar.gz", {"x": bytes(8 << 20), "y": b"y"}, compression="gz")
    data = good.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    results = _compare(cut, good, tmp_path / "members")
    assert [r.verdict for r in results] == [ArtifactVerdict.DIFFERENT]
    assert any("not read as gzip" in n for n in results[0].notes), results[0].notes
    assert list((tmp_path / "members").iterdir()) == []


@pytest.mark.parametrize("cut", ["limit", "corrupt"])
def test_large_members_taken_at_once_leave_no_file_on_an_error(tmp_path: Path, cut: str) -> None:
    """Members of 5 MiB a side are expanded on both sides at once: a limit hit (on whichever
    side reaches it) or a corrupt rebuilt member leaves neither side's file behind."""
    big = os.urandom(5 << 20)  # stored size over PARALLEL_TAKE
    other = big[:100] + b"x" + big[101:]
    a = write_zip(tmp_path / "a.zip", {"big.bin": big, **FILES})
    (tmp_path / "b").mkdir()
    b = write_zip(tmp_path / "b" / "a.zip", {"big.bin": other, **FILES})
    if cut == "corrupt":  # the rebuilt member's CRC no longer matches its content
        data = bytearray(b.read_bytes())
        at = data.index(b"PK\x01\x02") + 16
        data[at] ^= 0xFF
        b.write_bytes(bytes(data))
    members = tmp_path / "members"
    limits = Limits(floor=8 << 20, ratio=0) if cut == "limit" else None
    results = _compare(a, b, members, limits=limits)
    assert results[0].verdict not in ACCEPTED
    if cut == "limit":
        member = next(r for r in results if r.path == "a.zip!big.bin")
        assert member.verdict is ArtifactVerdict.INCONCLUSIVE
        assert any("archive.limit.bytes" in n for n in member.notes)
    else:
        assert any("CRC or size" in d.detail for d in results[0].differences
                   if d.region == "archive.hidden")  # fmt: skip
    assert list(members.iterdir()) == []


def test_large_members_taken_at_once_are_compared(tmp_path: Path) -> None:
    big = os.urandom(5 << 20)
    a = write_zip(tmp_path / "a.zip", {"big.bin": big, **FILES})
    (tmp_path / "b").mkdir()
    b = write_zip(tmp_path / "b" / "a.zip", {"big.bin": big[:-1] + b"x", **FILES})
    members = tmp_path / "members"
    results = _compare(a, b, members)
    member = next(r for r in results if r.path == "a.zip!big.bin")
    assert member.verdict is ArtifactVerdict.DIFFERENT
    assert member.released is not None and member.released.size == 5 << 20
    assert member.rebuilt is not None and member.released.sha256 != member.rebuilt.sha256
    assert list(members.iterdir()) == []


def test_zip_members_are_views_read_like_a_list(tmp_path: Path) -> None:
    """A ZIP listing holds no object per member: its members are views of the central
    directory made when asked, read like a list (length, index, negative index, slice,
    iteration) with the names, kinds and offsets zipfile reads; nothing can be appended."""
    a = write_zip(tmp_path / "a.zip", {"d/": b"", **FILES, "z": b"last"})
    with zipfile.ZipFile(a) as z:
        infos = z.infolist()
    with a.open("rb") as f:
        listing = read_zip(f, a.stat().st_size, Budget(Limits(), a.stat().st_size))
        members = listing.members
        assert not isinstance(members, list)
        assert len(members) == len(infos)
        assert [m.name for m in members] == [i.filename for i in infos]
        assert [m.offset for m in members] == [i.header_offset for i in infos]
        assert members[0].kind == "dir" and members[1].kind == "file"
        assert members[-1].name == "z" and [m.name for m in members[1:3]] == [
            i.filename for i in infos[1:3]
        ]
        assert b"".join(members[-1].opener()) == b"last"  # type: ignore[misc]
        with pytest.raises(TypeError):
            listing.add(members[0])
