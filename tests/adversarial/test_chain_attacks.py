"""The issue's adversarial list, for DSSE envelopes and legacy Metablocks alike.

Every chain is made with in-toto's own library (tests/intoto_chain.py), then tampered with;
`reprover layout verify` must exit 1 and name the step, the key and the rule.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from in_toto.models.layout import Layout
from in_toto.models.metadata import Envelope, Metablock, Metadata
from in_toto.runlib import in_toto_run
from in_toto.verifylib import in_toto_verify

from intoto_chain import (  # noqa: F401 - pytest fixtures
    Chain,
    chain_fixture,
    key_dict,
    make_layout,
    pristine_fixture,
    serialize,
    signer,
)

Cli = Callable[..., tuple[int, str, str]]
FORMATS = [pytest.param(True, id="dsse"), pytest.param(False, id="metablock")]


def verify(run_cli: Cli, chain: Chain, *released: Path, key: str = "owner") -> tuple[int, str]:
    files = released or (chain.release / "scan",)
    code, out, err = run_cli(
        "layout", "verify", chain.layout, "--key", chain.pub(key), "--links", chain.links, *files
    )
    return code, out + err


def payload(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_bytes())
    if "payload" in document:
        return json.loads(base64.b64decode(document["payload"]))
    return document["signed"]


def rewrite_payload(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the signed content of a metadata file, keeping the old signature."""
    document = json.loads(path.read_bytes())
    if "payload" in document:
        inner = json.loads(base64.b64decode(document["payload"]))
        change(inner)
        document["payload"] = base64.b64encode(json.dumps(inner).encode()).decode()
    else:
        change(document["signed"])
    path.write_text(json.dumps(document))


def record_with(chain: Chain, step: str, role: str, folder: str, inputs: str) -> Path:
    in_toto_run(
        step,
        [inputs],
        ["out"],
        [],
        base_path=str(chain.root / folder),
        lstrip_paths=[f"{inputs}/", "out/"],
        signer=signer(chain.keys, role),
        use_dsse=chain.dsse,
        metadata_directory=str(chain.links),
    )
    return chain.links / f"{step}.{chain.keyids[role][:8]}.link"


def test_untouched_chain_passes(chain: Chain, run_cli: Cli) -> None:
    code, text = verify(run_cli, chain)
    assert code == 0, text
    assert "links: checkout 1/1, build 1/1, sign 1/1, rebuild 2/2" in text


def test_link_modified_after_signing(chain: Chain, run_cli: Cli) -> None:
    def forge(link: dict[str, Any]) -> None:
        link["products"]["scan"]["sha256"] = "0" * 64

    rewrite_payload(chain.link("sign", "signer"), forge)
    code, text = verify(run_cli, chain)
    assert code == 1, text
    name = chain.link("sign", "signer").name
    assert (
        f"step sign: {name}: the signature by key {chain.keyids['signer'][:8]} does not verify"
        in text
    )
    assert "modified after signing" in text
    assert "[bad-signature]" in text


def test_link_signed_by_a_key_the_step_does_not_authorize(chain: Chain, run_cli: Cli) -> None:
    chain.link("sign", "signer").unlink()
    forged = record_with(chain, "sign", "attacker", "sign", "in")
    code, text = verify(run_cli, chain)
    assert code == 1, text
    attacker = chain.keyids["attacker"][:8]
    assert (
        f"step sign: {forged.name}: signed by key(s) {attacker} that the layout does not list"
        in text
    )
    assert "[unauthorized-key]" in text
    assert "step sign: needs 1 link(s) from distinct authorized keys, found 0 valid" in text


def test_link_signed_by_another_steps_functionary(chain: Chain, run_cli: Cli) -> None:
    chain.link("sign", "signer").unlink()
    forged = record_with(chain, "sign", "builder", "sign", "in")
    code, text = verify(run_cli, chain)
    assert code == 1, text
    builder = chain.keyids["builder"][:8]
    assert (
        f"{forged.name}: signed by key {builder} (authorized for step(s) build), which step "
        "sign does not authorize [unauthorized-key]"
    ) in text


def test_validly_signed_link_renamed_to_another_step(chain: Chain, run_cli: Cli) -> None:
    # The owner lets the vendor's CI (rb1) also build; rb1's rebuild link is then filed as its
    # build link. Its artifacts fit the build step, and in-toto itself accepts it (checked at
    # the end): only the signed name tells the two steps apart.
    layout = make_layout(chain.keys, chain.keyids, dsse=chain.dsse)
    inner: Layout = Metadata.from_dict(json.loads(layout)).get_payload()
    inner.steps[1].pubkeys.append(chain.keyids["rb1"])
    resigned: Any = Envelope.from_signable(inner) if chain.dsse else Metablock(signed=inner)
    resigned.create_signature(signer(chain.keys, "owner"))
    resigned.dump(str(chain.layout))
    chain.link("build", "builder").unlink()
    shutil.copyfile(chain.link("rebuild", "rb1"), chain.links / chain.link("build", "rb1").name)
    code, text = verify(run_cli, chain)
    assert code == 1, text
    assert (
        f"step build: {chain.link('build', 'rb1').name}: validly signed by key "
        f"{chain.keyids['rb1'][:8]}, but it is the link of step 'rebuild' renamed to step "
        "'build' [name-mismatch]"
    ) in text
    owner = {chain.keyids["owner"]: key_dict(chain.keys, "owner")}
    in_toto_verify(Metadata.load(str(chain.layout)), owner, link_dir_path=str(chain.links))


def test_expired_layout(chain: Chain, run_cli: Cli) -> None:
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    chain.layout.write_bytes(make_layout(chain.keys, chain.keyids, dsse=chain.dsse, expires=past))
    code, text = verify(run_cli, chain)
    assert code == 1, text
    assert "expires: " in text and "(UTC) is in the past [expired]" in text


def test_layout_signed_by_the_wrong_key(chain: Chain, run_cli: Cli) -> None:
    chain.layout.write_bytes(
        make_layout(chain.keys, chain.keyids, dsse=chain.dsse, sign_with="attacker")
    )
    code, text = verify(run_cli, chain)
    assert code == 1, text
    owner = chain.keyids["owner"][:8]
    assert "the in-toto layout is not signed by the pinned key(s)" in text
    assert f"layout: no valid signature by owner.pub.pem (key {owner}) [layout-signature]" in text


def test_artifact_changed_between_two_steps(chain: Chain, run_cli: Cli) -> None:
    source = chain.root / "build-builder" / "src" / "main.c"
    source.write_text(source.read_text().replace("clean", "CLEAN"))
    record_with(chain, "build", "builder", "build-builder", "src")
    code, text = verify(run_cli, chain)
    assert code == 1, text
    assert (
        "step build: expected_materials: 'DISALLOW *' matched the following artifacts: ['main.c']"
        in text
    )
    assert (
        "main.c has sha256" in text
        and "in the products of checkout: it changed between the steps" in text
    )


def test_same_key_cannot_provide_two_links_for_a_threshold_of_two(
    chain: Chain, run_cli: Cli
) -> None:
    chain.link("rebuild", "rb2").unlink()
    shutil.copyfile(chain.link("rebuild", "rb1"), chain.links / chain.link("rebuild", "rb3").name)
    code, text = verify(run_cli, chain)
    assert code == 1, text
    rb1, rb3 = chain.keyids["rb1"][:8], chain.keyids["rb3"][:8]
    assert (
        f"signed by key {rb1} but filed as the link of {rb3}: the same key cannot provide two "
        "links toward threshold 2 [same-key-twice]"
    ) in text
    assert "step rebuild: needs 2 link(s) from distinct authorized keys, found 1 valid" in text


def test_missing_link(chain: Chain, run_cli: Cli) -> None:
    missing = chain.link("build", "builder")
    missing.unlink()
    code, text = verify(run_cli, chain)
    assert code == 1, text
    assert (
        "step build: needs 1 link(s) from distinct authorized keys, found 0 valid; missing or "
        f"invalid: {missing.name} [threshold]"
    ) in text


def test_corrupt_link_file(chain: Chain, run_cli: Cli) -> None:
    # A link is evidence from a possibly hostile party, not the verifier's own input: a corrupt
    # one means the step is not proven (exit 1), unlike a malformed layout or key (exit 2).
    corrupt = chain.link("checkout", "author")
    corrupt.write_bytes(corrupt.read_bytes()[:-7])
    code, text = verify(run_cli, chain)
    assert code == 1, text
    assert f"step checkout: {corrupt.name}: corrupt link file: not JSON" in text
    assert "[corrupt-link]" in text


def test_released_file_that_is_not_the_sign_steps_product(
    chain: Chain, run_cli: Cli, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "scan").write_bytes((chain.release / "scan").read_bytes() + b"\0")
    (other / "scan.exe").write_bytes(b"MZ")
    code, text = verify(run_cli, chain, other / "scan", other / "scan.exe")
    assert code == 1, text
    assert "released scan: sha256" in text and "differs from the product of step sign" in text
    assert "released scan.exe: not a product of step sign (its products: scan)" in text


def test_the_same_key_listed_twice_is_refused(chain: Chain, run_cli: Cli) -> None:
    metadata = Metadata.from_dict(json.loads(chain.layout.read_bytes()))
    inner: Layout = metadata.get_payload()
    clone = "ab" * 32
    inner.keys[clone] = {**key_dict(chain.keys, "rb1"), "keyid": clone}
    inner.steps[3].pubkeys.append(clone)
    resigned: Any = Envelope.from_signable(inner) if chain.dsse else Metablock(signed=inner)
    resigned.create_signature(signer(chain.keys, "owner"))
    resigned.dump(str(chain.layout))
    code, text = verify(run_cli, chain)
    assert code == 1, text
    pair = sorted([clone, chain.keyids["rb1"]])
    assert (
        f"key {pair[1]}: is the same public key as {pair[0]}: one holder would count twice" in text
    )
    assert "[duplicate-key]" in text and "[keyid-mismatch]" in text


def test_malformed_layout_is_bad_input(chain: Chain, run_cli: Cli) -> None:
    chain.layout.write_text("{not json")
    code, text = verify(run_cli, chain)
    assert code == 2, text
    assert f"layout {chain.layout} is malformed: not JSON" in text


def test_unreadable_owner_key_is_bad_input(chain: Chain, run_cli: Cli) -> None:
    chain.pub("owner").write_text("not a key")
    code, text = verify(run_cli, chain)
    assert code == 2, text
    assert "is not a usable public key" in text


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "out/../../../escape"])
def test_path_traversal_in_link_artifact_names(chain: Chain, run_cli: Cli, name: str) -> None:
    """An insider with the builder's valid key records a product outside the tree."""
    link_path = chain.link("build", "builder")
    link = Metadata.load(str(link_path)).get_payload()
    link.products[name] = {"sha256": "0" * 64}
    metadata = Envelope.from_signable(link) if chain.dsse else Metablock(signed=link)
    metadata.create_signature(signer(chain.keys, "builder"))
    link_path.write_bytes(serialize(metadata))
    code, text = verify(run_cli, chain)
    assert code == 1, text
    assert f"names the artifact {name!r}, which is absolute or escapes its folder" in text
    assert "step build" in text
    assert "[unsafe-path]" in text


def test_links_replayed_for_a_new_release(chain: Chain, run_cli: Cli, tmp_path: Path) -> None:
    """A chain that was valid for an earlier release, presented with a new binary."""
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "scan").write_bytes((chain.release / "scan").read_bytes().replace(b"clean", b"CLEAN"))
    code, text = verify(run_cli, chain, newer / "scan")
    assert code == 1, text
    assert "released scan: sha256" in text and "differs from the product of step sign" in text
