"""A local test double of sigstore's services: Fulcio, its CT log, Rekor, and a CI OIDC endpoint.

It lets the real `sigstore` signer (`Signer.sign_dsse`) and verifier (`Verifier.verify_dsse`)
run offline, over real HTTP on 127.0.0.1, with their own client code:

- Fulcio (`POST /api/v2/signingCert`): checks the CSR's proof of possession, reads the token's
  `iss` and `sub` (or `email`), and issues a leaf from a local CA with the codeSigning EKU, the
  identity as SAN, the issuer extensions (OIDs 1.3.6.1.4.1.57264.1.1 and .1.8) and an embedded
  RFC 6962 precertificate SCT signed by a local CT key;
- Fulcio's CA is a root and an intermediate, as sigstore's public-good instance has;
- Rekor v1 (`POST /api/v1/log/entries`, kind `dsse` 0.0.1): one RFC 6962 Merkle log that
  already holds `PRIOR_ENTRIES` other leaves, so inclusion proofs have real paths, with a signed
  checkpoint and a signed entry timestamp (SET); `log_delay` makes the log integrate entries
  that many seconds late (a certificate that expired before its entry was logged);
- a GitHub-Actions-style token endpoint (`GET /token?audience=...`) that `id` and
  `sigstore.oidc.detect_credential` call when `ACTIONS_ID_TOKEN_REQUEST_URL` points here.

`trusted_root()` and `trust_config()` give the JSON documents of the real shape that pin this
instance. It leans on sigstore's wire formats and a few private details; `pyproject.toml` pins
sigstore to the versions these tests pass on, and the tests never skip for another version.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRIOR_ENTRIES = 37  # other leaves already in the log: uneven subtrees, paths of several hashes
ISSUER_V1_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_JWT_SECRET = secrets.token_bytes(32)


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_octet_string(data: bytes) -> bytes:
    length = len(data)
    if length < 0x80:
        return b"\x04" + bytes([length]) + data
    size = (length.bit_length() + 7) // 8
    return b"\x04" + bytes([0x80 | size]) + length.to_bytes(size, "big") + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 0x80
    return b"\x0c" + bytes([len(raw)]) + raw


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (RFC 6962 section 2.1)."""
    return 1 << ((size - 1).bit_length() - 1)


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 audit path for leaf `index`, bottom-up."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


def make_token(identity: str, issuer: str, *, lifetime: int = 600) -> str:
    """An OIDC identity token for the double (audience `sigstore`; HS256, key unknown to all)."""
    now = int(time.time())
    claims = {"aud": "sigstore", "iss": issuer, "sub": identity, "iat": now, "exp": now + lifetime}
    if "@" in identity:
        claims["email"] = identity
        claims["email_verified"] = True
    return jwt.encode(claims, _JWT_SECRET, algorithm="HS256")


class SigstoreDouble:
    """One local sigstore instance: a CA, a CT log key, a Rekor key, and an HTTP server."""

    def __init__(self, name: str = "double") -> None:
        self.name = name
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_key = ec.generate_private_key(ec.SECP256R1())  # the intermediate that issues
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        self.root_cert = self._make_ca(f"{name} fulcio root", self.root_key, self.root_key, None)
        self.ca_cert = self._make_ca(
            f"{name} fulcio intermediate", self.ca_key, self.root_key, self.root_cert
        )
        self.token: str | None = None  # what the CI token endpoint hands out
        self.entries: list[dict[str, Any]] = []
        self.leaves = [_leaf_hash(secrets.token_bytes(40)) for _ in range(PRIOR_ENTRIES)]
        self.log_delay = 0  # seconds between signing and the log's integrated time
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> SigstoreDouble:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- trust documents -----------------------------------------------------------------

    def _tlog(self, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
        return {
            "baseUrl": self.url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(_spki(key)),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": _iso(self.start)},
            },
            "logId": {"keyId": _b64(hashlib.sha256(_spki(key)).digest())},
        }

    def trusted_root(self) -> dict[str, Any]:
        """The trusted_root.json that pins this instance."""
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [self._tlog(self.rekor_key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "reprover tests", "commonName": self.name},
                    "uri": self.url,
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))}
                            for cert in (self.ca_cert, self.root_cert)
                        ]
                    },
                    "validFor": {"start": _iso(self.start)},
                }
            ],
            "ctlogs": [self._tlog(self.ct_key)],
            "timestampAuthorities": [],
        }

    def trust_config(self) -> dict[str, Any]:
        """A sigstore ClientTrustConfig: the trusted root plus where Fulcio and Rekor are."""
        service = {
            "url": self.url,
            "majorApiVersion": 1,
            "validFor": {"start": _iso(self.start)},
            "operator": self.name,
        }
        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service],
                "oidcUrls": [],
                "rekorTlogUrls": [service],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write `trusted_root.json` and `trust_config.json` into `folder`; return both."""
        root, config = (
            folder / f"{self.name}-trusted_root.json",
            folder / f"{self.name}-config.json",
        )
        root.write_text(json.dumps(self.trusted_root()))
        config.write_text(json.dumps(self.trust_config()))
        return root, config

    # --- Fulcio --------------------------------------------------------------------------

    def _make_ca(
        self,
        common_name: str,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        issuer: x509.Certificate | None,
    ) -> x509.Certificate:
        """A CA certificate: self-signed root when `issuer` is None, else an intermediate."""
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reprover tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name if issuer is None else issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.start + dt.timedelta(days=30))
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=1 if issuer is None else 0),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        return builder.sign(signer, hashes.SHA256())

    def issue(
        self, csr: x509.CertificateSigningRequest, claims: dict[str, Any]
    ) -> x509.Certificate:
        """Issue a Fulcio-shaped leaf for the CSR's key and the token's identity, with an SCT."""
        issuer = str(claims["iss"])
        identity = str(claims.get("email") or claims["sub"])
        san: x509.GeneralName = (
            x509.RFC822Name(identity)
            if "@" in identity and "/" not in identity
            else x509.UniformResourceIdentifier(identity)
        )
        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(seconds=30))
            .not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(ISSUER_V1_OID, issuer.encode()), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(ISSUER_V2_OID, _der_utf8(issuer)), critical=False
            )
        )
        precert = builder.sign(self.ca_key, hashes.SHA256())
        sct = self._sct(precert.tbs_certificate_bytes)
        sct_list = struct.pack("!H", len(sct)) + sct
        extension = _der_octet_string(struct.pack("!H", len(sct_list)) + sct_list)
        leaf = builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST_OID, extension), critical=False
        ).sign(self.ca_key, hashes.SHA256())
        assert leaf.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return leaf

    def _sct(self, tbs: bytes) -> bytes:
        """An RFC 6962 v1 SCT over a precertificate entry, signed by the CT key."""
        log_id = hashlib.sha256(_spki(self.ct_key)).digest()
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key)).digest()
        timestamp = int(time.time() * 1000)
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + log_id
            + struct.pack("!QH", timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )

    def fulcio(self, body: dict[str, Any], authorization: str) -> dict[str, Any]:
        """Answer a signingCert request."""
        token = authorization.removeprefix("Bearer ").strip()
        claims = jwt.decode(token, options={"verify_signature": False})
        csr = x509.load_pem_x509_csr(base64.b64decode(body["certificateSigningRequest"]))
        if not csr.is_signature_valid:
            raise ValueError("CSR proof of possession failed")
        leaf = self.issue(csr, claims)
        chain = [
            c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (leaf, self.ca_cert, self.root_cert)
        ]
        return {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    # --- Rekor ---------------------------------------------------------------------------

    def _rekor_sign(self, data: bytes) -> bytes:
        return self.rekor_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def rekor(self, body: dict[str, Any]) -> dict[str, Any]:
        """Integrate a `dsse` 0.0.1 proposed entry; answer with its inclusion proof."""
        assert body["kind"] == "dsse", body["kind"]
        proposed = body["spec"]["proposedContent"]
        envelope_text: str = proposed["envelope"]
        envelope = json.loads(envelope_text)
        payload = base64.b64decode(envelope["payload"])
        verifier = proposed["verifiers"][0]
        entry_body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope_text.encode()).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": s["sig"], "verifier": verifier} for s in envelope["signatures"]
                ],
            },
        }
        canonical = json.dumps(entry_body, sort_keys=True, separators=(",", ":")).encode()
        encoded = _b64(canonical)
        log_id = hashlib.sha256(_spki(self.rekor_key)).digest()
        integrated = int(time.time()) + self.log_delay
        index = len(self.leaves)
        self.leaves.append(_leaf_hash(canonical))
        size = len(self.leaves)
        set_payload = rfc8785.dumps(
            {
                "body": encoded,
                "integratedTime": integrated,
                "logID": log_id.hex(),
                "logIndex": index,
            }
        )
        root = merkle_root(self.leaves)
        note = f"{self.name}.rekor - 1\n{size}\n{_b64(root)}\n"
        note_sig = _b64(log_id[:4] + self._rekor_sign(note.encode()))
        checkpoint = f"{note}\n\u2014 {self.name}.rekor {note_sig}\n"
        uuid = hashlib.sha256(canonical).hexdigest()
        entry = {
            "body": encoded,
            "integratedTime": integrated,
            "logID": log_id.hex(),
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "logIndex": index,
                    "rootHash": root.hex(),
                    "treeSize": size,
                    "hashes": [h.hex() for h in inclusion_path(index, self.leaves)],
                    "checkpoint": checkpoint,
                },
                "signedEntryTimestamp": _b64(self._rekor_sign(set_payload)),
            },
        }
        self.entries.append(entry)
        return {uuid: entry}


def _handler(double: SigstoreDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            return

        def _reply(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/token" and double.token is not None:
                audience = parse_qs(url.query).get("audience", [""])[0]
                if audience != "sigstore":
                    self._reply(400, {"message": f"unexpected audience {audience!r}"})
                    return
                self._reply(200, {"value": double.token})
                return
            self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            try:
                if self.path == "/api/v2/signingCert":
                    self._reply(200, double.fulcio(body, self.headers.get("Authorization", "")))
                elif self.path == "/api/v1/log/entries":
                    self._reply(201, double.rekor(body))
                else:
                    self._reply(404, {"code": 404, "message": "not found"})
            except (ValueError, KeyError, AssertionError) as exc:
                self._reply(400, {"code": 400, "message": str(exc)})

    return Handler
