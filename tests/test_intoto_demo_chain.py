"""The demo's chain (reprover.demo.chain) verifies, and its tampered copy fails naming the edit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from in_toto.models.metadata import Metadata
from in_toto.verifylib import in_toto_verify

from reprover.demo.chain import make_chain
from reprover.errors import VerificationError
from reprover.intoto import load_public_key, verify_chain
from reprover.model import InTotoSpec


def test_demo_chain_passes_and_tampered_copy_fails(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / ".git").mkdir(parents=True)
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tree / "main.c").write_text("int main(void) { return 0; }\n")
    release = tmp_path / "release"
    release.mkdir()
    subprocess.run(["cc", "-o", str(release / "scan"), str(tree / "main.c")], check=True)
    paths = make_chain(tmp_path / "ws", tree, release)
    spec = InTotoSpec(paths.layout, (paths.layout_key,), paths.links)
    summary = verify_chain(spec, {"scan": release / "scan"})
    assert "rebuild 2/2" in summary
    # in-toto's own verifier agrees with the chain reprover wrote
    key = load_public_key(paths.layout_key)
    in_toto_verify(Metadata.load(str(paths.layout)), {key["keyid"]: key}, str(paths.links))
    tampered = InTotoSpec(paths.layout, (paths.layout_key,), paths.links_tampered)
    with pytest.raises(VerificationError) as failure:
        verify_chain(tampered, {"scan": release / "scan"})
    assert "step build" in (failure.value.details or "")
    assert "[bad-signature]" in (failure.value.details or "")
