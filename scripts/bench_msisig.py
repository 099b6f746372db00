"""Benchmark the MSI signature proof and its layout check: a compound file with a 256 MiB
random stream (libgsf), signed by osslsigncode (which writes it anew with 4096-byte sectors).

Side by side: `sha256sum` of both files (the physical limit), osslsigncode's own `verify` of
the signed one, `reprover sign-check` (the whole comparison plus the proof), and the layout
check alone (`msilayout.require_signer_layout`: the tables and padding osslsigncode writes,
never a stream's bytes).

    python scripts/bench.py --only msisig
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import REPROVER, measure, table  # noqa: E402

PAYLOAD_MIB = 256
KEYS = HERE.parent / "tests" / "fixtures" / "signature"
LAYOUT = ("from pathlib import Path; import sys; from reprover.compare.archives.msilayout "
          "import require_signer_layout as r; r(Path(sys.argv[1]), Path(sys.argv[2]))")  # fmt: skip


def main(repeat: int = 3) -> int:
    """Build, sign and time."""
    missing = [t for t in ("gsf", "osslsigncode") if shutil.which(t) is None]
    if missing:
        print(f"\nmsisig: {', '.join(missing)} missing; skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="reprover-bench-msi-") as tmp:
        root = Path(tmp)
        (root / "payload.bin").write_bytes(os.urandom(PAYLOAD_MIB << 20))
        (root / "small.txt").write_bytes(b"a small stream\n")
        for side in ("rebuilt", "released"):
            (root / side).mkdir()
        unsigned, signed = root / "rebuilt" / "setup.msi", root / "released" / "setup.msi"
        subprocess.run(["gsf", "createole", str(unsigned), "payload.bin", "small.txt"],
                       cwd=root, check=True, capture_output=True)  # fmt: skip
        (root / "payload.bin").unlink()
        subprocess.run(["osslsigncode", "sign", "-certs", str(KEYS / "leaf.pem"), "-key",
                        str(KEYS / "leaf.key"), "-in", str(unsigned), "-out", str(signed)],
                       check=True, capture_output=True)  # fmt: skip
        base = measure("sha256sum both", ["sha256sum", str(signed), str(unsigned)], repeat=repeat)
        figures = [
            measure("osslsigncode verify (signed only)",
                    ["osslsigncode", "verify", "-CAfile", str(KEYS / "ca.pem"), "-in",
                     str(signed)], repeat=repeat),
            measure("reprover sign-check --trusted CA",
                    [*REPROVER, "sign-check", str(unsigned), str(signed), "--trusted",
                     str(KEYS / "ca.pem")], repeat=repeat),
            measure("the layout check alone (msilayout)",
                    [sys.executable, "-c", LAYOUT, str(signed), str(unsigned)], repeat=repeat),
        ]  # fmt: skip
        table(f"MSI (compound file), {PAYLOAD_MIB} MiB random stream, osslsigncode", base, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
