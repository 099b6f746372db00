"""An RPM header's file digests of entries that are not regular files (found in review).

rpm states no digest for a directory or a symlink (an empty string) and a symlink's size is
its target's length. The digests were checked only for regular files, so a directory's entry
could hold a string of any length, riding beside an allowed difference (a build time) as a
consequence of the file digests tag differing because a file's content does (a PE whose
TimeDateStamp differs, under `pe.timestamp`). The package is real (rpmbuild: a program, a
directory, a symlink); the forged string is put into the header, every offset after it moved
and every digest rpm checks made right again (`rpm_support.restate`).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, regions, report
from rpm_support import MISSING, SPEC, _header, build_rpm, restate

FILEDIGESTS = 1035
PAYLOAD = b"chosen bytes riding in a directory's digest " * 4  # 176 bytes
WITH_DIR = SPEC.replace(
    "%files\n/usr/bin/hello\n",
    """mkdir -p %{buildroot}/usr/share/hello
ln -s ../../bin/hello %{buildroot}/usr/share/hello/link
%files
/usr/bin/hello
%dir /usr/share/hello
/usr/share/hello/link
""",
)


def programs() -> tuple[bytes, bytes]:
    """A PE and the same PE with another TimeDateStamp (`pe.timestamp` allows it)."""
    pe = bytearray((FIXTURES / "signature" / "other-unsigned.exe").read_bytes())
    stamped = bytearray(pe)
    struct.pack_into("<I", stamped, struct.unpack_from("<I", pe, 0x3C)[0] + 8, 0x12345678)
    return bytes(stamped), bytes(pe)


def forge_digest(rpm: bytes, entry: int, value: bytes) -> bytes:
    """`rpm` with file `entry`'s digest string replaced by `value` (its length a multiple of
    8 more than the old one's, so later tags stay aligned), offsets moved, digests restated."""
    _, end = _header(rpm, 96)
    main = end + (8 - end % 8) % 8
    count, size = struct.unpack_from(">II", rpm, main + 8)
    store = main + 16 + 16 * count
    index = [list(struct.unpack_from(">IIII", rpm, main + 16 + 16 * i)) for i in range(count)]
    tag = next(t for t in index if t[0] == FILEDIGESTS)
    strings = rpm[store + tag[2] :].split(b"\0")[: tag[3]]
    old = strings[entry]
    assert (len(value) - len(old)) % 8 == 0
    at = store + tag[2] + sum(len(s) + 1 for s in strings[:entry])
    delta = len(value) - len(old)
    for t in index:
        if t[2] > tag[2]:
            t[2] += delta
    head = b"".join(struct.pack(">IIII", *t) for t in index)
    data = (rpm[: main + 8] + struct.pack(">II", count, size + delta) + head
            + rpm[store:at] + value + rpm[at + len(old) :])  # fmt: skip
    return restate(data)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if MISSING:
        pytest.skip(f"{', '.join(MISSING)}: .ci/apt-packages.txt")
    root = tmp_path_factory.mktemp("rpmdir")
    stamped, pe = programs()
    released = build_rpm(root, root / "rel" / "x.rpm", stamped, 1_700_000_000, spec=WITH_DIR)
    rebuilt = build_rpm(root, root / "reb" / "x.rpm", pe, 1_700_000_000, spec=WITH_DIR)
    return released, rebuilt


def test_a_directorys_digest_holds_chosen_bytes_beside_an_accepted_file(
    pair: tuple[Path, Path], run_cli, tmp_path: Path
) -> None:
    released, rebuilt = pair
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "pe.timestamp")
    assert code == 0, rep  # the control: the file digests follow the PE's content
    data = released.read_bytes()
    forged = tmp_path / "rel" / "x.rpm"
    forged.parent.mkdir()
    # entries in header order: /usr/bin/hello, /usr/share/hello, /usr/share/hello/link
    forged.write_bytes(forge_digest(data, 1, PAYLOAD))
    code, rep = report(run_cli, "diff", forged, rebuilt, "--allow", "pe.timestamp")
    assert code == 1, rep
    found = regions(artifact(rep, "x.rpm"))["rpm.header.filedigests.digest"]
    assert (found["kind"], found["allowed"]) == ("hidden", False)
