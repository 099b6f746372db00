"""One key, two spellings; two links, two answers; a release step by name.

The chain is made with in-toto's own library (tests/intoto_chain.py). Each attack re-signs the
layout with the owner's key, as an owner who was fooled (or careless) would, and runs the real
`reprover layout verify` / `layout check`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from in_toto.models.layout import Layout
from in_toto.models.metadata import Envelope, Metablock, Metadata
from in_toto.runlib import in_toto_run
from securesystemslib.signer import CryptoSigner, SSlibKey
from securesystemslib.signer._utils import compute_default_keyid

from intoto_chain import Chain, chain_fixture, key_dict, pristine_fixture, signer  # noqa: F401 - pytest fixtures

Cli = Callable[..., tuple[int, str, str]]


def resign(chain: Chain, change: Callable[[Layout], None]) -> None:
    """Change the layout and sign it again with the owner's key."""
    inner: Layout = Metadata.from_dict(json.loads(chain.layout.read_bytes())).get_payload()
    change(inner)
    metadata: Any = Envelope.from_signable(inner) if chain.dsse else Metablock(signed=inner)
    metadata.create_signature(signer(chain.keys, "owner"))
    metadata.dump(str(chain.layout))


def alias_signer(chain: Chain, role: str, keyid: str, public: dict[str, Any]) -> CryptoSigner:
    """The role's private key, signing under another keyid (what its holder can always do)."""
    private = serialization.load_pem_private_key(chain.key(role).read_bytes(), password=None)
    alias = SSlibKey(keyid, public["keytype"], public["scheme"], dict(public["keyval"]))
    return CryptoSigner(private, public_key=alias)


def record(chain: Chain, step: str, folder: str, with_signer: Any) -> None:
    in_toto_run(
        step,
        ["src" if step == "rebuild" else "in"],
        ["out"],
        [],
        base_path=str(chain.root / folder),
        lstrip_paths=["src/", "in/", "out/"],
        signer=with_signer,
        use_dsse=chain.dsse,
        metadata_directory=str(chain.links),
    )


def layout_verify(run_cli: Cli, chain: Chain, *extra: str | Path) -> tuple[int, str]:
    code, out, err = run_cli(
        "layout",
        "verify",
        chain.layout,
        "--key",
        chain.pub("owner"),
        "--links",
        chain.links,
        *extra,
        chain.release / "scan",
    )
    return code, out + err


def layout_check(run_cli: Cli, chain: Chain) -> tuple[int, str]:
    code, out, err = run_cli("layout", "check", chain.layout, "--key", chain.pub("owner"))
    return code, out + err


def test_one_key_with_keyids_in_lower_and_upper_case_counts_once(
    chain: Chain, run_cli: Cli
) -> None:
    """rb1's key listed twice (keyid in lower and in upper case hex), threshold 2, two links."""
    rb1 = chain.keyids["rb1"]
    upper = rb1.upper()

    def twice(layout: Layout) -> None:
        layout.keys[upper] = {**key_dict(chain.keys, "rb1"), "keyid": upper}
        layout.steps[3].pubkeys = [rb1, upper]
        layout.steps[3].threshold = 2

    resign(chain, twice)
    chain.link("rebuild", "rb2").unlink()
    public = key_dict(chain.keys, "rb1")
    record(chain, "rebuild", "rebuild-rb1", alias_signer(chain, "rb1", upper, public))
    code, text = layout_verify(run_cli, chain)
    assert code == 1, text
    assert (
        f"key {rb1}: is the same public key as {upper}: one holder would count twice "
        "[duplicate-key]"
    ) in text
    assert "step rebuild: needs 2 link(s) from distinct authorized keys, found 1 valid" in text
    assert f"key {upper}: its material hashes to keyid {rb1}" in text  # no other spelling
    code, text = layout_check(run_cli, chain)
    assert code == 1, text
    assert f"error: key {rb1}: is the same public key as {upper}" in text


def test_one_key_with_its_public_value_respelled_counts_once(chain: Chain, run_cli: Cli) -> None:
    """The same ed25519 key, its hex public value in upper case: a different, *consistent*
    keyid (the hash of what is written). Only comparing the SubjectPublicKeyInfo DER sees
    that rb1 would count twice toward the rebuild threshold of 2."""
    rb1 = chain.keyids["rb1"]
    public = key_dict(chain.keys, "rb1")
    respelled = {**public, "keyval": {"public": public["keyval"]["public"].upper()}}
    alias = compute_default_keyid(respelled["keytype"], respelled["scheme"], respelled["keyval"])
    assert alias != rb1 and alias[:8] != rb1[:8]

    def twice(layout: Layout) -> None:
        layout.keys[alias] = {**respelled, "keyid": alias}
        layout.steps[3].pubkeys = [rb1, alias]
        layout.steps[3].threshold = 2

    resign(chain, twice)
    chain.link("rebuild", "rb2").unlink()
    del respelled["keyid"]
    record(chain, "rebuild", "rebuild-rb1", alias_signer(chain, "rb1", alias, respelled))
    code, text = layout_verify(run_cli, chain)
    assert code == 1, text
    first, second = sorted([rb1, alias])
    assert f"key {second}: is the same public key as {first}" in text
    assert "[duplicate-key]" in text
    assert "keyid-mismatch" not in text  # both keyids are honest hashes of what is written
    assert "step rebuild: needs 2 link(s) from distinct authorized keys, found 1 valid" in text
    code, text = layout_check(run_cli, chain)
    assert code == 1, text
    assert "[duplicate-key]" in text


def forbidden_sign_link(chain: Chain, role: str) -> Path:
    """`role` signs a link for `sign` whose products add backdoor.dll, which the rules forbid."""
    folder = chain.root / f"sign-{role}"
    shutil.copytree(chain.root / "sign", folder)
    (folder / "out" / "backdoor.dll").write_bytes(b"MZ backdoor")
    record(chain, "sign", folder.name, signer(chain.keys, role))
    return chain.link("sign", role)


@pytest.mark.parametrize("order", ["honest-first", "forbidden-first"])
def test_two_signers_two_answers_fail_in_every_key_order(
    chain: Chain, run_cli: Cli, order: str
) -> None:
    """`sign` has threshold 1 and two authorized signers; one link adds a forbidden file."""
    honest, other = chain.keyids["signer"], chain.keyids["rb3"]

    def two_signers(layout: Layout) -> None:
        layout.steps[2].pubkeys = [honest, other] if order == "honest-first" else [other, honest]
        layout.steps[2].threshold = 1

    resign(chain, two_signers)
    forbidden = forbidden_sign_link(chain, "rb3")
    code, text = layout_verify(run_cli, chain)
    assert code == 1, text
    names = sorted([chain.link("sign", "signer").name, forbidden.name])
    assert (
        f"step sign: {names[0]} and {names[1]} are both validly signed by authorized keys but "
        "record different products (backdoor.dll)"
    ) in text
    assert "[links-disagree]" in text


def test_release_step_by_name(chain: Chain, run_cli: Cli) -> None:
    """`--release-step rebuild` checks the released file against the rebuild links' products;
    an unknown step name is bad input."""
    code, text = layout_verify(run_cli, chain, "--release-step", "rebuild")
    assert code == 0, text
    assert "1 released file(s) are products of rebuild" in text
    code, text = layout_verify(run_cli, chain, "--release-step", "checkout")
    assert code == 1, text
    assert "released scan: not a product of step checkout" in text
    code, text = layout_verify(run_cli, chain, "--release-step", "publish")
    assert code == 2, text
    assert "the release step 'publish' is not a step of the layout" in text


def test_no_sign_or_build_step_needs_a_release_step(chain: Chain, run_cli: Cli) -> None:
    def rename(layout: Layout) -> None:
        layout.steps[1].name, layout.steps[2].name = "compile", "countersign"

    resign(chain, rename)
    code, text = layout_verify(run_cli, chain)
    assert code == 2, text
    assert "the layout has neither a 'sign' nor a 'build' step" in text
    assert "--release-step" in text


def test_link_file_named_with_its_keyid_in_upper_case(chain: Chain, run_cli: Cli) -> None:
    """in-toto looks for exactly `STEP.{keyid:.8}.link`: another spelling is not that link."""
    link = chain.link("sign", "signer")
    upper = chain.keyids["signer"][:8].upper()
    assert upper != chain.keyids["signer"][:8], "write_keys makes prefixes with a letter"
    link.rename(link.with_name(f"sign.{upper}.link"))
    code, text = layout_verify(run_cli, chain)
    assert code == 1, text
    assert (
        f"its file name names no key of the step: in-toto reads it only as "
        f"{link.name} [misnamed-link]"
    ) in text
