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
- a Microsoft-style file (`ms-style.exe`): RFC 3161 timestamped, dual-signed (a nested sha256
  signature by the unrelated CA's leaf, itself timestamped), and an `[1] IMPLICIT` attribute
  certificate shaped like Microsoft's "nShield TSS ESN" one (signed by a key whose certificate is
  not carried, as Microsoft's is) added to the outer token's certificate set;
- `legacy-stamped.exe`: signed.exe with a legacy PKCS#9 countersignature by the test TSA (as
  `signtool /t` writes), built with cryptography since no local tool makes one;
- an ad-hoc signed and an unsigned Mach-O from macho.c (clang -target x86_64-apple-macos11,
  ld64.lld `-adhoc_codesign` / `-no_adhoc_codesign`), and an arm64 linker-signed one;
- Mach-O files signed the way Apple's tools sign (`tests/macho_sign.py`, since no codesign runs
  here): `codesign -s -` ad-hoc (`macho-codesign`: requirements blob, empty CMS wrapper), with
  entitlements (`macho-entitled`, from `entitlements.plist`), Developer ID style
  (`macho-devid`: hardened runtime, a detached CMS SignedData over the CodeDirectory made by
  `openssl cms` with the test leaf; `macho-devid-stamped` adds an RFC 3161 token from
  `openssl ts -reply` with the test TSA), and universal files of the x86_64 and arm64 slices
  (`macho-universal-linker`: as linked; `macho-universal-codesign`: each slice `codesign -s -`).

Run: .venv/bin/python scripts/make_signature_fixtures.py [GROUP...]  (no group: all; new keys)
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reprover.compare.signatures import der
from reprover.compare.signatures.pe_certtable import align8, pe_checksum, read_layout

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


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element (definite length)."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk, rest = [arc & 0x7F], arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def der_int(value: int) -> bytes:
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def attribute_certificate() -> bytes:
    """An `[1] IMPLICIT` attribute certificate shaped like the one in Microsoft's tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name.from_rfc4514_string("CN=reprover test TSA,OU=HSM ESN:0000-TEST").public_bytes()
    issuer = x509.Name.from_rfc4514_string("CN=reprover test HSM issuer").public_bytes()
    sha256_rsa = tlv(0x30, der_oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    digest_info = tlv(
        0xA2,
        b"\x0a\x01\x01" + tlv(0x30, der_oid("1.3.14.3.2.26")) + tlv(0x03, b"\0" + b"\x11" * 20),
    )
    holder = tlv(0x30, tlv(0xA1, tlv(0xA4, name)) + digest_info)
    validity = tlv(0x30, tlv(0x18, b"20260101000000Z") + tlv(0x18, b"20360101000000Z"))
    attrs = tlv(
        0x30,
        tlv(
            0x30, der_oid("1.3.6.1.4.1.601.10.4.1") + tlv(0x31, tlv(0x30, der_int(7) + der_int(0)))
        ),
    )
    info = tlv(
        0x30,
        der_int(1) + holder + tlv(0xA0, tlv(0x30, tlv(0xA4, issuer))) + sha256_rsa + der_int(0x5EED)
        + validity + attrs,
    )  # fmt: skip
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    return tlv(0xA1, info + sha256_rsa + tlv(0x03, b"\0" + signature))


def _replace(blob: bytes, path: list[der.Tlv], new: bytes) -> bytes:
    """Replace `path[-1]` by `new`, re-encoding the lengths of its ancestors."""
    inner, start, end = new, path[-1].start, path[-1].end
    for parent in reversed(path[:-1]):
        content = blob[parent.body : start] + inner + blob[end : parent.end]
        inner, start, end = tlv(blob[parent.start], content), parent.start, parent.end
    return blob[:start] + inner + blob[end:]


def _token_certificates(blob: bytes) -> list[der.Tlv]:
    """The path from the outer PKCS#7 to its first RFC 3161 token's certificate set."""
    stack = [[der.parse_one(blob, "pkcs7")]]
    while stack:
        path = stack.pop()
        node = path[-1]
        kids = node.children("walk") if node.constructed else []
        if (
            node.is_(der.UNIVERSAL, True, der.SEQUENCE)
            and len(kids) == 2
            and kids[0].is_(der.UNIVERSAL, False, der.OID)
            and der.oid(kids[0], "walk") == "1.3.6.1.4.1.311.3.3.1"
        ):
            (token,) = kids[1].children("walk")
            signed_data = der.explicit(token.children("walk")[1], 0, "walk")
            certs = signed_data.children("walk")[3]
            return [*path, kids[1], token, token.children("walk")[1], signed_data, certs]
        stack.extend([*path, k] for k in reversed(kids))
    raise SystemExit("no timestamp token found")


def microsoft_style(out: str) -> None:
    """Timestamped, dual-signed, with an attribute certificate in the outer token."""
    with tempfile.TemporaryDirectory() as tmp:
        stamp = ("-TSA-certs", "tsa-chain.pem", "-TSA-key", "tsa.key", "-TSA-time")
        first, second = str(Path(tmp) / "a.exe"), str(Path(tmp) / "b.exe")
        sign("unsigned.exe", first, "leaf", *stamp, str(int(time.time())))
        sign(first, second, "other-leaf", "-nest", *stamp, str(int(time.time())))
        signed = Path(second).read_bytes()
    layout = read_layout(signed, "signed")
    length = struct.unpack_from("<I", signed, layout.table_offset)[0]
    blob = der.read_tlv(signed, layout.table_offset + 8, layout.table_offset + length, "p").raw
    path = _token_certificates(blob)
    certs = path[-1]
    forged = _replace(
        blob, path, tlv(certs.buf[certs.start], certs.content + attribute_certificate())
    )
    unsigned = (HERE / "unsigned.exe").read_bytes()
    padded = align8(8 + len(forged))
    entry = (
        struct.pack("<IHH", padded, 0x0200, 0x0002) + forged + b"\0" * (padded - 8 - len(forged))
    )
    base = align8(len(unsigned))
    data = bytearray(unsigned + b"\0" * (base - len(unsigned)) + entry)
    struct.pack_into("<II", data, layout.security_entry_offset, base, len(entry))
    struct.pack_into("<I", data, layout.checksum_offset, pe_checksum(data, layout.checksum_offset))
    (HERE / out).write_bytes(bytes(data))


def arm64_macho(source: str, out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        obj, target = Path(tmp) / "macho.o", Path(tmp) / "engine"
        run("clang", "-target", "arm64-apple-macos11", "-ffreestanding", "-nostdlib", "-O1",
            "-c", source, "-o", str(obj))  # fmt: skip
        run(LD64, "-arch", "arm64", "-platform_version", "macos", "11.0", "11.0", "-e",
            "_start", "-adhoc_codesign", "-o", str(target), str(obj))  # fmt: skip
        shutil.copyfile(target, HERE / out)


def cms_signer(code_directory: bytes) -> bytes:
    """A detached CMS SignedData over the CodeDirectory, as codesign writes for Developer ID."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cd").write_bytes(code_directory)
        run("openssl", "cms", "-sign", "-binary", "-nosmimecap", "-md", "sha256",
            "-in", f"{tmp}/cd", "-signer", "leaf.pem", "-inkey", "leaf.key",
            "-certfile", "ca.pem", "-outform", "DER", "-out", f"{tmp}/sig")  # fmt: skip
        return (Path(tmp) / "sig").read_bytes()


TSA_CONFIG = """[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = ./tsaserial
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
crypto_device = builtin
other_policies = 1.2.3.4.2
"""


def rfc3161_token(data: bytes) -> bytes:
    """An RFC 3161 token over `data` from the test TSA (`openssl ts -reply`)."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "data").write_bytes(data)
        (t / "ts.cnf").write_text(TSA_CONFIG)
        (t / "tsaserial").write_text("01\n")
        run("openssl", "ts", "-query", "-data", "data", "-sha256", "-cert", "-no_nonce",
            "-out", "q.tsq", cwd=t)  # fmt: skip
        run("openssl", "ts", "-reply", "-config", "ts.cnf", "-queryfile", "q.tsq",
            "-signer", str(HERE / "tsa.pem"), "-inkey", str(HERE / "tsa.key"),
            "-chain", str(HERE / "ca.pem"), "-token_out", "-out", "tok.der", cwd=t)  # fmt: skip
        return (t / "tok.der").read_bytes()


def stamped_cms_signer(code_directory: bytes) -> bytes:
    """`cms_signer` plus an RFC 3161 timestamp token over its signature, as codesign adds."""
    blob = cms_signer(code_directory)
    root = der.parse_one(blob, "cms")
    content = root.children("cms")[1]
    signed_data = der.explicit(content, 0, "cms")
    infos = signed_data.children("cms")[-1]
    (info,) = infos.children("cms")
    signature = der.octets(info.children("cms")[-1], "cms")
    attr = tlv(0x30, der_oid("1.2.840.113549.1.9.16.2.14") + tlv(0x31, rfc3161_token(signature)))
    new_info = tlv(0x30, info.content + tlv(0xA1, attr))
    return _replace(blob, [root, content, signed_data, infos, info], new_info)


def apple_signed() -> None:
    """Mach-O files signed as codesign does (see tests/macho_sign.py)."""
    sys.path.insert(0, str(HERE.parent.parent))
    import macho_sign

    arm64_macho("macho.c", "macho-arm64")
    x86, arm = (HERE / "macho-adhoc").read_bytes(), (HERE / "macho-arm64").read_bytes()
    plist = (HERE / "entitlements.plist").read_bytes()
    entitled = {"com.apple.security.cs.allow-jit": True}
    outputs = {
        "macho-codesign": macho_sign.sign(x86, identifier="engine"),
        "macho-entitled": macho_sign.sign(
            x86,
            identifier="engine",
            entitlements=plist,
            entitlements_der=macho_sign.der_entitlements(entitled),
        ),
        "macho-devid": macho_sign.sign(
            x86, identifier="engine", flags=macho_sign.RUNTIME, cms_sign=cms_signer
        ),
        "macho-universal-linker": macho_sign.fat(
            [(macho_sign.CPU_X86_64, x86), (macho_sign.CPU_ARM64, arm)]
        ),
        "macho-universal-codesign": macho_sign.fat(
            [
                (macho_sign.CPU_X86_64, macho_sign.sign(x86, identifier="engine")),
                (macho_sign.CPU_ARM64, macho_sign.sign(arm, identifier="engine", page_log=14)),
            ]
        ),
    }
    for name, data in outputs.items():
        (HERE / name).write_bytes(data)
    devid_stamped()


def devid_stamped() -> None:
    """`macho-devid-stamped`: Developer ID style, with an RFC 3161 token in the CMS."""
    sys.path.insert(0, str(HERE.parent.parent))
    import macho_sign

    x86 = (HERE / "macho-adhoc").read_bytes()
    (HERE / "macho-devid-stamped").write_bytes(
        macho_sign.sign(
            x86, identifier="engine", flags=macho_sign.RUNTIME, cms_sign=stamped_cms_signer
        )
    )


def _utc_time() -> bytes:
    return tlv(0x17, time.strftime("%y%m%d%H%M%SZ", time.gmtime()).encode())


def legacy_countersigned(out: str) -> None:
    """signed.exe with a legacy PKCS#9 countersignature (1.2.840.113549.1.9.6) by the test TSA,
    as signtool /t writes: a SignerInfo over the signer's signature with signingTime and
    messageDigest, and the TSA's certificate added to the SignedData."""
    from cryptography.hazmat.primitives import serialization

    signed = (HERE / "signed.exe").read_bytes()
    layout = read_layout(signed, "signed")
    length = struct.unpack_from("<I", signed, layout.table_offset)[0]
    blob = der.read_tlv(signed, layout.table_offset + 8, layout.table_offset + length, "p").raw
    root = der.parse_one(blob, "p")
    content = root.children("p")[1]
    signed_data = der.explicit(content, 0, "p")
    fields = signed_data.children("p")
    certs, infos = fields[3], fields[-1]
    (info,) = infos.children("p")
    signature = der.octets(info.children("p")[5], "p")
    tsa = x509.load_pem_x509_certificate((HERE / "tsa.pem").read_bytes())
    key = serialization.load_pem_private_key((HERE / "tsa.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(signature)
    attrs = tlv(0x30, der_oid("1.2.840.113549.1.9.5") + tlv(0x31, _utc_time())) + tlv(
        0x30, der_oid("1.2.840.113549.1.9.4") + tlv(0x31, tlv(0x04, digest.finalize()))
    )
    stamp = key.sign(tlv(0x31, attrs), padding.PKCS1v15(), hashes.SHA256())
    issuer_serial = tlv(0x30, tsa.issuer.public_bytes() + der_int(tsa.serial_number))
    counter = tlv(
        0x30,
        der_int(1) + issuer_serial + tlv(0x30, der_oid("2.16.840.1.101.3.4.2.1") + b"\x05\x00")
        + tlv(0xA0, attrs) + tlv(0x30, der_oid("1.2.840.113549.1.1.1") + b"\x05\x00")
        + tlv(0x04, stamp),
    )  # fmt: skip
    unsigned = tlv(0xA1, tlv(0x30, der_oid("1.2.840.113549.1.9.6") + tlv(0x31, counter)))
    new_info = tlv(0x30, info.content + unsigned)
    tsa_der = tsa.public_bytes(serialization.Encoding.DER)
    body = b"".join(
        tlv(certs.buf[certs.start], certs.content + tsa_der) if f is certs
        else tlv(infos.buf[infos.start], new_info) if f is infos
        else f.raw
        for f in fields
    )  # fmt: skip
    forged = tlv(0x30, root.children("p")[0].raw + tlv(0xA0, tlv(0x30, body)))
    unsigned_pe = (HERE / "unsigned.exe").read_bytes()
    padded = align8(8 + len(forged))
    entry = (
        struct.pack("<IHH", padded, 0x0200, 0x0002) + forged + b"\0" * (padded - 8 - len(forged))
    )
    base = align8(len(unsigned_pe))
    data = bytearray(unsigned_pe + b"\0" * (base - len(unsigned_pe)) + entry)
    struct.pack_into("<II", data, layout.security_entry_offset, base, len(entry))
    struct.pack_into("<I", data, layout.checksum_offset, pe_checksum(data, layout.checksum_offset))
    (HERE / out).write_bytes(bytes(data))


def main() -> None:
    """Make every fixture, or only the groups named on the command line (`ms-style`, `apple`,
    `legacy`)."""
    groups = {
        "ms-style": lambda: microsoft_style("ms-style.exe"),
        "apple": apple_signed,
        "legacy": lambda: legacy_countersigned("legacy-stamped.exe"),
        "devid-stamped": devid_stamped,
    }
    if sys.argv[1:]:
        for name in sys.argv[1:]:
            groups[name]()
        return
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
    microsoft_style("ms-style.exe")
    legacy_countersigned("legacy-stamped.exe")
    macho("macho.c")
    apple_signed()
    for leftover in HERE.glob("*.srl"):
        leftover.unlink()


if __name__ == "__main__":
    main()
