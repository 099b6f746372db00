"""MSI installers as archives (issue 15): storages as members, the summary stream as fields."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, regions, repack_msi, report, write_msi
from reprover.compare.archives.olesummary import NAME, SummaryRefused, parse

pytestmark = pytest.mark.skipif(
    shutil.which("wixl") is None or shutil.which("gsf") is None or shutil.which("msibuild") is None,
    reason="wixl, gsf (libgsf-bin) and msibuild (msitools) are installed by .ci/apt-packages.txt",
)
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
PACKAGE = "{12345678-1234-1234-1234-123456789099}"


def build(path: Path) -> Path:
    """A wixl build started in a later second than any before it (wixl stamps the time)."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_msi(path, DLL.read_bytes())


def summary(msi: Path) -> bytes:
    import olefile

    with olefile.OleFileIO(str(msi)) as ole:
        return bytes(ole.openstream(NAME).read())


def test_two_wixl_builds_differ_by_package_code_and_times(tmp_path: Path, run_cli) -> None:
    a, b = build(tmp_path / "a" / "setup.msi"), build(tmp_path / "b" / "setup.msi")
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 1
    outer = artifact(rep, "setup.msi")
    found = regions(outer)
    # wixl 0.101 writes a random package code and the current time; neither SOURCE_DATE_EPOCH
    # nor <Package Id> changes that. The cabinet holds engine.dll's file time (DOS time, 2 s),
    # allowed by archive.mtime too. Nothing else differs.
    assert {"msi.summary.revision", "msi.summary.created", "msi.summary.saved"} <= set(found)
    assert set(found) <= {"msi.summary.revision", "msi.summary.created", "msi.summary.saved",
                          "ole.stream[product.cab].data"}  # fmt: skip
    assert found["msi.summary.created"]["kind"] == "timestamp"
    # the package code is product identity: the only difference no rule allows
    assert {r for r, d in found.items() if not d["allowed"]} == {"msi.summary.revision"}


def test_builds_with_a_fixed_package_code_differ_only_by_archive_mtime(
    tmp_path: Path, run_cli
) -> None:
    built = []
    for side in ("a", "b"):
        msi = build(tmp_path / side / "setup.msi")
        subprocess.run(["msibuild", str(msi), "-s", "Installation Database", "Vendor",
                        "Intel;1033", PACKAGE], check=True, capture_output=True)  # fmt: skip
        built.append(msi)
    code, rep = report(run_cli, "diff", *built)
    assert code == 1
    found = set(regions(artifact(rep, "setup.msi")))
    assert {"msi.summary.created", "msi.summary.saved"} <= found
    assert found <= {"msi.summary.created", "msi.summary.saved", "ole.stream[product.cab].data"}
    code, rep = report(run_cli, "diff", *built, "--allow", "archive.mtime")
    assert code == 0, rep
    assert artifact(rep, "setup.msi")["verdict"] == "equivalent"


def test_summary_fields_account_for_every_byte(tmp_path: Path) -> None:
    data = summary(write_msi(tmp_path / "setup.msi", DLL.read_bytes()))
    fields, skeleton = parse(data)
    assert fields["msi.summary.template"].value == b"Intel;1033\0"
    assert fields["msi.summary.revision"].value.startswith(b"{")
    assert fields["msi.summary.codepage"].value == 1252
    assert len(skeleton) == len(data)
    # rebuild the stream from the skeleton and the fields: every byte is one or the other
    rebuilt = bytearray(skeleton)
    for v in fields.values():
        raw = data[v.offset : v.offset + v.length]
        assert not skeleton[v.offset : v.offset + v.length].strip(b"\0")
        rebuilt[v.offset : v.offset + v.length] = raw
    assert bytes(rebuilt) == data
    with pytest.raises(SummaryRefused, match="after the last property"):
        parse(data[:48] + (len(data) - 48 + 4).to_bytes(4, "little") + data[52:] + b"\0" * 4)


def test_storage_streams_are_members_named_storage_slash_stream(tmp_path: Path, run_cli) -> None:
    msi = write_msi(tmp_path / "base.msi", DLL.read_bytes())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = repack_msi(msi, tmp_path / "a" / "setup.msi", {"Sub": {"inner": b"one\n"}})
    b = repack_msi(msi, tmp_path / "b" / "setup.msi", {"Sub": {"inner": b"two\n"}})
    code, rep = report(run_cli, "diff", a, b, "--allow", "archive.mtime")
    assert code == 1
    found = regions(artifact(rep, "setup.msi"))
    assert "ole.stream[Sub/inner].data" in found
    assert artifact(rep, "setup.msi!Sub/inner")["verdict"] == "different"
    refused = {r for r, d in found.items() if not d["allowed"]}
    assert refused == {"ole.stream[Sub/inner].data"}
