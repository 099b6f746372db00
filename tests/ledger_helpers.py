"""Shared helpers for the ledger tests: fixture paths and ledger-as-JSON."""

from __future__ import annotations

from pathlib import Path

from reprover.compare.bytes import diff_runs
from reprover.compare.ledger import Ledger, explain

FIXTURES = Path(__file__).parent / "fixtures" / "ledger"
PAIRS = sorted(p.name for p in FIXTURES.iterdir() if (p / "ledger.json").exists())


def ledger_of(a: Path, b: Path) -> Ledger:
    """The ledger of two files, through the same path `compare_files` takes."""
    return explain(a, b, diff_runs(a, b))


def as_json(ledger: Ledger) -> dict[str, object]:
    """The golden-file form of a ledger (see scripts/make_ledger_fixtures.py)."""
    return {
        "differences": [
            {
                "offset": d.offset,
                "length": d.length,
                "region": d.region,
                "kind": d.kind.value,
                "cause": d.cause.value,
                "context": list(d.context),
                "symbol": d.symbol,
                "detail": d.detail,
            }
            for d in ledger.differences
        ],
        "notes": list(ledger.notes),
    }
