"""The demo's chain (reprover.demo.chain) verifies, and its tampered copy fails naming the edit."""

from __future__ import annotations

import shutil
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
    built, release = tmp_path / "built", tmp_path / "release"
    built.mkdir()
    subprocess.run(["cc", "-o", str(built / "scan"), str(tree / "main.c")], check=True)
    (built / "scan.exe").write_bytes(b"MZ unsigned engine")
    shutil.copytree(built, release)
    (release / "scan.exe").write_bytes(b"MZ unsigned engine + signature")  # the sign step
    paths = make_chain(tmp_path / "ws", tree, built, release)
    spec = InTotoSpec(paths.layout, (paths.layout_key,), paths.links)
    released = {"scan": release / "scan", "scan.exe": release / "scan.exe"}
    summary = verify_chain(spec, released)
    assert "rebuild 2/2" in summary
    # in-toto's own verifier agrees with the chain reprover wrote
    key = load_public_key(paths.layout_key)
    in_toto_verify(Metadata.load(str(paths.layout)), {key["keyid"]: key}, str(paths.links))
    tampered = InTotoSpec(paths.layout, (paths.layout_key,), paths.links_tampered)
    with pytest.raises(VerificationError) as failure:
        verify_chain(tampered, released)
    assert "step build" in (failure.value.details or "")
    assert "[bad-signature]" in (failure.value.details or "")


def test_demo_chain_refuses_a_signer_that_changed_more_than_exe_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "main.c").write_text("int main(void) { return 0; }\n")
    built, release = tmp_path / "built", tmp_path / "release"
    built.mkdir()
    (built / "scan").write_bytes(b"ELF engine")
    shutil.copytree(built, release)
    (release / "scan").write_bytes(b"ELF engine, patched by the signer")
    paths = make_chain(tmp_path / "ws", tree, built, release)
    spec = InTotoSpec(paths.layout, (paths.layout_key,), paths.links)
    with pytest.raises(VerificationError) as failure:
        verify_chain(spec, {"scan": release / "scan"})
    assert "sign" in failure.value.message + (failure.value.details or "")
