"""Signed verification results that anyone can check offline.

Owns: the in-toto Statement v1 that a `reprover verify` run signs (a SLSA Verification Summary
v1 predicate carrying reprover's rebuild details as a URI-named extension field,
`statement`), key-based DSSE envelopes (`dsse`), sigstore keyless bundles (`sigstore_sign`),
and checking attestations against trusted keys or identities, k of n (`check`).
Does not own: running the verification (see `reprover.verify`), loading keys from disk (see
`reprover.keys`), hashing release files (see `reprover.digest`), or printing (see `reprover.cli`).
"""

from __future__ import annotations

from reprover.attest.statement import (
    PAYLOAD_TYPE,
    REBUILD_PREDICATE,
    STATEMENT_TYPE,
    VSA_PREDICATE,
)

__all__ = ["PAYLOAD_TYPE", "REBUILD_PREDICATE", "STATEMENT_TYPE", "VSA_PREDICATE"]
