"""Generate the code-signature fixtures in tests/fixtures/signature/ (committed with this script).

Makes, with real tools only:
- a test CA, a leaf under it with the codeSigning EKU, a leaf under it without that EKU, a TSA
  certificate (timeStamping EKU), and an unrelated second CA with its own codeSigning leaf
  (openssl; keys are test-only and committed so tests can sign tampered variants);
- two tiny freestanding PE files from hello.c and other.c (x86_64-w64-mingw32-gcc,
  `-Wl,--no-insert-timestamp`), and signed copies (osslsigncode): plain, RFC 3161 timestamped
  with osslsigncode's built-in TSA (at generation time: the TSA certificate must be valid
  then), dual-signed (`-nest`, sha1 second signature), signed by the unrelated CA's
  leaf, signed by the leaf without the EKU, and the other program signed;
- an ad-hoc signed and an unsigned Mach-O from macho.c (clang -target x86_64-apple-macos11,
  ld64.lld `-adhoc_codesign` / `-no_adhoc_codesign`).

Run: .venv/bin/python scripts/make_signature_fixtures.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "signature"
LD64 = "/usr/lib/llvm-14/bin/ld64.lld"
SIGN_TIME = "1700000000"
DAYS = "7300"


def run(*argv: str, cwd: Path = HERE) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)


def ca(name: str, subject: str) -> None:
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        DAYS,
        "-subj",
        subject,
        "-addext",
        "basicConstraints=critical,CA:true",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )


def leaf(name: str, subject: str, issuer: str, eku: str | None) -> None:
    serial = str(int.from_bytes(name.encode(), "big") % 10**12)
    ext = HERE / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:false", "keyUsage=critical,digitalSignature"]
    if eku:
        lines.append(f"extendedKeyUsage={eku}")
    ext.write_text("\n".join(lines) + "\n")
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
    )
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{issuer}.pem",
        "-CAkey",
        f"{issuer}.key",
        "-set_serial",
        serial,
        "-out",
        f"{name}.pem",
        "-days",
        DAYS,
        "-extfile",
        ext.name,
    )
    ext.unlink()
    (HERE / f"{name}.csr").unlink()


def sign(inp: str, out: str, key: str, *extra: str, digest: str = "sha256") -> None:
    (HERE / out).unlink(missing_ok=True)  # osslsigncode does not overwrite
    run(
        "osslsigncode",
        "sign",
        "-certs",
        f"{key}.pem",
        "-key",
        f"{key}.key",
        "-h",
        digest,
        "-time",
        SIGN_TIME,
        *extra,
        "-in",
        inp,
        "-out",
        out,
    )


def pe(source: str, out: str) -> None:
    run(
        "x86_64-w64-mingw32-gcc",
        "-Os",
        "-nostdlib",
        "-e",
        "start",
        "-s",
        "-Wl,--no-insert-timestamp",
        "-o",
        out,
        source,
    )


def macho(source: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "macho.o"
        run(
            "clang",
            "-target",
            "x86_64-apple-macos11",
            "-ffreestanding",
            "-nostdlib",
            "-O1",
            "-c",
            source,
            "-o",
            str(obj),
        )
        for flag, out in (
            ("-adhoc_codesign", "macho-adhoc"),
            ("-no_adhoc_codesign", "macho-unsigned"),
        ):
            # the ad-hoc identifier is the output name: link both under one name
            target = Path(tmp) / "engine"
            run(
                LD64,
                "-arch",
                "x86_64",
                "-platform_version",
                "macos",
                "11.0",
                "11.0",
                "-e",
                "_start",
                flag,
                "-o",
                str(target),
                str(obj),
            )
            shutil.copyfile(target, HERE / out)


def main() -> None:
    for tool in ("openssl", "osslsigncode", "x86_64-w64-mingw32-gcc", "clang", LD64):
        if shutil.which(tool) is None:
            raise SystemExit(f"missing tool: {tool}")
    ca("ca", "/CN=reprover test code-signing CA")
    ca("other-ca", "/CN=unrelated test CA")
    leaf("leaf", "/CN=reprover test release signer", "ca", "codeSigning")
    leaf("noeku", "/CN=reprover test signer without EKU", "ca", None)
    leaf("tsa", "/CN=reprover test TSA", "ca", "critical,timeStamping")
    leaf("other-leaf", "/CN=unrelated signer", "other-ca", "codeSigning")
    (HERE / "tsa-chain.pem").write_bytes(
        (HERE / "tsa.pem").read_bytes() + (HERE / "ca.pem").read_bytes()
    )
    pe("hello.c", "unsigned.exe")
    pe("other.c", "other-unsigned.exe")
    sign("unsigned.exe", "signed.exe", "leaf")
    sign(
        "unsigned.exe",
        "timestamped.exe",
        "leaf",
        "-TSA-certs",
        "tsa-chain.pem",
        "-TSA-key",
        "tsa.key",
        "-TSA-time",
        str(int(time.time())),
    )
    sign("signed.exe", "dual.exe", "other-leaf", "-nest", digest="sha1")
    sign("unsigned.exe", "foreign.exe", "other-leaf")
    sign("unsigned.exe", "noeku.exe", "noeku")
    sign("other-unsigned.exe", "other-signed.exe", "leaf")
    macho("macho.c")
    for leftover in HERE.glob("*.srl"):
        leftover.unlink()


if __name__ == "__main__":
    main()
