"""The evidence log's parts: RFC 6962 proofs, tile paths, bundles, notes, the specs' vectors."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from reprover.errors import InputError, VerificationError
from reprover.tlog import audit, checkpoint, log, merkle, note, proof, tiles
from reprover.tlog.store import Store


class Naive:
    """Subtree hashes straight from the leaves (the definition, not the tiles)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    def subtree(self, height: int, index: int) -> bytes:
        return merkle.root_of(self.leaves[index << height : (index + 1) << height])


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, recursively, as the spec writes it."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(600)]


def test_root_matches_the_recursive_definition() -> None:
    assert merkle.root_of([]) == hashlib.sha256(b"").digest()
    for n in (1, 2, 3, 5, 7, 8, 255, 256, 257, 600):
        assert merkle.root_of(LEAVES[:n]) == _mth(LEAVES[:n])


def test_rfc6962_empty_and_leaf_hashes() -> None:
    # RFC 6962 test vectors (certificate-transparency-go merkle tests)
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 600), st.data())
def test_every_proof_verifies_and_a_wrong_one_does_not(size: int, data: st.DataObject) -> None:
    source = Naive(LEAVES[:size])
    root = merkle.root_of(LEAVES[:size])
    index = data.draw(st.integers(0, size - 1))
    path = merkle.inclusion_proof(source, index, size)
    merkle.verify_inclusion(LEAVES[index], index, size, path, root)
    assert len(path) <= size.bit_length()
    other = (index + 1) % size
    if other != index:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(LEAVES[index], other, size, path, root)
    old = data.draw(st.integers(0, size))
    consistency = merkle.consistency_proof(source, old, size)
    merkle.verify_consistency(old, size, merkle.root_of(LEAVES[:old]), root, consistency)
    if 0 < old < size:
        forked = [merkle.leaf_hash(b"fork"), *LEAVES[1:old]]
        with pytest.raises(VerificationError):
            merkle.verify_consistency(old, size, merkle.root_of(forked), root, consistency)


def test_tile_paths_follow_the_spec_examples() -> None:
    assert tiles.index_path(1234067) == "x001/x234/067"
    assert tiles.index_path(0) == "000"
    assert tiles.index_path(1000) == "x001/000"
    assert tiles.tile_path(0, 5) == "tile/0/005"
    assert tiles.tile_path(2, 1234067, 17) == "tile/2/x001/x234/067.p/17"
    assert tiles.tile_path(None, 3, 1) == "tile/entries/003.p/1"
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1"
    assert [tiles.tile_width(70000, 0, i) for i in (272, 273, 274)] == [256, 112, 0]
    assert [tiles.tile_width(70000, 1, i) for i in (0, 1)] == [256, 17]
    assert tiles.tile_width(70000, 2, 0) == 1
    assert tiles.levels(70000) == 3
    assert tiles.levels(256) == 2


def test_bundle_round_trip_and_truncation() -> None:
    entries = [b"", b"a", b"x" * 65535]
    data = tiles.encode_bundle(entries)
    assert data[:4] == b"\x00\x00\x00\x01"
    assert tiles.decode_bundle(data, 3, path="b", first=0) == entries
    with pytest.raises(VerificationError, match="entry 12 cannot be read"):
        tiles.decode_bundle(data[:-1], 3, path="b", first=10)
    with pytest.raises(VerificationError, match="bytes after"):
        tiles.decode_bundle(data + b"\x00", 3, path="b", first=0)
    with pytest.raises(ValueError, match="does not fit"):
        tiles.encode_bundle([b"x" * 65536])


def test_signed_note_spec_example_verifies() -> None:
    """The example of c2sp.org/signed-note, byte for byte."""
    vkey = note.parse_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    signed = (
        "This is an example message.\n\n"
        "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1E"
        "RYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
    ).encode()
    assert note.open_note(signed, vkey).text == b"This is an example message.\n"
    with pytest.raises(VerificationError, match="does not verify"):
        note.open_note(signed.replace(b"example message", b"example massage"), vkey)


def test_vkey_key_id_is_checked() -> None:
    key = Ed25519PrivateKey.generate()
    good = note.verifier_for("log.example/a", key).vkey
    assert note.parse_vkey(good).vkey == good
    name, kid, material = good.split("+", 2)
    with pytest.raises(InputError, match="key ID"):
        note.parse_vkey(f"other.example/b+{kid}+{material}")
    with pytest.raises(InputError):
        note.parse_vkey(f"{name}+{kid}")


def test_cosignature_v1_message_layout() -> None:
    key = Ed25519PrivateKey.generate()
    text = checkpoint.body("log.example/a", 3, b"\x01" * 32)
    line = note.cosign(text, "w.example/1", key, 1679315147)
    sig = base64.b64decode(line.decode().split(" ")[2])
    witness = note.verifier_for("w.example/1", key, note.COSIGNATURE_V1)
    assert int.from_bytes(sig[:4], "big") == witness.key_id
    assert int.from_bytes(sig[4:12], "big") == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + text
    key.public_key().verify(sig[12:], message)


def test_checkpoint_body_is_strict() -> None:
    good = checkpoint.body("log.example/a", 0, merkle.EMPTY_ROOT)
    assert checkpoint.parse_body(good) == ("log.example/a", 0, merkle.EMPTY_ROOT)
    for bad in (
        good.replace(b"\n0\n", b"\n00\n"),
        good.replace(b"\n0\n", b"\n-1\n"),
        good + b"extension\n",
        good.replace(b"log.example/a", b"log example"),
    ):
        with pytest.raises(InputError):
            checkpoint.parse_body(bad)


@pytest.mark.slow
def test_log_grows_across_tile_boundaries_and_audits(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    vkey = log.create(tmp_path / "log", "log.example/a", key)
    sizes = []
    for batch in (1, 254, 1, 1, 300, 65536 - 557, 1, 3):
        start = sizes[-1] if sizes else 0
        done = log.append(tmp_path / "log", [b"e%d" % i for i in range(start, start + batch)], key)
        sizes.append(done.checkpoint.size)
        with Store(tmp_path / "log") as store:
            assert log.TreeReader(store, done.checkpoint.size).root() == merkle.root_of(
                [merkle.leaf_hash(b"e%d" % i) for i in range(done.checkpoint.size)]
            )
    assert sizes[-1] == 65536 + 4
    with Store(tmp_path / "log") as store:
        result = audit.audit(store, vkey)
        made = proof.prove(store, b"e65535", vkey)
    assert result.checkpoint.size == 65540
    assert made.index == 65535
    proof.check(made, b"e65535", vkey)
    # partial tiles whose full tile exists are gone; older checkpoints' others stay
    names = {str(p.relative_to(tmp_path / "log")) for p in (tmp_path / "log").rglob("*")}
    assert {"tile/0/256.p/4", "tile/0/256.p/1", "tile/2/000.p/1"} <= names
    assert not any(n.startswith(("tile/0/000.p", "tile/entries/000.p")) for n in names)
    assert not any(n.startswith("tile/1/000.p") for n in names)


def test_oversized_entry_is_kept_by_content_address(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    vkey = log.create(tmp_path / "log", "log.example/a", key)
    big = bytes(range(256)) * 300
    log.append(tmp_path / "log", [big], key)
    digest = hashlib.sha256(big).hexdigest()
    assert (tmp_path / "log" / "blobs" / digest).read_bytes() == big
    with Store(tmp_path / "log") as store:
        assert audit.audit(store, vkey).blobs == 1
        made = proof.prove(store, tiles.entry_for(big))
    proof.check(made, big, vkey)
    (tmp_path / "log" / "blobs" / digest).write_bytes(big[:-1] + b"!")
    with Store(tmp_path / "log") as store, pytest.raises(VerificationError, match="entry 0"):
        audit.audit(store, vkey)


def test_a_file_that_looks_like_a_digest_record_is_kept_as_content(tmp_path: Path) -> None:
    """Submitting a fake digest record cannot make every later audit fail."""
    key = Ed25519PrivateKey.generate()
    vkey = log.create(tmp_path / "log", "log.example/a", key)
    fake = tiles.digest_record(b"x" * 70000)
    log.append(tmp_path / "log", [fake], key)
    assert (tmp_path / "log" / "blobs" / hashlib.sha256(fake).hexdigest()).read_bytes() == fake
    with Store(tmp_path / "log") as store:
        assert audit.audit(store, vkey).blobs == 1
        proof.check(proof.prove(store, tiles.entry_for(fake)), fake, vkey)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=5))
def test_any_batching_gives_the_same_tree(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int]
) -> None:
    """However entries are batched, the tree is RFC 6962's over all of them, and audits."""
    folder = tmp_path_factory.mktemp("log") / "log"
    key = Ed25519PrivateKey.generate()
    vkey = log.create(folder, "log.example/a", key)
    entries = [b"%d" % i for i in range(sum(batches))]
    start = 0
    for count in batches:
        done = log.append(folder, entries[start : start + count], key)
        start += count
        assert done.checkpoint.root == merkle.root_of(
            [merkle.leaf_hash(e) for e in entries[:start]]
        )
    with Store(folder) as store:
        assert audit.audit(store, vkey).checkpoint.size == start
        index = start // 2
        proof.check(proof.prove(store, entries[index]), entries[index], vkey)


def test_note_lines_split_on_newline_only() -> None:
    """A U+2028 or U+0085 inside a signature line is not a line break (as in Go)."""
    key = Ed25519PrivateKey.generate()
    text = checkpoint.body("log.example/a", 0, merkle.EMPTY_ROOT)
    signed = note.sign(text, "log.example/a", key)
    for sep in ("\u2028", "\u0085"):
        tampered = signed[:-1] + sep.encode() + b"\n"
        with pytest.raises(InputError, match="malformed signature line"):
            note.parse(tampered)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[note.Verifier, bytes, bytes]:
    folder = tmp_path_factory.mktemp("log") / "log"
    key = Ed25519PrivateKey.generate()
    vkey = log.create(folder, "log.example/a", key)
    log.append(folder, [b"entry %d" % i for i in range(300)], key)
    with Store(folder) as store:
        made = proof.prove(store, b"entry 257")
    return vkey, made.to_c2sp(), made.to_json()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mutated_proof_never_passes_with_other_meaning(
    small_log: tuple[note.Verifier, bytes, bytes], data: st.DataObject
) -> None:
    """Flip, insert or delete bytes anywhere in a proof: it fails with exit 1 or 2 (never an
    internal error), or it still says exactly the same thing (e.g. non-canonical base64)."""
    vkey, c2sp, as_json = small_log
    original = data.draw(st.sampled_from([c2sp, as_json]))
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if how == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "insert":
            raw.insert(at, data.draw(st.integers(0, 255)))
        else:
            del raw[at]
    try:
        parsed = proof.parse(bytes(raw))
        opened = proof.check(parsed, b"entry 257", vkey)
    except (InputError, VerificationError):
        return
    reference = proof.parse(original)
    assert (parsed.index, parsed.hashes) == (reference.index, reference.hashes)
    assert note.parse(parsed.checkpoint).text == note.parse(reference.checkpoint).text
    assert opened.size == 300
