"""Byte runs and hashing: exact against a naive reference, on many shapes of input."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reprover.compare.bytes import diff_runs
from reprover.digest import hash_file, hash_files


def naive_runs(a: bytes, b: bytes) -> list[tuple[int, int]]:
    """The reference: compare byte by byte, tail of the longer file is one run."""
    differing = [i for i in range(max(len(a), len(b))) if i >= min(len(a), len(b)) or a[i] != b[i]]
    runs: list[tuple[int, int]] = []
    for i in differing:
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def _files(tmp: Path, a: bytes, b: bytes) -> tuple[Path, Path]:
    pa, pb = tmp / "a", tmp / "b"
    pa.write_bytes(a)
    pb.write_bytes(b)
    return pa, pb


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=300),
    edits=st.lists(st.tuples(st.integers(0, 299), st.integers(0, 255)), max_size=12),
    tail=st.binary(max_size=20),
    chunk=st.sampled_from([1, 3, 16, 64, 1 << 20]),
)
def test_runs_match_reference_and_are_symmetric(
    tmp_path_factory: object, data: bytes, edits: list[tuple[int, int]], tail: bytes, chunk: int
) -> None:
    import tempfile

    other = bytearray(data)
    for index, value in edits:
        if index < len(other):
            other[index] = value
    other += tail
    with tempfile.TemporaryDirectory() as tmp:
        pa, pb = _files(Path(tmp), data, bytes(other))
        forward = diff_runs(pa, pb, chunk=chunk)
        assert forward == naive_runs(data, bytes(other))
        assert diff_runs(pb, pa, chunk=chunk) == forward
        assert diff_runs(pa, pa, chunk=chunk) == []


def test_runs_merge_across_chunk_boundaries(tmp_path: Path) -> None:
    a = bytes(100)
    b = bytes(40) + b"\x01" * 30 + bytes(30)
    pa, pb = _files(tmp_path, a, b)
    assert diff_runs(pa, pb, chunk=7) == [(40, 30)]


def test_hashes_match_hashlib_in_parallel(tmp_path: Path) -> None:
    blobs = {tmp_path / f"f{i}": bytes([i]) * (i * 700_001) for i in range(4)}
    for path, blob in blobs.items():
        path.write_bytes(blob)
    digests = hash_files(blobs)
    for path, blob in blobs.items():
        assert digests[path].sha256 == hashlib.sha256(blob).hexdigest()
        assert digests[path].size == len(blob)
    assert hash_file(tmp_path / "f0").sha256 == hashlib.sha256(b"").hexdigest()
