"""C2SP tlog-checkpoint: the signed tree head (origin, size, base64 root hash).

Owns: formatting and strictly parsing the checkpoint body, and opening a signed checkpoint
against the log's key (with the witnesses' cosignatures counted when asked).
Does not own: the note format itself (see `reprover.tlog.note`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from reprover.errors import InputError, VerificationError
from reprover.tlog import note
from reprover.tlog.merkle import HASH_SIZE

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: its body fields, the raw signed note, and who cosigned it."""

    origin: str
    size: int
    root: bytes
    signed: bytes
    witnesses: tuple[str, ...] = ()

    @property
    def text(self) -> bytes:
        """The note text (the three body lines)."""
        return body(self.origin, self.size, self.root)


def body(origin: str, size: int, root: bytes) -> bytes:
    """The checkpoint note text: origin, size and base64 root hash, one per line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()


def parse_body(text: bytes) -> tuple[str, int, bytes]:
    """(origin, size, root) from a checkpoint note text; extension lines are refused.

    Raises:
        InputError: it is not exactly three well-formed lines.
    """
    lines = text.decode("utf-8", "replace").split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise InputError("the checkpoint body must be exactly origin, size and root hash lines")
    origin, size, root_b64 = lines[:3]
    note.check_name(origin, "checkpoint origin")
    if not _SIZE.fullmatch(size):
        raise InputError(f"checkpoint size {size!r} is not a decimal number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InputError("the checkpoint root hash is not base64") from exc
    if len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_b64:
        raise InputError("the checkpoint root hash is not a base64 SHA-256 hash")
    return origin, int(size), root


def peek_origin(signed: bytes) -> str:
    """The origin line of an unverified checkpoint (to name the key that must have signed it).

    Raises:
        InputError: the checkpoint is malformed.
    """
    return parse_body(note.parse(signed).text)[0]


def open_checkpoint(
    signed: bytes,
    log: note.Verifier,
    witnesses: Sequence[note.Verifier] = (),
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint: the log's signature, its origin, and witness cosignatures.

    Args:
        signed: the signed note bytes.
        log: the log's verifier key; the checkpoint must carry its valid signature.
        witnesses: trusted cosigners; the names of those whose cosignature verifies are
            returned in `Checkpoint.witnesses` (the caller applies its threshold). A public
            key listed twice counts once, and the log's own key never counts as a witness.
        origin: the origin the checkpoint must have (default: the log key's name).

    Raises:
        InputError: the checkpoint is malformed.
        VerificationError: not signed by the log, a trusted signature does not verify, or
            the origin is not the log's.
    """
    opened = note.open_note(signed, log)
    got_origin, size, root = parse_body(opened.text)
    wanted = origin if origin is not None else log.name
    if got_origin != wanted:
        raise VerificationError(
            f"the checkpoint is for log {got_origin!r}, not {wanted!r}",
        )
    independent = [w for w in note.distinct_keys(witnesses) if w.public != log.public]
    names = note.verify_cosignatures(opened, independent)
    return Checkpoint(got_origin, size, root, signed, tuple(names))
