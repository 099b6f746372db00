"""`reprover key new`, `reprover layout new` and `reprover layout check`, with in-toto's tools.

The layout made from the packaged transparency-center.toml is used by a chain recorded with
in-toto's own runlib, signing with keys `reprover key new` wrote and in-toto's loader read.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from in_toto.models._signer import load_crypto_signer_from_pkcs8_file
from in_toto.models.layout import Layout, Step
from in_toto.models.metadata import Envelope, Metablock, Metadata
from in_toto.runlib import in_toto_run

from intoto_chain import SOURCE, compile_in

Cli = Callable[..., tuple[int, str, str]]
LAYOUTS = Path(str(resources.files("reprover") / "layouts"))  # the packaged templates
ROLES = ("owner", "author", "builder", "signer", "vendor-ci", "outside-lab", "government-lab")
FORMATS = [pytest.param(False, id="dsse"), pytest.param(True, id="metablock")]


def new_keys(run_cli: Cli, folder: Path, roles: tuple[str, ...] = ROLES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for role in roles:
        code, _out, err = run_cli("key", "new", role, "-d", folder, "-q")
        assert code == 0, err


def test_key_new_writes_keys_in_totos_tools_read(run_cli: Cli, tmp_path: Path) -> None:
    code, out, _err = run_cli("key", "new", "alice", "-d", tmp_path)
    assert code == 0
    private, public = tmp_path / "alice.pem", tmp_path / "alice.pub.pem"
    assert out.split() == [str(private), str(public)]
    assert private.stat().st_mode & 0o777 == 0o600
    signer = load_crypto_signer_from_pkcs8_file(str(private))
    assert signer.public_key.keytype == "ed25519"
    code, _out, err = run_cli("key", "new", "alice", "-d", tmp_path)
    assert code == 2 and "already exists" in err


def test_key_new_with_passphrase(
    run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_SECRET", "correct horse")
    code, _out, _err = run_cli(
        "key", "new", "bob", "-d", tmp_path, "--passphrase-env", "KEY_SECRET"
    )
    assert code == 0
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "bob.pem").read_bytes()
    load_crypto_signer_from_pkcs8_file(str(tmp_path / "bob.pem"), b"correct horse")
    with pytest.raises((TypeError, ValueError)):
        load_crypto_signer_from_pkcs8_file(str(tmp_path / "bob.pem"), None)


@pytest.mark.parametrize("legacy", FORMATS)
def test_transparency_center_layout_verifies_a_chain_in_toto_recorded(
    run_cli: Cli, tmp_path: Path, legacy: bool
) -> None:
    spec = tmp_path / "transparency-center.toml"
    shutil.copyfile(LAYOUTS / "transparency-center.toml", spec)
    new_keys(run_cli, tmp_path / "keys")
    layout = tmp_path / "root.layout"
    args = ["layout", "new", spec, "-o", layout, "--key", tmp_path / "keys" / "owner.pem"]
    code, _out, err = run_cli(*args, *(["--legacy"] if legacy else []), "--expires-days", "30")
    assert code == 0, err
    document = json.loads(layout.read_bytes())
    assert ("signed" in document) is legacy
    inner = document["signed"] if legacy else json.loads(base64.b64decode(document["payload"]))
    expires = datetime.strptime(inner["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(days=29, hours=23) < expires - datetime.now(timezone.utc) <= timedelta(days=30)
    assert [s["name"] for s in inner["steps"]] == ["checkout", "build", "sign", "rebuild"]
    assert all(s["expected_materials"][-1] == ["DISALLOW", "*"] for s in inner["steps"])

    code, out, _err = run_cli(
        "layout", "check", layout, "--key", tmp_path / "keys" / "owner.pub.pem"
    )
    assert code == 0, out
    assert out == ""

    links = record_chain(tmp_path, use_dsse=not legacy)
    code, out, err = run_cli(
        "layout",
        "verify",
        layout,
        "--key",
        tmp_path / "keys" / "owner.pub.pem",
        "--links",
        links,
        tmp_path / "sign" / "out" / "scan",
    )
    assert code == 0, err
    assert "links: checkout 1/1, build 1/1, sign 1/1, rebuild 2/2" in out


def record_chain(root: Path, *, use_dsse: bool) -> Path:
    """Record checkout, build, sign and two rebuilds with in-toto's runlib."""
    links = root / "links"
    links.mkdir()

    def run(step: str, role: str, folder: Path, inputs: str) -> None:
        in_toto_run(
            step,
            [inputs] if inputs else [],
            ["out"],
            [],
            base_path=str(folder),
            lstrip_paths=[f"{inputs}/", "out/"] if inputs else ["out/"],
            signer=load_crypto_signer_from_pkcs8_file(str(root / "keys" / f"{role}.pem")),
            use_dsse=use_dsse,
            metadata_directory=str(links),
        )

    checkout = root / "checkout"
    (checkout / "out").mkdir(parents=True)
    for name, text in SOURCE.items():
        (checkout / "out" / name).write_text(text)
    run("checkout", "author", checkout, "")
    for step, role in (("build", "builder"), ("rebuild", "vendor-ci"), ("rebuild", "outside-lab")):
        folder = root / f"{step}-{role}"
        shutil.copytree(checkout / "out", folder / "src")
        compile_in(folder)
        run(step, role, folder, "src")
    shutil.copytree(root / "build-builder" / "out", root / "sign" / "in")
    shutil.copytree(root / "sign" / "in", root / "sign" / "out")
    run("sign", "signer", root / "sign", "in")
    return links


def test_single_team_layout_is_clean(run_cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "single-team.toml"
    shutil.copyfile(LAYOUTS / "single-team.toml", spec)
    new_keys(run_cli, tmp_path / "keys", ("owner", "developer", "ci"))
    layout = tmp_path / "root.layout"
    code, _out, err = run_cli(
        "layout", "new", spec, "-o", layout, "--key", tmp_path / "keys" / "owner.pem"
    )
    assert code == 0, err
    code, out, _err = run_cli("layout", "check", layout)
    assert code == 0 and out == ""


def sloppy_layout(tmp_path: Path, *, dsse: bool, expires: datetime) -> Path:
    """A layout built with in-toto's models that breaks every lint rule."""
    private = tmp_path / "keys"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private.mkdir(exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    (private / "owner.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = load_crypto_signer_from_pkcs8_file(str(private / "owner.pem"))
    public: dict[str, Any] = {**signer.public_key.to_dict(), "keyid": signer.public_key.keyid}
    steps = [
        Step(name="orphan", pubkeys=[], expected_products=[["ALLOW", "*"]]),
        Step(
            name="build",
            pubkeys=[signer.public_key.keyid],
            threshold=3,
            expected_materials=[
                ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "nowhere"],
                ["DISALLOW", "*"],
            ],
            expected_products=[["CREATE", "*"]],
        ),
    ]
    layout = Layout(
        steps=steps,
        keys={signer.public_key.keyid: public},
        expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    metadata: Any = Envelope.from_signable(layout) if dsse else Metablock(signed=layout)
    metadata.create_signature(signer)
    path = tmp_path / "sloppy.layout"
    metadata.dump(str(path))
    return path


@pytest.mark.parametrize("dsse", [True, False], ids=["dsse", "metablock"])
def test_layout_check_reports_each_weakness(run_cli: Cli, tmp_path: Path, dsse: bool) -> None:
    far = datetime.now(timezone.utc) + timedelta(days=3650)
    path = sloppy_layout(tmp_path, dsse=dsse, expires=far)
    code, out, _err = run_cli("layout", "check", path)
    assert code == 1
    expected = [
        "error: step orphan: names no functionary key [no-functionary]",
        "error: step build: threshold 3 exceeds its 1 key(s) [threshold-high]",
        "error: build materials: 'MATCH * WITH PRODUCTS FROM nowhere' names unknown step 'nowhere'",
        "error: orphan products: 'ALLOW *' allows everything [allow-all]",
        "error: build products: rule list does not end with DISALLOW * [no-final-disallow]",
        "error: orphan materials: rule list does not end with DISALLOW * [no-final-disallow]",
        "warning: expires: ",
    ]
    for line in expected:
        assert line in out, out
    assert "more than 3 years away [expiry-far]" in out or "[expiry-far]" in out


def test_layout_check_reports_past_and_missing_expiry(run_cli: Cli, tmp_path: Path) -> None:
    path = sloppy_layout(
        tmp_path, dsse=False, expires=datetime.now(timezone.utc) - timedelta(days=1)
    )
    code, out, _err = run_cli("layout", "check", path)
    assert code == 1 and "(UTC) is in the past [expired]" in out
    document = json.loads(path.read_bytes())
    del document["signed"]["expires"]  # in-toto would quietly default it to a month from now
    path.write_text(json.dumps(document))
    code, out, _err = run_cli("layout", "check", path)
    assert code == 1 and "[expiry-missing]" in out


def test_layout_check_with_the_wrong_owner_key(run_cli: Cli, tmp_path: Path) -> None:
    path = sloppy_layout(
        tmp_path, dsse=True, expires=datetime.now(timezone.utc) + timedelta(days=9)
    )
    new_keys(run_cli, tmp_path / "other", ("stranger",))
    code, out, _err = run_cli(
        "layout", "check", path, "--key", tmp_path / "other" / "stranger.pub.pem"
    )
    assert code == 1 and "error: layout: no valid signature by key" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"signed": 1', "is malformed: not JSON"),
        (b"[]", "is malformed: not a JSON object"),
        (b'{"payload": "e30=", "payloadType": "text/plain", "signatures": []}', "DSSE payloadType"),
        (b'{"signed": {"_type": "layout", "steps": "x"}, "signatures": []}', "malformed in-toto"),
    ],
)
def test_layout_check_malformed_is_bad_input(
    run_cli: Cli, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.layout"
    path.write_bytes(content)
    code, _out, err = run_cli("layout", "check", path)
    assert code == 2 and message in err


def test_layout_new_rejects_a_bad_spec(run_cli: Cli, tmp_path: Path) -> None:
    new_keys(run_cli, tmp_path, ("owner",))
    spec = tmp_path / "spec.toml"
    spec.write_text('[[steps]]\nname = "build"\nfunctionaries = ["ghost"]\n')
    code, _out, err = run_cli(
        "layout", "new", spec, "-o", tmp_path / "x", "--key", tmp_path / "owner.pem"
    )
    assert code == 2 and "functionary 'ghost' is not in [functionaries]" in err
    spec.write_text('[[steps]]\nname = "build"\nmaterials = ["MATCH *"]\n')
    code, _out, err = run_cli(
        "layout", "new", spec, "-o", tmp_path / "x", "--key", tmp_path / "owner.pem"
    )
    assert code == 2 and "rule 'MATCH *' is malformed" in err
    assert not (tmp_path / "x").exists()


def test_layout_new_expiry_is_utc_even_west_of_greenwich(
    run_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        new_keys(run_cli, tmp_path, ("owner", "developer", "ci"))
        (tmp_path / "keys").symlink_to(tmp_path)
        spec = tmp_path / "single-team.toml"
        shutil.copyfile(LAYOUTS / "single-team.toml", spec)
        layout = tmp_path / "root.layout"
        code, _o, err = run_cli(
            "layout",
            "new",
            spec,
            "-o",
            layout,
            "--key",
            tmp_path / "owner.pem",
            "--expires-days",
            "1",
        )
        assert code == 0, err
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    inner = json.loads(base64.b64decode(json.loads(layout.read_bytes())["payload"]))
    expires = datetime.strptime(inner["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    left = expires - datetime.now(timezone.utc)
    assert timedelta(hours=23, minutes=58) < left <= timedelta(days=1)
    Metadata.load(str(layout))  # in-toto reads it
