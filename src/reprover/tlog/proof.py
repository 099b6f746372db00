"""Offline inclusion proofs: make them from a log, write and read them, check them.

Owns: the proof file (JSON, `"schema": "reprover/tlog-proof/v1"`: entry index, inclusion
proof hashes in base64, the signed checkpoint verbatim) and the C2SP `tlog-proof@v1` text
form of the same proof, and checking either offline against a file's bytes, the log's key
and, when asked, k trusted witnesses' cosignatures.
Does not own: how the log stores its tree (see `reprover.tlog.log`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reprover.errors import InputError, VerificationError
from reprover.tlog import checkpoint, log, merkle, note, tiles
from reprover.tlog.checkpoint import Checkpoint
from reprover.tlog.store import Store

SCHEMA = "reprover/tlog-proof/v1"
C2SP_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF = 1 << 20


@dataclass(frozen=True)
class InclusionProof:
    """Entry `index` is in the tree the signed `checkpoint` names, by `hashes`."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes

    def to_json(self) -> bytes:
        """The proof file, JSON with sorted keys."""
        data = {
            "schema": SCHEMA,
            "index": self.index,
            "inclusion": [base64.b64encode(h).decode() for h in self.hashes],
            "checkpoint": self.checkpoint.decode(),
        }
        return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode()

    def to_c2sp(self) -> bytes:
        """The same proof in the C2SP tlog-proof@v1 text format."""
        lines = [C2SP_HEADER, f"index {self.index}"]
        lines += [base64.b64encode(h).decode() for h in self.hashes]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint


def prove(store: Store, entry: bytes, log_key: note.Verifier | None = None) -> InclusionProof:
    """The inclusion proof of the first entry equal to `entry` in the log's current tree.

    The proof is checked against the checkpoint's root before it is returned, so a damaged
    tile fails here rather than in a reader's hands.

    Raises:
        InputError: the checkpoint is malformed.
        VerificationError: the entry is not in the log, a tile is damaged, or (with
            `log_key`) the checkpoint is not validly signed.
    """
    with store.locked(exclusive=False):
        signed = store.read(log.CHECKPOINT, limit=note.MAX_NOTE)
        if log_key is None:
            _origin, size, root = checkpoint.parse_body(note.parse(signed).text)
        else:
            opened = checkpoint.open_checkpoint(signed, log_key)
            size, root = opened.size, opened.root
        index = log.find(store, size, entry)
        if index is None:
            raise VerificationError(f"this content is not among the {size} entries of the log")
        reader = log.TreeReader(store, size)
        hashes = merkle.inclusion_proof(reader, index, size)
    merkle.verify_inclusion(merkle.leaf_hash(entry), index, size, hashes, root)
    return InclusionProof(index, tuple(hashes), signed)


def parse(data: bytes) -> InclusionProof:
    """Read a proof file, JSON or C2SP tlog-proof text.

    Raises:
        InputError: it is neither, or malformed.
    """
    if len(data) > MAX_PROOF:
        raise InputError("the proof file is too large")
    if data.startswith(C2SP_HEADER.encode() + b"\n"):
        return _parse_c2sp(data)
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"the proof is neither JSON nor {C2SP_HEADER}: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise InputError(f"the proof is not a {SCHEMA} document")
    index, inclusion, signed = obj.get("index"), obj.get("inclusion"), obj.get("checkpoint")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InputError("the proof's index is not a non-negative integer")
    if not isinstance(inclusion, list) or not isinstance(signed, str):
        raise InputError("the proof needs an inclusion list and a checkpoint string")
    return InclusionProof(index, tuple(_hash(h) for h in inclusion), signed.encode())


def _parse_c2sp(data: bytes) -> InclusionProof:
    head, sep, signed = data.partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")[1:]
    if not sep or not lines:
        raise InputError(f"malformed {C2SP_HEADER} proof")
    if lines[0].startswith("extra "):
        lines = lines[1:]
    if not lines or not lines[0].startswith("index "):
        raise InputError(f"{C2SP_HEADER} proof has no index line")
    number = lines[0].removeprefix("index ")
    if not number.isdigit() or (number != "0" and number.startswith("0")):
        raise InputError(f"{C2SP_HEADER} proof index {number!r} is malformed")
    return InclusionProof(int(number), tuple(_hash(h) for h in lines[1:]), signed)


def _hash(value: Any) -> bytes:
    if not isinstance(value, str):
        raise InputError("a proof hash is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InputError(f"proof hash {value!r} is not base64") from exc
    if len(raw) != merkle.HASH_SIZE:
        raise InputError(f"proof hash {value!r} is not 32 bytes")
    return raw


def check(
    proof: InclusionProof,
    content: bytes,
    log_key: note.Verifier,
    witnesses: Sequence[note.Verifier] = (),
    threshold: int = 0,
) -> Checkpoint:
    """Check offline that `content` is in the log, as a checkpoint signed by the log says.

    Args:
        proof: the parsed proof.
        content: the file's bytes (an oversized file is checked as its digest record).
        log_key: the log's verifier key.
        witnesses: trusted witness keys (cosignature/v1).
        threshold: how many distinct trusted witnesses must have cosigned.

    Raises:
        InputError: the checkpoint in the proof is malformed.
        VerificationError: the checkpoint is not signed by the log, too few witnesses cosigned
            it, or the inclusion proof does not lead from the content to its root.
    """
    opened = checkpoint.open_checkpoint(proof.checkpoint, log_key, witnesses)
    if len(opened.witnesses) < threshold:
        raise VerificationError(
            f"the checkpoint has {len(opened.witnesses)} valid cosignatures by trusted "
            f"witnesses, {threshold} required",
            hint="prove again ('reprover log prove') after the witnesses cosigned the log",
        )
    leaf = merkle.leaf_hash(tiles.entry_for(content))
    merkle.verify_inclusion(leaf, proof.index, opened.size, proof.hashes, opened.root)
    return opened
