"""Property tests: diff(x, x) is empty; diff(a, b) and diff(b, a) cover the same bytes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_helpers import FIXTURES, ledger_of

BASES = ["elf-date", "pe-mingw-timestamp", "pe-lld-codeview", "macho-thin"]


def covered(ledger: object) -> set[int]:
    out: set[int] = set()
    for d in ledger.differences:  # type: ignore[attr-defined]
        out.update(range(d.offset, d.offset + d.length))
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    flips=st.lists(st.tuples(st.floats(0, 0.9999), st.integers(1, 255)), min_size=1, max_size=6),
)
def test_symmetric_ranges_and_empty_self_diff(base: str, flips: list[tuple[float, int]]) -> None:
    original = (FIXTURES / base / "a").read_bytes()
    mutated = bytearray(original)
    for where, mask in flips:
        mutated[int(where * len(mutated))] ^= mask
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.write_bytes(original)
        b.write_bytes(bytes(mutated))
        assert ledger_of(a, a).differences == ()
        forward, backward = ledger_of(a, b), ledger_of(b, a)
        changed = {i for i in range(len(original)) if original[i] != mutated[i]}
        if len({r for r in forward.notes if "structure" in r}) == 0:
            assert covered(forward) == covered(backward) == changed
        else:
            assert changed <= covered(forward) and changed <= covered(backward)
