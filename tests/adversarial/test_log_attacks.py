"""Attacks on the evidence log, each through the real CLI (real processes where it matters).

The log operator holds the log key and may rewrite, fork or truncate the log; anyone with
write access to the folder may swap files for symlinks or damage them. Each attack must end
in exit 1 (a check said no) or 2 (malformed input), never 0, with a message naming it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reprover.tlog import note
from tlog_support import ORIGIN, Cli, LogFixture, append, make_key, make_log

ROOT = Path(__file__).resolve().parents[2]


def _audit(run_cli: Cli, log: LogFixture, *more: str | Path) -> tuple[int, str, str]:
    return run_cli("log", "audit", log.logdir, "--vkey", log.vkey, *more)


def _rewritten(run_cli: Cli, log: LogFixture, root: Path, contents: list[bytes]) -> LogFixture:
    """The operator's rewritten history: a new log with the same key and origin."""
    forged = make_log(run_cli, root, entries=0, key=log.key)
    append(run_cli, forged, contents)
    return forged


def _keep(log: LogFixture, name: str) -> Path:
    kept = log.root / name
    kept.write_bytes((log.logdir / "checkpoint").read_bytes())
    return kept


def test_removed_entry_is_detected_and_named(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path / "a", entries=10)
    old, mirror = _keep(log, "old.checkpoint"), log.copy("mirror")
    contents = [f"entry {i}\n".encode() for i in range(12) if i != 3]
    forged = _rewritten(run_cli, log, tmp_path / "b", contents)
    assert _audit(run_cli, forged)[0] == 0  # on its own, a rewritten log looks fine
    code, _, err = _audit(run_cli, forged, "--since", old)
    assert code == 1
    assert "not an extension of the checkpoint of size 10" in err
    code, _, err = _audit(run_cli, forged, "--since", mirror)
    assert code == 1
    assert "entry 3 differs from the older copy" in err


def test_changed_entry_is_detected_and_named(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path / "a", entries=10)
    old, mirror = _keep(log, "old.checkpoint"), log.copy("mirror")
    # in place, tiles untouched: the recomputed hash differs
    bundle = log.logdir / "tile/entries/000.p/10"
    bundle.write_bytes(bundle.read_bytes().replace(b"entry 3\n", b"entry X\n"))
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "entry 3 does not match its hash in tile/0/000.p/10" in err
    # rewritten and re-signed by the operator: the old checkpoint and the copy catch it
    contents = [f"entry {i}\n".encode() if i != 3 else b"entry X\n" for i in range(10)]
    forged = _rewritten(run_cli, log, tmp_path / "b", contents)
    assert _audit(run_cli, forged, "--since", old)[0] == 1
    code, _, err = _audit(run_cli, forged, "--since", mirror)
    assert code == 1
    assert "entry 3 differs" in err


def test_forked_history_shown_to_two_parties_witness_refuses(run_cli: Cli, tmp_path: Path) -> None:
    honest = make_log(run_cli, tmp_path / "a", entries=5)
    wkey = make_key(run_cli, tmp_path / "keys", "witness")
    seen = _keep(honest, "witness-state")
    witness = ("--key", wkey, "--name", "auditor.example/w1", "--since", seen)
    append(run_cli, honest, [b"six\n"])
    code, _, err = run_cli("log", "witness", honest.logdir, "--vkey", honest.vkey, *witness)
    assert code == 0, err
    # the operator shows another party a fork of the same size-5 tree, then extends it
    fork_entries = [f"entry {i}\n".encode() for i in range(3)] + [b"hidden\n", b"x\n", b"y\n"]
    fork = _rewritten(run_cli, honest, tmp_path / "b", fork_entries)
    before = (fork.logdir / "checkpoint").read_bytes()
    code, out, err = run_cli("log", "witness", fork.logdir, "--vkey", fork.vkey, *witness)
    assert code == 1
    assert "refusing to cosign" in err
    assert "fork" in err
    assert out == ""
    assert (fork.logdir / "checkpoint").read_bytes() == before
    # a relying party that requires the witness accepts the honest proof, not the fork's
    _, wvkey, _ = run_cli("log", "vkey", "--name", "auditor.example/w1", "--key", wkey, "--witness")
    need = ("--witness-vkey", wvkey.strip(), "--witnesses", "1")
    for log, target in ((honest, honest.files[5]), (fork, fork.files[3])):
        proof = log.root / "p.json"
        assert run_cli("log", "prove", log.logdir, target, "-o", proof)[0] == 0
        code, _, err = run_cli("log", "check", proof, target, "--vkey", log.vkey, *need)
        assert code == (0 if log is honest else 1), err


def test_checkpoint_signed_by_another_key(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=3)
    proof = tmp_path / "p.json"
    assert run_cli("log", "prove", log.logdir, log.files[1], "-o", proof)[0] == 0
    impostor = Ed25519PrivateKey.generate()
    text = note.parse((log.logdir / "checkpoint").read_bytes()).text
    forged = note.sign(text, ORIGIN, impostor)
    (log.logdir / "checkpoint").write_bytes(forged)
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "not signed by the trusted log key" in err
    data = json.loads(proof.read_text())
    data["checkpoint"] = forged.decode()
    proof.write_text(json.dumps(data))
    code, _, err = run_cli("log", "check", proof, log.files[1], "--vkey", log.vkey)
    assert code == 1
    assert "not signed by the trusted log key" in err
    code, _, err = run_cli("log", "append", log.logdir, log.files[0], "--key", log.key)
    assert code == 1
    assert "not signed by this key" in err


def test_proof_for_another_tree(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=7)
    proof = tmp_path / "p.json"
    assert run_cli("log", "prove", log.logdir, log.files[2], "-o", proof)[0] == 0
    append(run_cli, log, [b"eighth\n"])
    data = json.loads(proof.read_text())
    data["checkpoint"] = (log.logdir / "checkpoint").read_text()  # validly signed, size 8
    proof.write_text(json.dumps(data))
    code, _, err = run_cli("log", "check", proof, log.files[2], "--vkey", log.vkey)
    assert code == 1
    assert "not in that tree" in err
    data["index"] = 3  # and the same path claimed for a neighbour
    proof.write_text(json.dumps(data))
    assert run_cli("log", "check", proof, log.files[2], "--vkey", log.vkey)[0] == 1
    data["inclusion"] = ["not base64!"]
    proof.write_text(json.dumps(data))
    assert run_cli("log", "check", proof, log.files[2], "--vkey", log.vkey)[0] == 2


def test_truncated_bundle(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=300)
    bundle = log.logdir / "tile/entries/001.p/44"
    bundle.write_bytes(bundle.read_bytes()[:-3])
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "truncated: entry 299 cannot be read" in err


def test_corrupted_tile(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=300)
    tile = log.logdir / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[32 * 17] ^= 1
    tile.write_bytes(bytes(data))
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "entry 17 does not match its hash in tile/0/000" in err
    upper = log.logdir / "tile/1/000.p/1"
    upper.write_bytes(bytes(32))
    code, _, err = run_cli("log", "append", log.logdir, log.files[0], "--key", log.key)
    assert code == 1
    assert "do not match its signed checkpoint; nothing appended" in err
    code, _, err = run_cli("log", "prove", log.logdir, log.files[0], "-o", tmp_path / "p.json")
    assert code == 1


def test_symlinked_logdir_files_are_never_followed(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=10)
    outside = tmp_path / "outside"
    outside.mkdir()
    # a tile swapped for a link to an identical copy elsewhere: refused, not followed
    tile = log.logdir / "tile/0/000.p/10"
    (outside / "tile").write_bytes(tile.read_bytes())
    tile.unlink()
    tile.symlink_to(outside / "tile")
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "symbolic link" in err
    tile.unlink()
    tile.write_bytes((outside / "tile").read_bytes())
    assert _audit(run_cli, log)[0] == 0
    # the checkpoint or the lock as a link to a file the appender could overwrite
    victim = outside / "victim"
    victim.write_bytes(b"precious\n")
    for name in ("checkpoint", ".lock"):
        target = log.logdir / name
        saved = target.read_bytes()
        target.unlink()
        target.symlink_to(victim)
        code, _, err = run_cli("log", "append", log.logdir, log.files[0], "--key", log.key)
        assert code == 1, (name, err)
        assert "symbolic link" in err
        assert victim.read_bytes() == b"precious\n"
        target.unlink()
        target.write_bytes(saved)
    # a folder of the layout as a link
    entries = log.logdir / "tile/entries"
    entries.rename(outside / "entries")
    entries.symlink_to(outside / "entries")
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "symbolic link" in err


APPENDER = """
import sys
from reprover.cli import main
logdir, key, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from pathlib import Path
for i in range(count):
    path = Path(logdir).parent / "files" / f"{tag}-{i}"
    path.write_bytes(f"{tag} {i}\\n".encode())
    code = main(["log", "append", logdir, str(path), "--key", key, "-q"])
    assert code == 0, code
"""


@pytest.mark.slow
def test_two_concurrent_appenders_lose_nothing(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=0)
    (tmp_path / "files").mkdir(exist_ok=True)
    count = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(log.logdir), str(log.key), tag, str(count)],
            cwd=ROOT,
        )
        for tag in ("alice", "bob")
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    code, out, err = _audit(run_cli, log)
    assert code == 0, err
    assert f"{2 * count} entries" in out
    for tag in ("alice", "bob"):
        for i in (0, count // 2, count - 1):
            path = tmp_path / "files" / f"{tag}-{i}"
            assert run_cli("log", "prove", log.logdir, path, "-o", tmp_path / "p.json")[0] == 0


KILLED = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from reprover.tlog import log
key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
log.append(Path(sys.argv[1]), [b"doomed %d" % i for i in range(int(sys.argv[3]))], key)
"""


@pytest.mark.slow
def test_sigkill_mid_append_then_audit_and_append(run_cli: Cli, tmp_path: Path) -> None:
    log = make_log(run_cli, tmp_path, entries=5)
    before = (log.logdir / "checkpoint").read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(log.logdir), str(log.key), "400000"], cwd=ROOT
    )
    marker = log.logdir / "tile/0/020"  # the killed append is well under way
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (log.logdir / "checkpoint").read_bytes() == before, "the kill came too late"
    code, out, err = _audit(run_cli, log)
    assert code == 0, err
    assert "5 entries" in out
    old = tmp_path / "before.checkpoint"
    old.write_bytes(before)
    append(run_cli, log, [b"after the crash\n"])
    code, out, err = _audit(run_cli, log, "--since", old)
    assert code == 0, err
    assert "6 entries" in out
    assert not list(log.logdir.rglob(".*.tmp")), "the next append cleans up the killed one's files"


def test_rolled_back_checkpoint_hides_later_entries(run_cli: Cli, tmp_path: Path) -> None:
    """The operator serves an older, validly signed checkpoint to hide what came after."""
    log = make_log(run_cli, tmp_path, entries=4)
    older = (log.logdir / "checkpoint").read_bytes()
    append(run_cli, log, [b"the embarrassing result\n"])
    seen = _keep(log, "monitor-state")
    (log.logdir / "checkpoint").write_bytes(older)
    assert _audit(run_cli, log)[0] == 0  # on its own, an older tree is a fine tree
    code, _, err = _audit(run_cli, log, "--since", seen)
    assert code == 1
    assert "the log shrank from 5 to 4 entries" in err
    wkey = make_key(run_cli, tmp_path / "keys", "witness")
    code, _, err = run_cli(
        "log", "witness", log.logdir, "--vkey", log.vkey, "--key", wkey,
        "--name", "auditor.example/w1", "--since", seen,
    )  # fmt: skip
    assert code == 1
    assert "refusing to cosign: the log shrank" in err


def test_witness_quorum_cannot_be_faked_with_one_key(run_cli: Cli, tmp_path: Path) -> None:
    """One key under two names, or the log's own key as a witness, is not a second witness."""
    log = make_log(run_cli, tmp_path, entries=2)
    seen = _keep(log, "seen")
    append(run_cli, log, [b"third\n"])
    wkey = make_key(run_cli, tmp_path / "keys", "witness")
    names = ("a.example/w", "b.example/w")
    for name in names:
        code, _, err = run_cli(
            "log", "witness", log.logdir, "--vkey", log.vkey, "--key", wkey,
            "--name", name, "--since", seen,
        )  # fmt: skip
        assert code == 0, err
    code, _, err = run_cli(
        "log", "witness", log.logdir, "--vkey", log.vkey, "--key", log.key,
        "--name", "self.example/w", "--since", seen,
    )  # fmt: skip
    assert code == 0, err  # the operator cosigns its own log with its own key...
    vkeys = [
        run_cli("log", "vkey", "--name", name, "--key", key, "--witness")[1].strip()
        for name, key in ((*names[:1], wkey), (names[1], wkey), ("self.example/w", log.key))
    ]
    proof = tmp_path / "p.json"
    assert run_cli("log", "prove", log.logdir, log.files[2], "-o", proof)[0] == 0
    check = ("log", "check", proof, log.files[2], "--vkey", log.vkey)
    trusted = [x for v in vkeys for x in ("--witness-vkey", v)]
    assert run_cli(*check, *trusted, "--witnesses", "1")[0] == 0
    code, _, err = run_cli(*check, *trusted, "--witnesses", "2")
    assert code == 1  # ...but the log's own key never counts as a witness
    assert "1 valid cosignatures by trusted witnesses, 2 required" in err
    code, _, err = run_cli(*check, *trusted[:4], "--witnesses", "2")
    assert code == 2  # one key under two names is one witness
    assert "not between 0 and the 1 distinct witnesses" in err
    # a log key passed as a witness key, or the reverse, is refused as bad input
    assert run_cli(*check, "--witness-vkey", log.vkey)[0] == 2
    assert run_cli("log", "check", proof, log.files[2], "--vkey", vkeys[0])[0] == 2


def test_checkpoint_with_a_second_bad_log_signature(run_cli: Cli, tmp_path: Path) -> None:
    """A valid log signature does not excuse a second, invalid one by the same key."""
    log = make_log(run_cli, tmp_path, entries=2)
    signed = (log.logdir / "checkpoint").read_bytes()
    parsed = note.parse(signed)
    good = parsed.signatures[0]
    bad = note.signature_line(good.name, good.key_id, bytes(64))
    (log.logdir / "checkpoint").write_bytes(signed + bad)
    code, _, err = _audit(run_cli, log)
    assert code == 1
    assert "does not verify" in err


WRITE_LIMITED = """
import resource, signal, sys
from reprover.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
sys.exit(main(sys.argv[1:]))
"""


def test_a_write_failure_mid_append_leaves_the_log_as_it_was(run_cli: Cli, tmp_path: Path) -> None:
    """A full disk (here: a 4 KiB file size limit, EFBIG) while writing tiles: exit 3."""
    log = make_log(run_cli, tmp_path, entries=250)
    before = (log.logdir / "checkpoint").read_bytes()
    files = [log.file(f"g{i}", f"grow {i}\n".encode()) for i in range(10)]
    done = subprocess.run(
        [sys.executable, "-c", WRITE_LIMITED, "log", "append", str(log.logdir),
         *map(str, files), "--key", str(log.key)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "cannot write" in done.stderr
    assert (log.logdir / "checkpoint").read_bytes() == before
    assert _audit(run_cli, log)[0] == 0
    append(run_cli, log, [b"after the disk was freed\n"])
    code, out, err = _audit(run_cli, log)
    assert code == 0, err
    assert "251 entries" in out


RANDOM_KILL = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from reprover.tlog import log
key = serialization.load_pem_private_key(Path(sys.argv[2]).read_bytes(), None)
start = int(sys.argv[3])
log.append(Path(sys.argv[1]), [b"batch entry %d" % i for i in range(start, start + 30000)], key)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_the_log(run_cli: Cli, tmp_path: Path) -> None:
    """Kills spread over the whole append, the checkpoint write included."""
    log = make_log(run_cli, tmp_path, entries=3)
    rng = random.Random(16)  # noqa: S311 - kill moments, not secrets
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", RANDOM_KILL, str(log.logdir), str(log.key), "0"],
        cwd=ROOT, check=True, timeout=600,
    )  # fmt: skip
    duration = time.monotonic() - start
    committed = 30003
    for round_ in range(1, 7):
        proc = subprocess.Popen(
            [sys.executable, "-c", RANDOM_KILL, str(log.logdir), str(log.key), str(round_ * 30000)],
            cwd=ROOT,
        )  # fmt: skip
        time.sleep(rng.uniform(0.2, 1.2) * duration)
        proc.kill()
        proc.wait()
        code, out, err = _audit(run_cli, log)
        assert code == 0, (round_, err)
        size = int(out.split(": ")[2].split()[0])
        assert size in (committed, committed + 30000), (round_, out)
        committed = size
    last = log.file("last", b"still appendable\n")
    code, out, err = run_cli("log", "append", log.logdir, last, "--key", log.key)
    assert code == 0, err
    assert out.split()[0] == str(committed)
    assert _audit(run_cli, log)[0] == 0


def test_append_refuses_to_carry_a_changed_partial_bundle(run_cli: Cli, tmp_path: Path) -> None:
    """An entry changed in the open bundle is not copied into the next full bundle."""
    log = make_log(run_cli, tmp_path, entries=10)
    bundle = log.logdir / "tile/entries/000.p/10"
    bundle.write_bytes(bundle.read_bytes().replace(b"entry 4\n", b"entry Z\n"))
    extra = log.file("extra", b"extra\n")
    code, _, err = run_cli("log", "append", log.logdir, extra, "--key", log.key)
    assert code == 1
    assert "does not match its tile; nothing appended" in err
    assert not (log.logdir / "tile/entries/000.p/11").exists()


@pytest.mark.slow
def test_fifo_in_place_of_a_tile_or_the_lock_does_not_hang(tmp_path: Path) -> None:
    """A named pipe planted in the log would block a plain open() forever; it is refused."""
    run = [sys.executable, "-m", "reprover"]
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run([*run, "key", "new", "log", "-d", keys, "-q"], check=True, cwd=ROOT)
    logdir = tmp_path / "log"
    init = [*run, "log", "init", logdir, "--origin", ORIGIN, "--key", keys / "log.pem"]
    vkey = subprocess.run(init, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    entry = tmp_path / "entry"
    entry.write_bytes(b"one\n")
    add = [*run, "log", "append", logdir, entry, "--key", keys / "log.pem", "-q"]
    subprocess.run(add, check=True, cwd=ROOT)
    audit = [*run, "log", "audit", logdir, "--vkey", vkey.strip()]
    for planted in ("tile/0/000.p/1", ".lock"):
        target = logdir / planted
        saved = target.read_bytes()
        target.unlink()
        os.mkfifo(target)
        done = subprocess.run(
            audit, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
        )
        assert done.returncode == 1, (planted, done.stderr)
        assert "not a regular file" in done.stderr
        target.unlink()
        target.write_bytes(saved)
