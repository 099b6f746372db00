"""in-toto made by others: upstream in-toto's own demo metadata, judged as `in-toto-verify` does.

The fixtures in tests/fixtures/intoto-upstream are in-toto's `tests/demo_files`,
`tests/demo_dsse_files`, `tests/pems` and `tests/scripts/tar` (Apache-2.0, see its README).
Their keys carry legacy securesystemslib keyids; the layout's last step is `package`; its
inspection runs `python ./scripts/tar xfz foo.tar.gz`. The layout templates are unsigned, so
each test signs one as in-toto's own tests do (alice for the Metablock; the rsa, ed25519 and
ecdsa pems for DSSE) and runs both the real `in-toto-verify` and `reprover layout verify`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from in_toto.models.layout import Layout
from in_toto.models.metadata import Envelope, Metablock, Metadata
from securesystemslib.signer import CryptoSigner

Cli = Callable[..., tuple[int, str, str]]
UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "intoto-upstream"
CARL = "2f89b9272acfc8f4a0a0f094d789fdb0ba798b0fe41f2f5f417c12f0085ff498"  # package
BOB = "776a00e29f3559e0141b3b096f696abc6cfb0c657ab40f441132b345b08453f5"  # write-code
PEMS = ("rsa", "ed25519", "ecdsa")


@dataclass
class Demo:
    """A copy of the upstream demo, with a signed layout, ready for both verifiers."""

    root: Path
    layout: Path
    keys: list[Path]
    links: Path
    tools: Path
    released: Path


def private(path: Path) -> CryptoSigner:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return CryptoSigner(key)


def make_demo(tmp_path: Path, *, dsse: bool, expires: bool = True) -> Demo:
    files = UPSTREAM / ("demo_dsse_files" if dsse else "demo_files")
    links = tmp_path / "links"
    links.mkdir()
    for link in files.glob("*.link"):
        shutil.copyfile(link, links / link.name)
    tools = tmp_path / "tools" / "scripts"
    tools.mkdir(parents=True)
    shutil.copyfile(UPSTREAM / "scripts" / "tar", tools / "tar")
    release = tmp_path / "release"
    release.mkdir()
    shutil.copyfile(UPSTREAM / "demo_files" / "foo.tar.gz", release / "foo.tar.gz")
    demo = Demo(
        tmp_path,
        tmp_path / "root.layout",
        [],
        links,
        tools.parent,
        release / "foo.tar.gz",
    )
    template = Metadata.load(str(files / "demo.layout.template"))
    if dsse:
        demo.keys = [UPSTREAM / "pems" / f"{k}_public.pem" for k in PEMS]
        if expires:
            layout = template.get_payload()
            layout.expires = in_a_month()
            template = Envelope.from_signable(layout)
        for k in PEMS:
            template.create_signature(private(UPSTREAM / "pems" / f"{k}_private_unencrypted.pem"))
    else:
        demo.keys = [UPSTREAM / "demo_files" / "alice.pub"]
        template.create_signature(private(UPSTREAM / "demo_files" / "alice"))
    template.dump(str(demo.layout))
    return demo


def in_a_month() -> str:
    return (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def python_on_path(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's inspection calls `python`; make it this interpreter."""
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def in_toto_verify(demo: Demo) -> subprocess.CompletedProcess[str]:
    """The real `in-toto-verify`, run as upstream's tests do: in a folder with the links, the
    released file and the inspection's script."""
    work = demo.root / "in-toto-work"
    shutil.copytree(demo.links, work)
    shutil.copytree(demo.tools, work, dirs_exist_ok=True)
    shutil.copyfile(demo.released, work / demo.released.name)
    beside = Path(sys.executable).with_name("in-toto-verify")
    tool = str(beside) if beside.exists() else shutil.which("in-toto-verify")
    assert tool, "in-toto-verify (installed with in-toto) is not on PATH"
    keys = [str(k) for k in demo.keys]
    return subprocess.run(
        [tool, "--layout", demo.layout, "--verification-keys", *keys, "--link-dir", "."],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )


def reprover_verify(run_cli: Cli, demo: Demo, *extra: str | Path) -> tuple[int, str]:
    keys = [arg for key in demo.keys for arg in ("--key", key)]
    code, out, err = run_cli(
        "layout",
        "verify",
        demo.layout,
        *keys,
        "--links",
        demo.links,
        "--inspection-tools",
        demo.tools,
        "--release-step",
        "package",
        *extra,
        demo.released,
    )
    return code, out + err


FORMATS = [pytest.param(False, id="metablock"), pytest.param(True, id="dsse")]


@pytest.mark.usefixtures("python_on_path")
@pytest.mark.parametrize("dsse", FORMATS)
def test_upstream_demo_verifies_as_with_in_toto_verify(
    run_cli: Cli, tmp_path: Path, dsse: bool
) -> None:
    demo = make_demo(tmp_path, dsse=dsse)
    reference = in_toto_verify(demo)
    assert reference.returncode == 0, reference.stderr
    code, text = reprover_verify(run_cli, demo)
    assert code == 0, text
    assert "links: write-code 1/1, package 1/1; 1 released file(s) are products of package" in text


def test_upstream_keyids_are_the_legacy_ones() -> None:
    from reprover.intoto.metadata import accepted_keyids, computed_keyid

    template = json.loads((UPSTREAM / "demo_files" / "demo.layout.template").read_bytes())
    for keyid, key in template["signed"]["keys"].items():
        assert keyid in accepted_keyids(key)
        assert computed_keyid(key) != keyid  # the current securesystemslib keyid differs


@pytest.mark.usefixtures("python_on_path")
def test_upstream_demo_needs_its_release_step(run_cli: Cli, tmp_path: Path) -> None:
    demo = make_demo(tmp_path, dsse=False)
    keys = [arg for key in demo.keys for arg in ("--key", key)]
    code, out, err = run_cli(
        "layout", "verify", demo.layout, *keys, "--links", demo.links, demo.released
    )
    assert code == 2, out + err
    assert "neither a 'sign' nor a 'build' step (its steps: write-code, package)" in err


@pytest.mark.usefixtures("python_on_path")
def test_upstream_dsse_template_without_expiry_is_refused(run_cli: Cli, tmp_path: Path) -> None:
    """Where reprover is stricter, on purpose: the DSSE template has no `expires`, which
    in-toto silently reads as one month from every verification."""
    demo = make_demo(tmp_path, dsse=True, expires=False)
    assert in_toto_verify(demo).returncode == 0
    code, text = reprover_verify(run_cli, demo)
    assert code == 1, text
    assert "[expiry-missing]" in text


@pytest.mark.usefixtures("python_on_path")
@pytest.mark.parametrize("dsse", FORMATS)
def test_upstream_demo_with_another_tarball(run_cli: Cli, tmp_path: Path, dsse: bool) -> None:
    """Where `in-toto-verify` is weaker: the demo inspection's rules end without `DISALLOW *`,
    so a delivered tarball that is not the package step's product still passes it. reprover
    requires the released file to be that product, by hash."""
    demo = make_demo(tmp_path, dsse=dsse)
    shutil.copyfile(UPSTREAM / "demo_files" / "foo.tar.gz", tmp_path / "orig.tar.gz")
    subprocess.run(["tar", "czf", demo.released, "-C", tmp_path, "orig.tar.gz"], check=True)
    assert in_toto_verify(demo).returncode == 0
    code, text = reprover_verify(run_cli, demo)
    assert code == 1, text
    assert "released foo.tar.gz: sha256" in text
    assert "differs from the product of step package" in text


def rewrite_link(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_bytes())
    if "payload" in document:
        inner = json.loads(base64.b64decode(document["payload"]))
        change(inner)
        document["payload"] = base64.b64encode(json.dumps(inner).encode()).decode()
    else:
        change(document["signed"])
    path.write_text(json.dumps(document))


@pytest.mark.usefixtures("python_on_path")
@pytest.mark.parametrize("dsse", FORMATS)
def test_upstream_link_modified_after_signing_fails_in_both(
    run_cli: Cli, tmp_path: Path, dsse: bool
) -> None:
    demo = make_demo(tmp_path, dsse=dsse)

    def forge(link: dict[str, Any]) -> None:
        link["products"]["foo.tar.gz"]["sha256"] = "0" * 64

    rewrite_link(demo.links / f"package.{CARL[:8]}.link", forge)
    assert in_toto_verify(demo).returncode == 1
    code, text = reprover_verify(run_cli, demo)
    assert code == 1, text
    assert "[bad-signature]" in text


@pytest.mark.usefixtures("python_on_path")
def test_legacy_keyid_in_upper_case_is_not_accepted(run_cli: Cli, tmp_path: Path) -> None:
    """in-toto never checks a keyid against its key: with carl's legacy keyid spelled in upper
    case (layout re-signed by alice, the link's unsigned signature keyid edited to match),
    `in-toto-verify` still passes. reprover accepts the legacy keyid only as securesystemslib
    spells it."""
    demo = make_demo(tmp_path, dsse=False)
    upper = CARL.upper()
    metadata = Metadata.load(str(demo.layout))
    layout: Layout = metadata.get_payload()
    layout.keys[upper] = {**layout.keys.pop(CARL), "keyid": upper}
    layout.steps[1].pubkeys = [upper]
    resigned = Metablock(signed=layout)
    resigned.create_signature(private(UPSTREAM / "demo_files" / "alice"))
    resigned.dump(str(demo.layout))
    link = demo.links / f"package.{CARL[:8]}.link"
    document = json.loads(link.read_bytes())
    document["signatures"][0]["keyid"] = upper
    (demo.links / f"package.{upper[:8]}.link").write_text(json.dumps(document))
    link.unlink()
    assert in_toto_verify(demo).returncode == 0
    code, text = reprover_verify(run_cli, demo)
    assert code == 1, text
    assert f"key {upper}: its material hashes to keyid" in text
    assert f"or {CARL} [keyid-mismatch]" in text


@pytest.mark.usefixtures("python_on_path")
def test_inspection_tools_are_the_verifiers_own(run_cli: Cli, tmp_path: Path) -> None:
    """Inspections run in a throw-away folder holding the released files: without the
    verifier's `--inspection-tools` the demo's script is not there, and a released file may
    not take a tool's name."""
    demo = make_demo(tmp_path, dsse=False)
    keys = [arg for key in demo.keys for arg in ("--key", key)]
    code, out, err = run_cli(
        "layout", "verify", demo.layout, *keys, "--links", demo.links,
        "--release-step", "package", demo.released,
    )  # fmt: skip
    assert code == 1, out + err
    assert "BadReturnValueError" in err and "'./scripts/tar'" in err
    (demo.tools / "foo.tar.gz").write_bytes(b"not the release")
    code, text = reprover_verify(run_cli, demo)
    assert code == 2, text
    assert "released file foo.tar.gz has the name of an inspection tool" in text
