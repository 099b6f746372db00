"""The demo's release engineering: a code-signing CA and an Authenticode-signed Windows engine.

Owns: making a throw-away CA and a leaf certificate with the code-signing usage (openssl), and
signing the released PE with osslsigncode, as the vendor's transparency center would.
Does not own: checking the signature (`reprover.compare.signatures.authenticode` does, in `verify`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from reprover.errors import BuildError

TOOLS = ("openssl", "osslsigncode")


def available() -> bool:
    """Whether the tools to sign a PE are installed."""
    return all(shutil.which(tool) for tool in TOOLS)


def sign_release(exe: Path, keys: Path) -> Path:
    """Sign `exe` in place with a new demo CA's leaf; return the CA certificate to pin.

    Raises:
        BuildError: openssl or osslsigncode failed.
    """
    keys.mkdir(parents=True, exist_ok=True)
    ca, leaf = keys / "codesign-ca", keys / "release-engineering"
    _run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{ca}.key",
        "-out",
        f"{ca}.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=Demo Vendor Code Signing CA",
        "-addext",
        "basicConstraints=critical,CA:true",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    extensions = keys / "leaf.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=codeSigning\n"
    )
    _run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{leaf}.key",
        "-out",
        f"{leaf}.csr",
        "-subj",
        "/CN=Demo Vendor Release Engineering",
    )
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        f"{leaf}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-set_serial",
        "4242",
        "-days",
        "825",
        "-out",
        f"{leaf}.pem",
        "-extfile",
        str(extensions),
    )
    unsigned = exe.with_name(exe.name + ".unsigned")
    exe.rename(unsigned)
    _run(
        "osslsigncode",
        "sign",
        "-certs",
        f"{leaf}.pem",
        "-key",
        f"{leaf}.key",
        "-h",
        "sha256",
        "-n",
        "Demo scanner engine",
        "-in",
        str(unsigned),
        "-out",
        str(exe),
    )
    unsigned.unlink()
    for leftover in (extensions, Path(f"{leaf}.csr")):
        leftover.unlink()
    return Path(f"{ca}.pem")


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"demo signing failed: {argv[0]} {argv[1]}", details=done.stderr)
