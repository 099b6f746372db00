"""A witness: cosign a log's checkpoint only after proving it extends what it saw before.

Owns: checking the log's current checkpoint and the witness's older one against the log's
key, proving consistency between them from the log's tiles, and adding a cosignature/v1 line
to the checkpoint in place (under the log's lock, only if the checkpoint did not change).
Does not own: the note and cosignature formats (see `reprover.tlog.note`).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprover.errors import VerificationError
from reprover.tlog import checkpoint, log, merkle, note
from reprover.tlog.checkpoint import Checkpoint
from reprover.tlog.store import Store


def cosign(
    store: Store,
    log_key: note.Verifier,
    old: bytes,
    *,
    name: str,
    key: Ed25519PrivateKey,
    timestamp: int,
) -> Checkpoint:
    """Cosign the log's checkpoint if it is consistent with the `old` one the witness kept.

    Returns:
        The checkpoint as now stored, with the cosignature line added.

    Raises:
        InputError: a checkpoint or the witness name is malformed.
        VerificationError: a checkpoint is not signed by the log, the log shrank, or it is
            not an extension of `old` (a fork or a rewritten history): nothing is signed.
    """
    note.check_name(name, "witness name")
    previous = checkpoint.open_checkpoint(old, log_key)
    with store.locked(exclusive=True):
        signed = store.read(log.CHECKPOINT, limit=note.MAX_NOTE)
        current = checkpoint.open_checkpoint(signed, log_key)
        if previous.size > current.size:
            raise VerificationError(
                f"refusing to cosign: the log shrank from {previous.size} to {current.size}"
            )
        proof = merkle.consistency_proof(
            log.TreeReader(store, current.size), previous.size, current.size
        )
        try:
            merkle.verify_consistency(
                previous.size, current.size, previous.root, current.root, proof
            )
        except VerificationError as exc:
            raise VerificationError(
                f"refusing to cosign: {exc.message} (the log shows a fork of the tree of size "
                f"{previous.size} this witness saw)"
            ) from exc
        mine = note.verifier_for(name, key, note.COSIGNATURE_V1)
        kept = b"".join(
            note.signature_line(s.name, s.key_id, s.signature)
            for s in note.parse(signed).signatures
            if (s.name, s.key_id) != (mine.name, mine.key_id)
        )
        line = note.cosign(current.text, name, key, timestamp)
        updated = current.text + b"\n" + kept + line
        store.write(log.CHECKPOINT, updated)
        store.sync()
    return checkpoint.open_checkpoint(updated, log_key, [mine])
