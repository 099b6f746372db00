"""Real sigstore bundles and the trusted roots they verify against (see tests/fixtures/sigstore)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sigstore

from reprover.attest.sigstore_verify import Identity

FIXTURES = Path(__file__).parent / "fixtures" / "sigstore"
STORE = Path(sigstore.__file__).parent / "_store"
PRODUCTION_ROOT = STORE / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
STAGING_ROOT = STORE / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev" / "trusted_root.json"
# The identity that signed the conformance suite's bundles (production and staging).
BEACON = Identity(
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    "https://token.actions.githubusercontent.com",
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _flip(b64: str, at: int | None = None) -> str:
    """Flip one bit of base64 data (at `at`, default the middle); still valid base64."""
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2 if at is None else at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def _signature(bundle: dict[str, Any]) -> None:
    sig = bundle["dsseEnvelope"]["signatures"][0]
    sig["sig"] = _flip(sig["sig"])


def _certificate(bundle: dict[str, Any]) -> None:
    cert = bundle["verificationMaterial"]["certificate"]
    cert["rawBytes"] = _flip(cert["rawBytes"], -8)  # inside the CA's signature: still parses


def _set(bundle: dict[str, Any]) -> None:
    promise = _entry(bundle)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip(promise["signedEntryTimestamp"])


def _proof_hash(bundle: dict[str, Any]) -> None:
    hashes = _entry(bundle)["inclusionProof"]["hashes"]
    hashes[3] = _flip(hashes[3])


def _root_hash(bundle: dict[str, Any]) -> None:
    proof = _entry(bundle)["inclusionProof"]
    proof["rootHash"] = _flip(proof["rootHash"])


def _checkpoint(bundle: dict[str, Any]) -> None:
    """Another root hash in the signed note's body (the log's signature no longer covers it)."""
    checkpoint = _entry(bundle)["inclusionProof"]["checkpoint"]
    origin, size, root, *rest = checkpoint["envelope"].split("\n")
    checkpoint["envelope"] = "\n".join([origin, size, _flip(root), *rest])


def _log_index(bundle: dict[str, Any]) -> None:
    _entry(bundle)["logIndex"] = str(int(_entry(bundle)["logIndex"]) + 1)


def _integrated_time(bundle: dict[str, Any]) -> None:
    _entry(bundle)["integratedTime"] = str(int(_entry(bundle)["integratedTime"]) + 1)


def _body(bundle: dict[str, Any]) -> None:
    """The logged body re-encoded with one more space: same meaning, another leaf hash."""
    body = base64.b64decode(_entry(bundle)["canonicalizedBody"])
    _entry(bundle)["canonicalizedBody"] = base64.b64encode(body.replace(b":", b": ", 1)).decode()


def _payload(bundle: dict[str, Any]) -> None:
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"]).replace(b"a.txt", b"b.txt")
    envelope["payload"] = base64.b64encode(payload).decode()


# name -> (how to tamper, what reprover must say, is it caught only by the log checks)
TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str, bool]] = {
    "signature": (_signature, "DSSE signature does not verify", False),
    "certificate": (_certificate, "certificate chain", False),
    "payload": (_payload, "DSSE signature does not verify", False),
    "signed-entry-timestamp": (_set, "signed entry timestamp (SET) does not verify", True),
    "log-index": (_log_index, "signed entry timestamp (SET) does not verify", True),
    "integrated-time": (_integrated_time, "signed entry timestamp (SET) does not verify", True),
    "inclusion-proof-hash": (_proof_hash, "inclusion proof does not lead to its root hash", True),
    "inclusion-proof-root": (_root_hash, "inclusion proof does not lead to its root hash", True),
    "log-body": (_body, "inclusion proof does not lead to its root hash", True),
    "checkpoint": (_checkpoint, "checkpoint does not verify", True),
}


def tampered(name: str) -> bytes:
    """The production DSSE bundle with one tampering applied."""
    bundle = json.loads(fixture("production-dsse.sigstore.json"))
    changed = copy.deepcopy(bundle)
    TAMPERINGS[name][0](changed)
    assert changed != bundle
    return json.dumps(changed).encode()
