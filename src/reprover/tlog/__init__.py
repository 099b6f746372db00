"""The evidence log: an append-only Merkle log outsiders can audit (C2SP tlog-tiles).

Owns: RFC 6962 hashing and proofs (`merkle`), the tile layout (`tiles`), signed notes, verifier
keys and cosignatures (`note`), checkpoints (`checkpoint`), safe file access and the append
lock (`store`), appending and reading the log (`log`), the full audit (`audit`), witness
cosigning (`witness`) and offline inclusion proofs (`proof`).
Does not own: what is logged (attestations, see `reprover.attest`), loading PEM keys (see
`reprover.keys`), or printing (see `reprover.cli.log`).
"""

from __future__ import annotations
