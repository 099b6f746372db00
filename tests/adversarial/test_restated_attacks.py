"""Attacks on restated digests (wheel RECORD, Debian md5sums), through the real CLI.

Each builds the honest pair of tests/test_archive_restated.py (released: the PE signed by
osslsigncode and its restating line updated; rebuilt: unsigned) and forges the released
restating member. `diff --allow signature` must exit 1 with the restating member `different`
and a note saying why; the honest pair passes (`test_the_honest_pair_passes`), so only the
forgery can make each fail. Both formats run every attack that applies to both.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archive_support import artifact, flip_code_byte, report
from restated_support import (
    DLL,
    PYD,
    RECORD,
    WHEEL,
    Edit,
    build_deb,
    hand_deb,
    md5_line,
    pyd,
    record_line,
    rewheel,
    sign,
    small_pe,
    with_member,
)

FORMATS = ("wheel", "deb")
CHANGED = {"wheel": PYD, "deb": DLL}  # the signed PE
OTHER = {"wheel": "markupsafe/other.pyd", "deb": "usr/lib/engine/other.dll"}  # signed too
SAME = {"wheel": "markupsafe/__init__.py", "deb": "usr/share/doc/engine/README"}  # unchanged
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _pair(
    run_cli: Callable[..., tuple[int, str, str]], fmt: str, tmp_path: Path, edit: Edit, *,
    pe: Edit | None = None,
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """The released restating member forged by `edit` (and the signed PE by `pe`); the report."""
    other = small_pe()  # a second PE, signed too: one line may be forged, the other honest
    other_signed = sign(other, tmp_path, "other")
    if fmt == "wheel":
        signed = sign(pyd(), tmp_path)
        rebuilt = with_member(WHEEL, tmp_path / "rebuilt.whl", OTHER["wheel"], other)
        members = {PYD: pe(signed) if pe else signed, OTHER["wheel"]: other_signed}
        released = rewheel(tmp_path / "released.whl", members, edit, src=rebuilt)
        restating = f"released.whl!{RECORD}"
    else:
        signed = sign(small_pe(), tmp_path)
        rebuilt = build_deb(tmp_path / "rebuilt.deb", tmp_path, small_pe(),
                            files={OTHER["deb"]: other})  # fmt: skip
        released = build_deb(tmp_path / "released.deb", tmp_path, pe(signed) if pe else signed,
                             edit, files={OTHER["deb"]: other_signed})  # fmt: skip
        restating = "released.deb!control.tar.xz!./md5sums"
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    return code, artifact(rep, restating)


def _line(data: bytes, path: str) -> tuple[int, bytes]:
    """The index and bytes of the line naming `path` (md5sums or RECORD)."""
    lines = data.splitlines(keepends=True)
    for i, ln in enumerate(lines):
        if ln.endswith(f"  {path}\n".encode()) or ln.startswith(f"{path},".encode()):
            return i, ln
    raise AssertionError(path)


def _with_line(data: bytes, path: str, new: bytes | None) -> bytes:
    lines = data.splitlines(keepends=True)
    at, _ = _line(data, path)
    lines[at : at + 1] = [] if new is None else [new]
    return b"".join(lines)


def _fails(code: int, restating: dict[str, Any], why: str) -> None:
    assert code == 1
    assert restating["verdict"] == "different"
    notes = " ".join(restating["notes"])
    assert "restated digests not explained" in notes
    assert why in notes, notes


def _flip_digest(line: bytes) -> bytes:
    at = line.index(b"sha256=") + 7 if b"sha256=" in line else 0
    return line[:at] + (b"0" if line[at : at + 1] != b"0" else b"1") + line[at + 1 :]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_honest_pair_passes(fmt: str, tmp_path: Path, run_cli) -> None:
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: d)
    assert code == 0
    assert restating["verdict"] == "equivalent"
    assert {d["region"] for d in restating["differences"]} == {
        f"{'RECORD' if fmt == 'wheel' else 'md5sums'}[{p}]" for p in (CHANGED[fmt], OTHER[fmt])
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_changed_for_a_member_whose_content_did_not_change(
    fmt: str, tmp_path: Path, run_cli
) -> None:
    def edit(d: bytes) -> bytes:
        return _with_line(d, SAME[fmt], _flip_digest(_line(d, SAME[fmt])[1]))

    code, restating = _pair(run_cli, fmt, tmp_path, edit)
    _fails(code, restating, "differs but the member's content does not")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_extra_line_naming_no_member(fmt: str, tmp_path: Path, run_cli) -> None:
    extra = "markupsafe/extra.py" if fmt == "wheel" else "usr/lib/engine/extra.dll"
    line = record_line(extra, b"x") if fmt == "wheel" else md5_line(extra, b"x")
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: d + line)
    _fails(code, restating, "names no member")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_dropped_line(fmt: str, tmp_path: Path, run_cli) -> None:
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: _with_line(d, SAME[fmt], None))
    _fails(code, restating, "is not in the released")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_duplicate_path(fmt: str, tmp_path: Path, run_cli) -> None:
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: d + _line(d, CHANGED[fmt])[1])
    _fails(code, restating, "twice")


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_rebuilt_digest_kept_stale(fmt: str, tmp_path: Path, run_cli) -> None:
    """The second PE's line keeps its unsigned digest; the first is restated honestly."""
    path = OTHER[fmt]
    stale = record_line(path, small_pe()) if fmt == "wheel" else md5_line(path, small_pe())
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: _with_line(d, path, stale))
    _fails(code, restating, "keeps the rebuilt content's values (stale)")


def test_a_digest_that_matches_but_a_size_that_does_not(tmp_path: Path, run_cli) -> None:
    def edit(d: bytes) -> bytes:
        row = _line(d, PYD)[1].decode().rstrip("\n").split(",")
        return _with_line(d, PYD, f"{row[0]},{row[1]},{int(row[2]) + 1}\n".encode())

    code, restating = _pair(run_cli, "wheel", tmp_path, edit)
    _fails(code, restating, "is not the released content's values")


def test_a_digest_spelled_with_its_spare_bits_set(tmp_path: Path, run_cli) -> None:
    """urlsafe base64 of 32 bytes has 2 spare bits in its last character: another spelling
    of the same digest, which a lenient decoder accepts."""

    def edit(d: bytes) -> bytes:
        line = _line(d, PYD)[1]
        at = line.index(b",", line.index(b"sha256=")) - 1
        other = B64[B64.index(chr(line[at])) ^ 1].encode()
        forged = line[:at] + other + line[at + 1 :]
        digest = forged.split(b",")[1][7:]
        assert base64.urlsafe_b64decode(digest + b"=") == base64.urlsafe_b64decode(
            line.split(b",")[1][7:] + b"="
        )
        return _with_line(d, PYD, forged)

    code, restating = _pair(run_cli, "wheel", tmp_path, edit)
    _fails(code, restating, "spells its digest otherwise")


@pytest.mark.parametrize("fmt", FORMATS)
def test_crlf_line_endings(fmt: str, tmp_path: Path, run_cli) -> None:
    """The whole released file in CR LF, the rebuilt one in LF (RECORD may be either, as
    long as both sides agree; md5sums only LF)."""
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: d.replace(b"\n", b"\r\n"))
    _fails(code, restating, "carriage return" if fmt == "deb" else "end their lines otherwise")


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_line_ended_otherwise(fmt: str, tmp_path: Path, run_cli) -> None:
    """The changed member's line alone ends in CR LF."""

    def edit(d: bytes) -> bytes:
        line = _line(d, CHANGED[fmt])[1]
        return _with_line(d, CHANGED[fmt], line[:-1] + b"\r\n")

    code, restating = _pair(run_cli, fmt, tmp_path, edit)
    _fails(code, restating, "carriage return not ending a line, or mixes line endings")


@pytest.mark.parametrize("fmt", FORMATS)
def test_trailing_bytes_after_the_last_line(fmt: str, tmp_path: Path, run_cli) -> None:
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: d + b"payload")
    _fails(code, restating, "does not end with a newline")


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_spellings_of_a_path(fmt: str, tmp_path: Path, run_cli) -> None:
    """The changed member's line spelled `./a` for `a`."""

    def edit(d: bytes) -> bytes:
        path = CHANGED[fmt]
        line = _line(d, path)[1]
        return _with_line(d, path, line.replace(path.encode(), f"./{path}".encode()))

    code, restating = _pair(run_cli, fmt, tmp_path, edit)
    _fails(code, restating, "not a normal relative path")


def test_a_malformed_md5(tmp_path: Path, run_cli) -> None:
    """An upper-case MD5: md5sum never writes one; two spellings of one digest."""

    def edit(d: bytes) -> bytes:
        line = _line(d, DLL)[1]
        return _with_line(d, DLL, line[:32].upper() + line[32:])

    code, restating = _pair(run_cli, "deb", tmp_path, edit)
    _fails(code, restating, "malformed line")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_inner_member_that_differs_and_is_not_accepted(
    fmt: str, tmp_path: Path, run_cli
) -> None:
    """A code byte of the signed PE changed and its line restated honestly: the PE is not
    signature-only, so its line is not explained either."""
    code, restating = _pair(run_cli, fmt, tmp_path, lambda d: d, pe=flip_code_byte)
    _fails(code, restating, "is different: not accepted")


def test_two_spellings_of_a_member_in_the_data_tar(tmp_path: Path, run_cli) -> None:
    """The data tar holds `./usr/lib/engine/engine.dll` (signed) and `usr/lib/engine/engine.dll`
    (the same on both sides): md5sums' `usr/lib/engine/engine.dll` could name either, so no
    line is explained, though the signed one's is restated honestly."""
    pe = small_pe()
    signed = sign(pe, tmp_path)
    decoy = {"usr/lib/engine/engine.dll": pe}

    def deb(name: str, dll: bytes) -> Path:
        return hand_deb(tmp_path / name, tmp_path, {f"./{DLL}": dll, **decoy}, md5_line(DLL, dll))

    released, rebuilt = deb("released.deb", signed), deb("rebuilt.deb", pe)
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert artifact(rep, f"released.deb!data.tar.xz!./{DLL}")["verdict"] == "signature-only"
    _fails(code, artifact(rep, "released.deb!control.tar.xz!./md5sums"),
           "two members are spelled 'usr/lib/engine/engine.dll'")  # fmt: skip


def test_a_forged_line_beside_a_member_not_decided_is_different(tmp_path: Path) -> None:
    """One named member hits a limit (undecided) and the line of an unchanged member is forged:
    the forgery is known, so the RECORD is `different`, not the weaker `inconclusive` the
    attacker would choose by making a member undecided."""
    import zipfile

    from reprover.compare.archives.restated import Changed, Scope, resolve
    from reprover.model import ArtifactResult, ArtifactVerdict

    with zipfile.ZipFile(WHEEL) as z:
        rebuilt_record, names = z.read(RECORD), set(z.namelist())
    same = SAME["wheel"]
    forged = record_line(same, b"chosen bytes")

    def forge(record: bytes) -> bytes:
        lines = record.splitlines(keepends=True)
        at = next(i for i, ln in enumerate(lines) if ln.startswith(same.encode() + b","))
        lines[at] = forged
        return b"".join(lines)

    signed = sign(pyd(), tmp_path)

    def resolved(edit: Callable[[bytes], bytes]) -> ArtifactResult:
        released = rewheel(tmp_path / "released.whl", {PYD: signed}, edit)
        with zipfile.ZipFile(released) as z:
            (tmp_path / "a").write_bytes(z.read(RECORD))
        (tmp_path / "b").write_bytes(rebuilt_record)
        scope = Scope("record", "x.whl", names=(names, set(names)))
        scope.register(PYD, Changed(f"x.whl!{PYD}", ArtifactVerdict.INCONCLUSIVE))
        result = ArtifactResult(f"x.whl!{RECORD}", ArtifactVerdict.DIFFERENT, None, None)
        return resolve(scope, RECORD, result, (tmp_path / "a", tmp_path / "b"))

    honest = resolved(lambda record: record)
    assert honest.verdict is ArtifactVerdict.INCONCLUSIVE  # the control: only undecided
    out = resolved(forge)
    assert out.verdict is ArtifactVerdict.DIFFERENT, out.notes
    assert any(same in n and "content does not" in n for n in out.notes), out.notes
