"""Benchmark the RPM signature proof: a package with a 64 MiB payload, signed by rpmsign.

Side by side: `sha256sum` of both packages (the physical limit), rpm's own `rpmkeys -K` of the
signed one (a private rpm database holding the key), and `reprover sign-check` (the whole
comparison plus the proof: byte comparison, gpg importing the pinned key, gpgv), for a
header-only signature and for `--rpmv3` (a header+payload signature too, so gpgv reads the
payload). Built with rpmbuild and signed with a fresh key in a throwaway GnuPG home.

    python scripts/bench.py --only rpmsig
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench import REPROVER, measure, table  # noqa: E402
from rpm_support import MISSING, Signer, build_rpm  # noqa: E402

PAYLOAD_MIB = 64


def main(repeat: int = 3) -> int:
    """Build, sign and time."""
    if MISSING:
        print(f"\nrpmsig: {', '.join(MISSING)} missing; skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="reprover-bench-rpm-") as tmp:
        root = Path(tmp)
        unsigned = build_rpm(root, root / "u" / "hello.rpm", os.urandom(PAYLOAD_MIB << 20), 1)
        signer = Signer(root / "gnupg", "Bench Signer <bench@example.com>")
        try:
            for name, rpmv3 in (("header-only signature", False), ("--rpmv3 signatures", True)):
                signed = signer.rpmsign(unsigned, root / name / "hello.rpm", rpmv3=rpmv3)
                db = root / f"db-{rpmv3}"
                db.mkdir()
                subprocess.run(["rpmkeys", "--dbpath", str(db), "--import", str(signer.public)],
                               check=True)  # fmt: skip
                base = measure("sha256sum both", ["sha256sum", str(signed), str(unsigned)],
                               repeat=repeat)  # fmt: skip
                figures = [
                    measure("rpmkeys -K (signed only)",
                            ["rpmkeys", "--dbpath", str(db), "-K", str(signed)], repeat=repeat),
                    measure("reprover sign-check --trusted KEY",
                            [*REPROVER, "sign-check", str(unsigned), str(signed), "--trusted",
                             str(signer.public)], repeat=repeat),
                ]  # fmt: skip
                table(f"RPM, {PAYLOAD_MIB} MiB random payload, {name}", base, figures)
        finally:
            signer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
