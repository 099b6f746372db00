"""`reprover rebuild` links, and `reprover verify` with an `[in-toto]` table, end to end.

The other steps' links are recorded with in-toto's own runlib; the rebuild links come from
`reprover rebuild`; in-toto's own API reads and checks what reprover wrote.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from in_toto.models._signer import load_crypto_signer_from_pkcs8_file
from in_toto.models.metadata import Metadata
from in_toto.runlib import in_toto_run

from conftest import Project

Cli = Callable[..., tuple[int, str, str]]
SPEC = """
expires_days = 30
[functionaries]
author = "keys/author.pub.pem"
builder = "keys/builder.pub.pem"
signer = "keys/signer.pub.pem"
rb1 = "keys/rb1.pub.pem"
rb2 = "keys/rb2.pub.pem"
[[steps]]
name = "checkout"
functionaries = ["author"]
materials = ["DISALLOW *"]
products = ["CREATE *", "DISALLOW *"]
[[steps]]
name = "build"
functionaries = ["builder"]
materials = ["MATCH * WITH PRODUCTS FROM checkout", "DISALLOW *"]
products = ["CREATE *", "DISALLOW *"]
[[steps]]
name = "sign"
functionaries = ["signer"]
materials = ["MATCH * WITH PRODUCTS FROM build", "DISALLOW *"]
products = ["MATCH * WITH PRODUCTS FROM build", "DISALLOW *"]
[[steps]]
name = "rebuild"
functionaries = ["rb1", "rb2"]
threshold = 2
materials = ["MATCH * WITH PRODUCTS FROM checkout", "DISALLOW *"]
products = ["MATCH * WITH PRODUCTS FROM build", "DISALLOW *"]
"""


def keys(run_cli: Cli, folder: Path) -> None:
    folder.mkdir()
    for role in ("owner", "author", "builder", "signer", "rb1", "rb2"):
        assert run_cli("key", "new", role, "-d", folder, "-q")[0] == 0


def in_toto_signer(root: Path, role: str) -> object:
    return load_crypto_signer_from_pkcs8_file(str(root / "keys" / f"{role}.pem"))


def test_rebuild_writes_a_link_in_totos_library_accepts(
    project: Project, run_cli: Cli, tmp_path: Path
) -> None:
    keys(run_cli, tmp_path / "keys")
    manifest = project.manifest()
    out = tmp_path / "rb1-out"
    code, stdout, err = run_cli(
        "rebuild", manifest, "--link-key", tmp_path / "keys" / "rb1.pem", "-o", out
    )
    assert code == 0, err
    keyid = load_crypto_signer_from_pkcs8_file(str(tmp_path / "keys" / "rb1.pem")).public_key.keyid
    link_path = out / f"rebuild.{keyid[:8]}.link"
    assert stdout.strip() == str(link_path)
    metadata = Metadata.load(str(link_path))
    key = {
        **load_crypto_signer_from_pkcs8_file(
            str(tmp_path / "keys" / "rb1.pem")
        ).public_key.to_dict(),
        "keyid": keyid,
    }
    metadata.verify_signature(key)
    link = metadata.get_payload()
    assert link.name == "rebuild"
    assert sorted(link.materials) == ["Makefile", "hello.c"]
    assert sorted(link.products) == ["hello"]
    assert (out / "hello").read_bytes() == (project.release / "hello").read_bytes()
    assert "payload" in json.loads(link_path.read_bytes())  # DSSE by default

    code, _o, err = run_cli(
        "rebuild", manifest, "--link-key", tmp_path / "keys" / "rb1.pem", "-o", out
    )
    assert code == 2 and "is not an empty folder" in err


def test_verify_with_in_toto_table_passes_then_fails_without_a_rebuilder(
    project: Project, run_cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path
    keys(run_cli, root / "keys")
    links = root / "links"
    links.mkdir()
    manifest = project.manifest()
    for role in ("rb1", "rb2"):
        code, _o, err = run_cli(
            "rebuild",
            manifest,
            "--link-key",
            root / "keys" / f"{role}.pem",
            "-o",
            root / role,
            "-q",
        )
        assert code == 0, err
        for link in (root / role).glob("*.link"):
            shutil.copyfile(link, links / link.name)
    # checkout, build and sign with in-toto's own recorder
    in_toto_run(
        "checkout",
        [],
        ["."],
        [],
        base_path=str(project.repo),
        signer=in_toto_signer(root, "author"),
        use_dsse=True,
        metadata_directory=str(links),
    )
    vendor = root / "vendor"
    vendor.mkdir()
    shutil.copytree(project.repo, vendor / "src", ignore=shutil.ignore_patterns(".git"))
    shutil.copytree(project.release, vendor / "out")
    in_toto_run(
        "build",
        ["src"],
        ["out"],
        [],
        base_path=str(vendor),
        lstrip_paths=["src/", "out/"],
        signer=in_toto_signer(root, "builder"),
        use_dsse=True,
        metadata_directory=str(links),
    )
    in_toto_run(
        "sign",
        ["out"],
        ["out"],
        [],
        base_path=str(vendor),
        lstrip_paths=["out/"],
        signer=in_toto_signer(root, "signer"),
        use_dsse=False,
        metadata_directory=str(links),
    )
    (root / "spec.toml").write_text(SPEC)
    code, _o, err = run_cli(
        "layout",
        "new",
        root / "spec.toml",
        "-o",
        root / "root.layout",
        "--key",
        root / "keys" / "owner.pem",
        "-q",
    )
    assert code == 0, err
    intoto = (
        '[in-toto]\nlayout = "root.layout"\nlayout_keys = ["keys/owner.pub.pem"]\nlinks = "links"\n'
    )
    manifest = project.manifest(extra=intoto)
    code, out, err = run_cli("verify", manifest, "--format", "json")
    report = json.loads(out)
    assert code == 0, err
    check = next(c for c in report["checks"] if c["name"] == "in-toto")
    assert check["passed"] is True
    assert "rebuild 2/2" in check["detail"]
    assert "are products of sign" in check["detail"]
    # The manifest names the release step; it reaches the check through the trust snapshot.
    named = project.manifest(extra=intoto + 'release_step = "rebuild"\n', name="named.toml")
    code, out, err = run_cli("verify", named, "--format", "json")
    assert code == 0, err
    check = next(c for c in json.loads(out)["checks"] if c["name"] == "in-toto")
    assert "are products of rebuild" in check["detail"]

    next(links.glob("rebuild.*.link")).unlink()
    code, out, err = run_cli("verify", manifest, "--format", "json")
    assert code == 1, err
    check = next(c for c in json.loads(out)["checks"] if c["name"] == "in-toto")
    assert check["passed"] is False
    assert "needs 2 link(s) from distinct authorized keys, found 1 valid" in json.dumps(check)
