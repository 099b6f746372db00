"""gcab's cabinet blocks reproduced from their content (issue 15): wixl's `product.cab`.

A cabinet whose member content differs (a DLL signed before packing) has other compressed
blocks too. They are a consequence only when each is exactly what gcab makes of its content
(`compare/archives/cabzip.py`); otherwise `cab.compression.encoding`. Attacks on the check are
in `tests/adversarial/test_cab_encoding_attacks.py`.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import olefile
import pytest

from archive_support import (
    FIXTURES,
    artifact,
    pin_summary,
    regions,
    report,
    sign_msi,
    write_cab,
    write_msi,
)
from reprover.compare.archives.cabzip import gcab_block
from reprover.compare.archives.ole import msi_name
from signature_support import osslsign

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcab", "wixl", "osslsigncode")),
    reason="gcab, wixl and osslsigncode are installed by .ci/apt-packages.txt",
)
DLL = FIXTURES / "ledger" / "pe-mingw-timestamp" / "a"
# incompressible: level 6 makes more than 32780 bytes of a full block, so gcab stores it
NOISE = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(2500))


def blocks(cab: bytes) -> list[tuple[bytes, bytes]]:
    """(whole block, data) of each data block of gcab's one folder."""
    start, count, _ = struct.unpack_from("<IHH", cab, 36)
    out, pos = [], start
    for _ in range(count):
        size = struct.unpack_from("<H", cab, pos + 4)[0]
        out.append((cab[pos : pos + 8 + size], cab[pos + 8 : pos + 8 + size]))
        pos += 8 + size
    assert pos == len(cab)
    return out


@pytest.mark.parametrize("compress", [True, False], ids=["mszip", "stored"])
def test_gcab_blocks_are_reproduced_byte_for_byte(tmp_path: Path, compress: bool) -> None:
    """Measured against gcab itself: a DLL, an incompressible run (level 0 fallback), a
    short text; content cut every 32 KiB across files, the last block shorter."""
    files = {"engine.dll": DLL.read_bytes(), "noise.bin": NOISE, "readme.txt": b"engine\n" * 9}
    cab = write_cab(tmp_path / "x.cab", files, compress=compress).read_bytes()
    content = b"".join(files.values())
    found = blocks(cab)
    assert len(found) == -(-len(content) // 32768) >= 4
    for n, (whole, _) in enumerate(found):
        assert whole == gcab_block(content[32768 * n : 32768 * (n + 1)], int(compress)), n
    if compress:  # at least one block went through gcab's stored fallback
        assert any(data[2] & 0x06 == 0 for _, data in found)


@pytest.fixture(scope="module")
def signed_dll(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("dll") / "engine.dll"
    osslsign(DLL, out, "leaf")
    return out.read_bytes()


def test_cabinet_of_a_signed_dll_is_signature_only(signed_dll, tmp_path, run_cli) -> None:
    """An unsigned gcab cabinet holding the signed DLL against the one holding the unsigned
    rebuild: the compressed blocks follow the content (was `cab.compression.encoding`)."""
    released = write_cab(tmp_path / "rel" / "x.cab", {"engine.dll": signed_dll})
    rebuilt = write_cab(tmp_path / "reb" / "x.cab", {"engine.dll": DLL.read_bytes()})
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert code == 0, rep
    outer = artifact(rep, "x.cab")
    assert outer["verdict"] == "signature-only"
    found = regions(outer)
    assert "cab.compression.encoding" not in found
    assert found["cab.compression.data0"]["allowed"]
    assert found["cab.compression.data0"]["cause"] == "consequence"
    assert artifact(rep, "x.cab!engine.dll")["verdict"] == "signature-only"


def test_product_cab_of_a_signed_msi_holding_a_signed_dll(signed_dll, tmp_path, run_cli) -> None:
    """wixl's embedded cabinet with the signed engine.dll is `signature-only` on its own; the
    MSI tables that restate the file (`!File`, `!MsiFileHash`) are another matter."""
    (tmp_path / "reb").mkdir()
    (tmp_path / "pre").mkdir()
    rebuilt = write_msi(tmp_path / "reb" / "setup.msi", DLL.read_bytes())
    unsigned = pin_summary(write_msi(tmp_path / "pre" / "setup.msi", signed_dll), rebuilt)
    released = sign_msi(unsigned, tmp_path / "setup.msi")
    with olefile.OleFileIO(str(released)) as ole:
        assert any(msi_name(e[0]) == "product.cab" for e in ole.listdir())
    _, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    cab = artifact(rep, "setup.msi!product.cab")
    assert cab["verdict"] == "signature-only", cab
    assert artifact(rep, "setup.msi!product.cab!engine.dll")["verdict"] == "signature-only"
    assert "cab.compression.encoding" not in regions(cab)


@pytest.mark.parametrize("compress", [True, False], ids=["mszip", "stored"])
def test_signed_cabinet_of_a_signed_dll(signed_dll, tmp_path, run_cli, compress) -> None:
    """The vendor signs the DLL, packs it (gcab), signs the cabinet (osslsigncode); the rebuild
    is unsigned twice over: `signature-only`, each signer at its own layer."""
    ca = FIXTURES / "signature" / "ca.pem"
    inner = write_cab(tmp_path / "pre" / "x.cab", {"engine.dll": signed_dll}, compress=compress)
    (tmp_path / "rel").mkdir()
    released = tmp_path / "rel" / "x.cab"
    osslsign(inner, released, "leaf")
    rebuilt = write_cab(tmp_path / "reb" / "x.cab", {"engine.dll": DLL.read_bytes()},
                        compress=compress)  # fmt: skip
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature",
                       "--trusted", ca)  # fmt: skip
    assert code == 0, rep
    outer, member = artifact(rep, "x.cab"), artifact(rep, "x.cab!engine.dll")
    assert (outer["verdict"], member["verdict"]) == ("signature-only", "signature-only")
    notes = " ".join(outer["notes"])
    assert "released = rebuilt + CAB Authenticode signature" in notes
    assert "engine.dll (signature-only: see x.cab!engine.dll)" in notes
    assert "released = rebuilt + Authenticode signature" in " ".join(member["notes"])
    code, rep = report(run_cli, "sign-check", rebuilt, released, "--trusted", ca)
    assert code == 0, rep
