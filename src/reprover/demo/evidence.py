"""The demo's evidence log: the lab attests each result, logs it, and a reviewer checks it.

Owns: the lab's attestation key and the transparency center's log key (in the workspace's
`keys/`), signing each verification result (pass and fail alike) as a DSSE attestation,
appending it to `evidence-log/` with its proof next to it, and the reviewer's offline checks:
each proof against the log's verifier key, then a full audit of the log consistent with the
checkpoint the reviewer kept after the first result.
Does not own: the verification (see `reprover.verify`) or the log (see `reprover.tlog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprover import keys, manifest
from reprover.attest import dsse, statement
from reprover.fsutil import write_atomic
from reprover.model import Report
from reprover.tlog import audit, log, note, proof
from reprover.tlog.store import Store

ORIGIN = "transparency-center.example/evidence"
LOG_DIR = "evidence-log"


def log_results(workspace: Path, results: Sequence[tuple[str, Report, Path]]) -> list[str]:
    """Attest and log each (name, report, manifest); return what the reviewer verified.

    Raises:
        Error: signing, logging or any of the reviewer's checks failed.
    """
    folder = workspace / "keys"
    folder.mkdir(exist_ok=True)
    lab_key, _ = keys.generate("lab", folder)
    log_key_path, _ = keys.generate("evidence-log", folder)
    signer, log_key = keys.load_signer(lab_key), keys.load_ed25519(log_key_path)
    logdir = workspace / LOG_DIR
    vkey = log.create(logdir, ORIGIN, log_key)
    kept: bytes | None = None
    attested: list[tuple[Path, bytes]] = []
    for name, report, manifest_path in results:
        spec = manifest.load(manifest_path)
        inputs = statement.inputs_from_manifest(spec, report)
        payload = statement.statement_bytes(statement.build_statement(report, inputs))
        data = dsse.sign_envelope(payload, [signer])
        target = workspace / f"{name}.intoto.json"
        write_atomic(target, data)
        log.append(logdir, [data], log_key)
        with Store(logdir) as store:
            made = proof.prove(store, data, vkey)
            kept = kept or store.read(log.CHECKPOINT)
        write_atomic(target.with_name(target.name + ".proof.json"), made.to_json())
        attested.append((target, data))
    return _review(logdir, vkey, attested, kept)


def _review(
    logdir: Path, vkey: note.Verifier, attested: list[tuple[Path, bytes]], kept: bytes | None
) -> list[str]:
    """The reviewer: every proof offline against the pinned vkey, then a full audit."""
    seen = []
    for target, data in attested:
        made = proof.parse(target.with_name(target.name + ".proof.json").read_bytes())
        opened = proof.check(made, data, vkey)
        seen.append(f"{target.name} is entry {made.index} of the log at size {opened.size}")
    with Store(logdir) as store:
        result = audit.audit(store, vkey, kept)
    seen.append(
        f"audit: {result.checkpoint.size} entries, every tile and the root recomputed, "
        f"consistent with the checkpoint of size {result.since}"
    )
    return seen
