"""Signed JARs for the tests: real jarsigner and keytool, the repository's test keys.

A keystore is made at test time from `tests/fixtures/signature` (openssl pkcs12), so the JAR
signers chain to the same test CA as the Authenticode fixtures. The adversarial tests also
write `.SF` files and PKCS#7 blocks themselves (`signature_file`, `block`), the way jarsigner
does, to build signatures a real tool would refuse to make.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from archive_support import FIXTURES, write_zip

KEYS = FIXTURES / "signature"
FAST_JVM = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"]  # short runs: 2-3x faster start
PASSWORD = "changeit"  # noqa: S105 - a throwaway test keystore
MANIFEST = b"Manifest-Version: 1.0\r\nCreated-By: reprover tests\r\n\r\n"
CLASSES = {
    "app/Main.class": b"\xca\xfe\xba\xbe\x00\x00\x00\x3d" + b"main" * 50,
    "app/Util.class": b"\xca\xfe\xba\xbe\x00\x00\x00\x3d" + b"util" * 30,
    "app/config.properties": b"mode=release\n",
}


def jdk() -> bool:
    """Whether the JDK's tools and openssl are installed (CI installs them)."""
    return all(shutil.which(t) for t in ("jarsigner", "keytool", "jar", "javac", "openssl"))


def keystore(folder: Path, signer: str = "leaf", ca: str = "ca") -> Path:
    """A PKCS#12 keystore holding `signer`'s key and chain (alias `signer`)."""
    out = folder / f"{signer}.p12"
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-inkey", str(KEYS / f"{signer}.key"),
         "-in", str(KEYS / f"{signer}.pem"), "-certfile", str(KEYS / f"{ca}.pem"),
         "-name", "signer", "-passout", f"pass:{PASSWORD}", "-out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def ec_keystore(folder: Path) -> Path:
    """A PKCS#12 keystore with a fresh EC P-256 key and self-signed certificate (keytool)."""
    out = folder / "ec.p12"
    subprocess.run(
        ["keytool", *FAST_JVM, "-genkeypair", "-keyalg", "EC", "-groupname", "secp256r1", "-alias",
         "signer", "-dname", "CN=reprover EC test signer", "-validity", "3650", "-keystore",
         str(out), "-storetype", "PKCS12", "-storepass", PASSWORD, "-keypass", PASSWORD],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def jar_tool(folder: Path, out: Path) -> Path:
    """A JAR made by the JDK's own tools: javac compiles a class, `jar` packs it with a
    service file and a main class (fixed `--date`), META-INF/ first as `jar` writes it."""
    src = folder / "classes"
    (src / "META-INF" / "services").mkdir(parents=True)
    (src / "META-INF" / "services" / "app.Plugin").write_text("app.Main\n")
    (folder / "Main.java").write_text(
        "package app; public class Main { public static void main(String[] a) "
        '{ System.out.println("hello"); } }'
    )
    subprocess.run(["javac", *FAST_JVM, "-d", str(src), str(folder / "Main.java")], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["jar", *FAST_JVM, "--create", "--file", str(out), "--main-class", "app.Main",
                    "--date=2024-01-02T03:04:06Z", "-C", str(src), "."],
                   check=True, capture_output=True)  # fmt: skip
    return out


def write_jar(
    path: Path, files: dict[str, bytes] | None = None, manifest: bytes | None = MANIFEST
) -> Path:
    """An unsigned JAR (stdlib zipfile): the manifest first, then `files` in order."""
    entries = [] if manifest is None else [("META-INF/MANIFEST.MF", manifest)]
    entries += list((CLASSES if files is None else files).items())
    return write_zip(path, entries)


def jarsign(
    unsigned: Path,
    signed: Path,
    store: Path,
    *,
    sigfile: str | None = None,
    digestalg: str = "SHA-256",
    tsa: str | None = None,
) -> Path:
    """`unsigned` signed by jarsigner into `signed` (timestamped by `tsa`, a URL, if given)."""
    more = ["-sigfile", sigfile] if sigfile else []
    more += ["-tsa", tsa] if tsa else []
    subprocess.run(
        ["jarsigner", *FAST_JVM, "-keystore", str(store), "-storetype", "PKCS12",
         "-storepass", PASSWORD, "-digestalg", digestalg, *more, "-signedjar", str(signed),
         str(unsigned), "signer"],
        check=True, capture_output=True,
    )  # fmt: skip
    return signed


TSA_CONFIG = """[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = {serial}
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
crypto_device = builtin
"""


@contextmanager
def local_tsa(folder: Path) -> Iterator[str]:
    """An RFC 3161 timestamp authority on 127.0.0.1 (`openssl ts -reply`, the test TSA key).

    Yields its URL for `jarsigner -tsa`; requests are answered one at a time.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "serial").write_text("01\n")
    (folder / "ts.cnf").write_text(TSA_CONFIG.format(serial=folder / "serial"))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                (folder / "q.tsq").write_bytes(query)
                subprocess.run(
                    ["openssl", "ts", "-reply", "-config", str(folder / "ts.cnf"),
                     "-queryfile", str(folder / "q.tsq"), "-signer", str(KEYS / "tsa.pem"),
                     "-inkey", str(KEYS / "tsa.key"), "-chain", str(KEYS / "ca.pem"),
                     "-out", str(folder / "r.tsr")],
                    check=True, capture_output=True,
                )  # fmt: skip
                body = (folder / "r.tsr").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def jarsigner_verifies(jar: Path) -> bool:
    """The oracle: `jarsigner -verify` says the JAR is verified."""
    done = subprocess.run(
        ["jarsigner", *FAST_JVM, "-verify", str(jar)], check=False, capture_output=True, text=True
    )
    return done.returncode == 0 and "jar verified." in done.stdout


def digest(data: bytes, algorithm: str = "sha256") -> str:
    """Base64 digest, as manifests write it."""
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def sections(manifest: bytes) -> dict[str, bytes]:
    """Raw per-entry sections of a CRLF manifest written as jarsigner writes it."""
    parts = manifest.split(b"\r\n\r\n")
    out = {}
    for part in parts[1:]:
        if part:
            name = part.split(b"\r\n")[0].removeprefix(b"Name: ").decode()
            out[name] = part + b"\r\n\r\n"
    return out


def signature_file(manifest: bytes, *, whole: bytes | None = None) -> bytes:
    """A `.SF` over `manifest` as jarsigner writes one (`whole`: digest these bytes instead)."""
    main = manifest.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    lines = [
        "Signature-Version: 1.0",
        "Created-By: reprover tests",
        f"SHA-256-Digest-Manifest: {digest(manifest if whole is None else whole)}",
        f"SHA-256-Digest-Manifest-Main-Attributes: {digest(main)}",
        "",
    ]
    for name, raw in sections(manifest).items():
        lines += [f"Name: {name}", f"SHA-256-Digest: {digest(raw)}", ""]
    return "".join(wrap(line) for line in lines).encode()


def wrap(line: str) -> str:
    """One header line wrapped at 72 bytes with CRLF (ASCII lines)."""
    out, rest = [line[:72]], line[72:]
    while rest:
        out.append(" " + rest[:71])
        rest = rest[71:]
    return "".join(part + "\r\n" for part in out)


def block(content: bytes, signer: str = "leaf", ca: str = "ca") -> bytes:
    """A detached PKCS#7 SignedData over `content` by a fixture key (as a `.RSA` file)."""
    cert = x509.load_pem_x509_certificate((KEYS / f"{signer}.pem").read_bytes())
    chain = x509.load_pem_x509_certificate((KEYS / f"{ca}.pem").read_bytes())
    key = serialization.load_pem_private_key((KEYS / f"{signer}.key").read_bytes(), None)
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary,
               pkcs7.PKCS7Options.NoCapabilities]  # fmt: skip
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    builder = builder.add_signer(cert, key, hashes.SHA256()).add_certificate(chain)  # type: ignore[arg-type]
    return builder.sign(serialization.Encoding.DER, options)


def manifest_for(files: dict[str, bytes], main: bytes = MANIFEST) -> bytes:
    """A manifest with one SHA-256 section per file, as jarsigner writes it."""
    out = main
    for name, data in files.items():
        out += f"Name: {name}\r\nSHA-256-Digest: {digest(data)}\r\n\r\n".encode()
    return out
