"""ZIP64 bytes no reader reads, beside an allowed time (found reviewing the change, issue 15).

The archives are written here byte by byte (one stored member, ZIP64 local sizes, a ZIP64 end
record and its locator), because no ZIP writer makes these attacks. The honest pair differs
only by the member's DOS time, under `archive.mtime`, and passes; each attack adds bytes to
the released side only, so only the attack can make a test fail. Python's `zipfile` reads
every released file here without complaint.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

from archive_support import artifact, report

NAME, DATA = b"engine.bin", b"engine code " * 40
PAYLOAD = b"HIDDEN PAYLOAD HERE!"
TIMES = (0x5A21_4C00, 0x5A21_4C01)  # (date << 16) | time, released and rebuilt


def zip64(
    dostime: int, *, second_record: bytes = b"", classic: tuple[int, ...] | None = None
) -> bytes:
    """One stored member with ZIP64 local sizes (`second_record`: a second ZIP64 extra record
    after the first), a ZIP64 end record and locator, then the classic end record holding
    `classic` (disk, cd disk, entries on disk, entries, cd size, cd offset) or placeholders."""
    crc, size = zlib.crc32(DATA), len(DATA)
    extra = struct.pack("<HHQQ", 1, 16, size, size) + second_record
    t, d = dostime & 0xFFFF, dostime >> 16
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, t, d, crc, 0xFFFFFFFF,
                        0xFFFFFFFF, len(NAME), len(extra)) + NAME + extra + DATA  # fmt: skip
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, t, d, crc, size,
                          size, len(NAME), 0, 0, 0, 0, 0, 0) + NAME  # fmt: skip
    cd_at, cd_size = len(local), len(central)
    end64_at = cd_at + cd_size
    end64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, cd_size, cd_at)
    locator = struct.pack("<IIQI", 0x07064B50, 0, end64_at, 1)
    numbers = classic or (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    end = struct.pack("<IHHHHIIH", 0x06054B50, *numbers, 0)
    return local + central + end64 + locator + end


def diff(tmp_path: Path, run_cli, released: bytes) -> tuple[int, dict]:
    for side, data in (("rel", released), ("reb", zip64(TIMES[1]))):
        (tmp_path / side).mkdir(exist_ok=True)
        (tmp_path / side / "app.zip").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "rel" / "app.zip") as z:  # a real reader takes it
        assert z.read(NAME.decode()) == DATA
    return report(run_cli, "diff", tmp_path / "rel" / "app.zip", tmp_path / "reb" / "app.zip",
                  "--allow", "archive.mtime")  # fmt: skip


def test_the_honest_zip64_pair_differs_only_by_an_allowed_time(tmp_path: Path, run_cli) -> None:
    code, rep = diff(tmp_path, run_cli, zip64(TIMES[0]))
    assert code == 0, rep


def test_a_second_local_zip64_record_carries_bytes(tmp_path: Path, run_cli) -> None:
    """Readers take the first ZIP64 record of a local extra; a second one was skipped by the
    walk and by the fields alike (exit 0 beside the allowed time)."""
    second = struct.pack("<HH", 1, len(PAYLOAD)) + PAYLOAD
    code, rep = diff(tmp_path, run_cli, zip64(TIMES[0], second_record=second))
    assert code == 1, rep
    hidden = [d for d in artifact(rep, "app.zip")["differences"] if d["kind"] == "hidden"]
    assert hidden and not any(d["allowed"] for d in hidden), rep
    assert any("a second ZIP64 record" in d["detail"] for d in hidden), hidden


def test_classic_end_record_numbers_beside_a_zip64_end_record(tmp_path: Path, run_cli) -> None:
    """Readers take the ZIP64 end record's numbers; the classic record's 16 bytes were never
    read: chosen values (exit 0 beside the allowed time), or a mix of placeholders and true
    values (a bit per number) where the rebuild has placeholders."""
    chosen = (0, 0, 0x4E45, 0x4E45, 0x41544144, 0x21212121)  # "NE", "NE", "DATA", "!!!!"
    code, rep = diff(tmp_path, run_cli, zip64(TIMES[0], classic=chosen))
    assert code == 1, rep
    found = artifact(rep, "app.zip")["differences"]
    assert any(d["kind"] == "hidden" and "classic end record" in d["detail"] for d in found)
    true_values = (0, 0, 1, 1, 56, len(zip64(TIMES[0])) - 22 - 20 - 56 - 56)
    code, rep = diff(tmp_path, run_cli, zip64(TIMES[0], classic=true_values))
    assert code == 1, rep
    mixed = {d["region"]: d for d in artifact(rep, "app.zip")["differences"]}
    assert not mixed["zip.end.placeholders"]["allowed"], mixed
